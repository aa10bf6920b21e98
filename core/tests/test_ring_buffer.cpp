#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#include "tickserver/ring_buffer.hpp"

using tickserver::Ring;
using tickserver::TradeRing;

namespace {

TradeRing filled(std::size_t capacity, int n) {
  TradeRing r(capacity);
  r.reserve();
  for (int i = 0; i < n; ++i) {
    r.push(i, 100.0 + i, 1.0 * i, static_cast<std::uint64_t>(i) + 1000,
           static_cast<std::uint8_t>(i & 0xff));
  }
  return r;
}

}  // namespace

TEST_CASE("trade_ring_keeps_last_capacity_trades_and_counts_overwrites") {
  const TradeRing r = filled(4, 10);
  CHECK(r.size() == 4);
  CHECK(r.total_pushed() == 10);
  CHECK(r.overwritten() == 6);
  for (std::size_t i = 0; i < 4; ++i) CHECK(r.at(i).ts_event == static_cast<std::int64_t>(6 + i));
  CHECK(r.back().price == 109.0);
  CHECK(r.back().seq == 1009);
}

TEST_CASE("trade_ring_last_n_is_oldest_first_across_wrap_around") {
  const TradeRing r = filled(5, 13);  // physical head wraps twice
  for (std::size_t n = 0; n <= 7; ++n) {
    std::vector<std::int64_t> ts(n);
    std::vector<double> px(n), sz(n);
    std::vector<std::uint64_t> seq(n);
    std::vector<std::uint8_t> fl(n);
    const std::size_t got = r.copy_last(n, ts.data(), px.data(), sz.data(), seq.data(), fl.data());
    const std::size_t want = n < 5 ? n : 5;
    REQUIRE(got == want);
    for (std::size_t i = 0; i < got; ++i) {
      const auto t = static_cast<std::int64_t>(13 - got + i);
      CHECK(ts[i] == t);
      CHECK(px[i] == 100.0 + static_cast<double>(t));
      CHECK(sz[i] == static_cast<double>(t));
      CHECK(seq[i] == static_cast<std::uint64_t>(t) + 1000);
      CHECK(fl[i] == static_cast<std::uint8_t>(t));
    }
  }
}

TEST_CASE("trade_ring_slices_point_at_contiguous_column_ranges") {
  const TradeRing r = filled(5, 8);  // stored: slots 0..2 hold 5..7, slots 3..4 hold 3..4
  const auto s = r.last(4);
  CHECK(s.first == 4);
  CHECK(s.first_len == 1);
  CHECK(s.second_len == 3);
  CHECK(r.ts_column()[s.first] == 4);
  CHECK(r.ts_column()[0] == 5);
  CHECK(r.ts_column()[2] == 7);
  const auto all = filled(5, 3).last(10);  // not wrapped yet: one slice
  CHECK(all.first == 0);
  CHECK(all.first_len == 3);
  CHECK(all.second_len == 0);
}

TEST_CASE("trade_ring_reports_storage_only_after_reserve") {
  TradeRing r(1000);
  CHECK_FALSE(r.allocated());
  CHECK(r.memory_bytes() == 0);
  r.reserve();
  CHECK(r.memory_bytes() == 1000 * TradeRing::kBytesPerTrade);
  CHECK(TradeRing::kBytesPerTrade == 33);
  CHECK(r.empty());
}

TEST_CASE("ring_of_records_overwrites_oldest") {
  Ring<int> r(3);
  for (int i = 0; i < 7; ++i) r.push(i);
  CHECK(r.size() == 3);
  CHECK(r.overwritten() == 4);
  CHECK(r[0] == 4);
  CHECK(r[2] == 6);
  CHECK(r.back() == 6);
  int out[3] = {};
  CHECK(r.copy_last(2, out) == 2);
  CHECK(out[0] == 5);
  CHECK(out[1] == 6);
}

TEST_CASE("ring_rejects_zero_capacity") {
  CHECK_THROWS_AS(Ring<int>(0), std::invalid_argument);
  CHECK_THROWS_AS(TradeRing(0), std::invalid_argument);
}
