// Python bindings of the symbol registry.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/vector.h>

#include "bindings.hpp"
#include "tickserver/symbols.hpp"

namespace nb = nanobind;

namespace tickserver::py {

void bind_symbols(nb::module_& m) {
  nb::class_<SymbolRegistry>(m, "SymbolRegistry",
                             "Map symbol strings to dense integer ids (0, 1, 2, ...) and back.")
      .def(nb::init<>())
      .def("intern", &SymbolRegistry::intern, nb::arg("name"),
           "Return the id of ``name``, adding it if it is new.")
      .def("lookup", &SymbolRegistry::lookup, nb::arg("name"),
           "Return the id of ``name``, or None if it is not registered.")
      .def("name", &SymbolRegistry::name, nb::arg("id"), "Return the symbol string of ``id``.")
      .def("names", &SymbolRegistry::names, "Return all symbols, indexed by id.")
      .def("__len__", &SymbolRegistry::size)
      .def("__contains__",
           [](const SymbolRegistry& r, std::string_view name) { return r.lookup(name).has_value(); });
}

}  // namespace tickserver::py
