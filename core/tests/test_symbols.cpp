#include <doctest/doctest.h>

#include <stdexcept>

#include "tickserver/symbols.hpp"

using tickserver::SymbolRegistry;

TEST_CASE("registry_assigns_dense_ids_in_first_seen_order") {
  SymbolRegistry r;
  CHECK(r.intern("AAPL") == 0);
  CHECK(r.intern("MSFT") == 1);
  CHECK(r.intern("AAPL") == 0);
  CHECK(r.size() == 2);
  CHECK(r.name(1) == "MSFT");
  CHECK(r.lookup("NVDA") == std::nullopt);
}

TEST_CASE("registry_rejects_empty_name_and_unknown_id") {
  SymbolRegistry r;
  CHECK_THROWS_AS(r.intern(""), std::invalid_argument);
  CHECK_THROWS_AS((void)r.name(3), std::out_of_range);
}
