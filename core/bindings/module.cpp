// The tickserver._core extension module: one binding function per area, nothing else here.
#include "bindings.hpp"

NB_MODULE(_core, m) {
  m.doc() = "tickserver's C++ core: symbol registry, ring buffers, L2 books, bars, indicators, signals.";
  tickserver::py::bind_symbols(m);
  tickserver::py::bind_book(m);
  tickserver::py::bind_indicators(m);
  tickserver::py::bind_engine(m);
  tickserver::py::bind_sim(m);
}
