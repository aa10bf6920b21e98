// Python bindings of the incremental indicators (standalone classes for parity tests and benches).
#include "bindings.hpp"

namespace nb = nanobind;

namespace tickserver::py {

void bind_indicators(nb::module_& /*m*/) {}

}  // namespace tickserver::py
