#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>
#include <vector>

#include "tickserver/order_book.hpp"

using tickserver::applied;
using tickserver::BookStatus;
using tickserver::Level;
using tickserver::OrderBook;
using tickserver::Side;

namespace {

constexpr std::uint8_t kBid = 0;
constexpr std::uint8_t kAsk = 1;
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// A book with bids 100.00 (5), 99.99 (7) and asks 100.02 (3), 100.03 (4) on a 0.01 tick.
OrderBook small_book() {
  OrderBook b(0.01);
  REQUIRE(b.apply(kBid, 100.00, 5, 0) == BookStatus::Ok);
  REQUIRE(b.apply(kBid, 99.99, 7, 0) == BookStatus::Ok);
  REQUIRE(b.apply(kAsk, 100.02, 3, 0) == BookStatus::Ok);
  REQUIRE(b.apply(kAsk, 100.03, 4, 0) == BookStatus::Ok);
  return b;
}

std::vector<Level> copy_levels(const OrderBook& b, Side s) {
  const auto l = b.levels(s);
  return {l.begin(), l.end()};
}

bool same_levels(const std::vector<Level>& a, const std::vector<Level>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].ticks != b[i].ticks || a[i].price != b[i].price || a[i].size != b[i].size) {
      return false;
    }
  }
  return true;
}

// Everything observable about a book, to check that a rejected update changed nothing.
struct State {
  std::vector<Level> bids, asks;
  std::uint64_t last_seq, gaps, snapshots;
  bool operator==(const State& o) const {
    return same_levels(bids, o.bids) && same_levels(asks, o.asks) && last_seq == o.last_seq &&
           gaps == o.gaps && snapshots == o.snapshots;
  }
};

State state(const OrderBook& b) {
  return {copy_levels(b, Side::Bid), copy_levels(b, Side::Ask), b.last_seq(), b.gaps(),
          b.snapshots()};
}

}  // namespace

TEST_CASE("book_best_levels_and_stats_follow_the_touch") {
  const OrderBook b = small_book();
  CHECK(b.best_bid_px() == 100.00);
  CHECK(b.best_bid_sz() == 5);
  CHECK(b.best_ask_px() == 100.02);
  CHECK(b.best_ask_sz() == 3);
  CHECK(b.mid() == doctest::Approx(100.01));
  CHECK(b.spread() == doctest::Approx(0.02));
  // Microprice leans toward the ask (less size there): (100.00*3 + 100.02*5) / 8.
  CHECK(b.microprice() == doctest::Approx((100.00 * 3 + 100.02 * 5) / 8.0));
  CHECK(b.imbalance() == doctest::Approx((5.0 - 3.0) / 8.0));
  CHECK(b.depth(Side::Bid) == 2);
  CHECK(b.depth(Side::Ask) == 2);
}

TEST_CASE("book_stats_are_nan_when_a_side_is_empty") {
  OrderBook b(0.01);
  CHECK(std::isnan(b.best_bid_px()));
  CHECK(std::isnan(b.mid()));
  REQUIRE(b.apply(kBid, 10.0, 1, 0) == BookStatus::Ok);
  CHECK(b.best_bid_px() == 10.0);
  CHECK(std::isnan(b.best_ask_px()));
  CHECK(std::isnan(b.spread()));
  CHECK(std::isnan(b.microprice()));
  CHECK(std::isnan(b.imbalance()));
}

TEST_CASE("book_top_copies_best_first_and_stops_at_depth") {
  const OrderBook b = small_book();
  double px[4] = {};
  double sz[4] = {};
  CHECK(b.top(Side::Bid, 4, px, sz) == 2);
  CHECK(px[0] == 100.00);
  CHECK(sz[0] == 5);
  CHECK(px[1] == 99.99);
  CHECK(sz[1] == 7);
  CHECK(b.top(Side::Ask, 1, px, sz) == 1);
  CHECK(px[0] == 100.02);
}

TEST_CASE("book_levels_are_sorted_worst_first_on_both_sides") {
  const OrderBook b = small_book();
  const auto bids = b.levels(Side::Bid);
  const auto asks = b.levels(Side::Ask);
  REQUIRE(bids.size() == 2);
  REQUIRE(asks.size() == 2);
  CHECK(bids[0].ticks == 9999);
  CHECK(bids[1].ticks == 10000);
  CHECK(asks[0].ticks == 10003);
  CHECK(asks[1].ticks == 10002);
}

TEST_CASE("book_updates_an_existing_level_in_place_and_keeps_its_price") {
  OrderBook b = small_book();
  REQUIRE(b.apply(kBid, 99.99, 11, 0) == BookStatus::Ok);
  CHECK(b.depth(Side::Bid) == 2);
  CHECK(b.levels(Side::Bid)[0].size == 11);
}

TEST_CASE("book_delete_removes_the_level_and_moves_the_touch") {
  OrderBook b = small_book();
  REQUIRE(b.apply(kBid, 100.00, 0, 0) == BookStatus::Ok);
  CHECK(b.best_bid_px() == 99.99);
  REQUIRE(b.apply(kAsk, 100.02, 0, 0) == BookStatus::Ok);
  CHECK(b.best_ask_px() == 100.03);
}

TEST_CASE("book_rejects_crossed_delta_and_treats_a_locked_book_as_crossed") {
  OrderBook b = small_book();
  const State before = state(b);
  CHECK(b.apply(kBid, 100.02, 1, 0) == BookStatus::Crossed);  // locked: bid == ask
  CHECK(b.apply(kBid, 100.05, 1, 0) == BookStatus::Crossed);
  CHECK(b.apply(kAsk, 100.00, 1, 0) == BookStatus::Crossed);  // locked: ask == bid
  CHECK(b.apply(kAsk, 99.50, 1, 0) == BookStatus::Crossed);
  CHECK(state(b) == before);
  CHECK(b.apply(kBid, 100.01, 1, 0) == BookStatus::Ok);  // one tick inside is fine
}

TEST_CASE("book_rejects_bad_values_and_leaves_the_book_unchanged") {
  OrderBook b = small_book();
  const State before = state(b);
  CHECK(b.apply(2, 100.0, 1, 0) == BookStatus::BadSide);
  CHECK(b.apply(kBid, kNaN, 1, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, kInf, 1, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, -1.0, 1, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, 0.0, 1, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, 99.0, -1.0, 0) == BookStatus::BadSize);
  CHECK(b.apply(kBid, 99.0, kNaN, 0) == BookStatus::BadSize);
  CHECK(b.apply(kBid, 99.0, kInf, 0) == BookStatus::BadSize);
  CHECK(b.apply(kBid, 99.005, 1, 0) == BookStatus::OffTick);
  CHECK(b.apply(kBid, 98.0, 0, 0) == BookStatus::NoLevel);
  CHECK(state(b) == before);
}

TEST_CASE("book_rejects_off_tick_prices_at_large_tick_counts") {
  // 100.00005 is half a tick off on a 1e-4 tick (a million ticks up): a tolerance relative to
  // the tick count must not swallow it.
  OrderBook b(0.0001);
  CHECK(b.apply(kBid, 100.00005, 1, 0) == BookStatus::OffTick);
  CHECK(b.apply(kBid, 100.00001, 1, 0) == BookStatus::OffTick);
  CHECK(b.apply(kBid, 123456.78905, 1, 0) == BookStatus::OffTick);
  CHECK(b.empty());
  CHECK(b.apply(kBid, 123456.7891, 1, 0) == BookStatus::Ok);
}

TEST_CASE("book_accepts_on_tick_prices_carrying_floating_point_noise") {
  OrderBook b(0.01);
  CHECK(b.apply(kBid, 0.1 + 0.2, 1, 0) == BookStatus::Ok);  // 0.30000000000000004
  CHECK(b.apply(kBid, 0.07, 1, 0) == BookStatus::Ok);       // 0.07 / 0.01 = 7.000000000000001
  CHECK(b.apply(kBid, 1234567.89, 1, 0) == BookStatus::Ok);
  CHECK(b.levels(Side::Bid)[0].ticks == 7);
  CHECK(b.levels(Side::Bid)[1].ticks == 30);
  CHECK(b.levels(Side::Bid)[2].ticks == 123456789);
}

TEST_CASE("book_rejects_a_positive_price_below_one_tick") {
  OrderBook b(0.01);
  CHECK(b.apply(kBid, 1e-12, 1, 0) == BookStatus::OffTick);
  CHECK(b.apply(kBid, 0.004, 1, 0) == BookStatus::OffTick);
  CHECK(b.empty());
}

TEST_CASE("book_rejects_prices_beyond_the_exact_tick_range") {
  OrderBook b(0.01);
  CHECK(b.apply(kBid, 1e300, 1, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, 0.02 * OrderBook::kMaxTicks, 1, 0) == BookStatus::BadPrice);
  CHECK(b.empty());
}

TEST_CASE("book_constructor_rejects_a_bad_tick_size") {
  CHECK_THROWS_AS(OrderBook{0.0}, std::invalid_argument);
  CHECK_THROWS_AS(OrderBook{-0.01}, std::invalid_argument);
  CHECK_THROWS_AS(OrderBook{kNaN}, std::invalid_argument);
  CHECK_THROWS_AS(OrderBook{kInf}, std::invalid_argument);
}

TEST_CASE("book_sequence_gap_is_applied_and_counted_stale_is_rejected") {
  OrderBook b(0.01);
  CHECK(b.apply(kBid, 10.0, 1, 5) == BookStatus::Ok);  // first sequenced update: no gap
  CHECK(b.apply(kBid, 10.0, 2, 6) == BookStatus::Ok);
  CHECK(b.apply(kBid, 10.0, 3, 9) == BookStatus::Gap);
  CHECK(b.gaps() == 1);
  CHECK(b.last_seq() == 9);
  CHECK(b.levels(Side::Bid)[0].size == 3);
  const State before = state(b);
  CHECK(b.apply(kBid, 10.0, 4, 9) == BookStatus::Stale);
  CHECK(b.apply(kBid, 10.0, 4, 3) == BookStatus::Stale);
  CHECK(state(b) == before);
}

TEST_CASE("book_seq_zero_is_unsequenced_and_skips_the_checks") {
  OrderBook b(0.01);
  REQUIRE(b.apply(kBid, 10.0, 1, 7) == BookStatus::Ok);
  CHECK(b.apply(kBid, 10.0, 2, 0) == BookStatus::Ok);
  CHECK(b.last_seq() == 7);
  CHECK(b.apply(kBid, 10.0, 3, 8) == BookStatus::Ok);
  CHECK(b.gaps() == 0);
}

TEST_CASE("book_rejected_update_does_not_consume_its_sequence_number") {
  OrderBook b(0.01);
  REQUIRE(b.apply(kAsk, 10.0, 1, 1) == BookStatus::Ok);
  CHECK(b.apply(kBid, 10.0, 1, 2) == BookStatus::Crossed);
  CHECK(b.last_seq() == 1);
  CHECK(b.apply(kBid, 9.99, 1, 2) == BookStatus::Ok);
  CHECK(b.gaps() == 0);
}

TEST_CASE("book_snapshot_replaces_the_book_sorted_and_resyncs_the_sequence") {
  OrderBook b = small_book();
  REQUIRE(b.apply(kBid, 99.0, 1, 10) == BookStatus::Ok);
  const std::vector<double> bp{9.98, 10.00, 9.99}, bs{1, 2, 3};
  const std::vector<double> ap{10.02, 10.01}, as{4, 5};
  REQUIRE(b.snapshot(bp, bs, ap, as, 20) == BookStatus::Ok);
  CHECK(b.best_bid_px() == 10.00);
  CHECK(b.best_bid_sz() == 2);
  CHECK(b.best_ask_px() == 10.01);
  CHECK(b.depth(Side::Bid) == 3);
  CHECK(b.levels(Side::Bid)[0].ticks == 998);
  CHECK(b.levels(Side::Ask)[0].ticks == 1002);
  CHECK(b.last_seq() == 20);
  CHECK(b.snapshots() == 1);
  CHECK(b.apply(kBid, 10.00, 1, 21) == BookStatus::Ok);
  CHECK(b.gaps() == 0);
}

TEST_CASE("book_snapshot_skips_zero_size_levels") {
  OrderBook b(0.01);
  const std::vector<double> bp{10.00, 9.99}, bs{0, 3};
  REQUIRE(b.snapshot(bp, bs, {}, {}, 0) == BookStatus::Ok);
  CHECK(b.depth(Side::Bid) == 1);
  CHECK(b.best_bid_px() == 9.99);
}

TEST_CASE("book_snapshot_is_all_or_nothing") {
  OrderBook b = small_book();
  REQUIRE(b.apply(kBid, 99.0, 1, 10) == BookStatus::Ok);
  const State before = state(b);
  const std::vector<double> ok_px{10.00}, ok_sz{1};
  const std::vector<double> ap{10.01}, as{1};
  CHECK(b.snapshot(std::vector<double>{10.00, kNaN}, std::vector<double>{1, 1}, ap, as, 0) ==
        BookStatus::BadPrice);
  CHECK(b.snapshot(ok_px, std::vector<double>{-1}, ap, as, 0) == BookStatus::BadSize);
  CHECK(b.snapshot(std::vector<double>{10.005}, ok_sz, ap, as, 0) == BookStatus::OffTick);
  CHECK(b.snapshot(ok_px, ok_sz, std::vector<double>{10.00}, as, 0) == BookStatus::Crossed);
  CHECK(b.snapshot(std::vector<double>{10.00, 10.00}, std::vector<double>{1, 2}, ap, as, 0) ==
        BookStatus::Duplicate);
  CHECK(b.snapshot(ok_px, ok_sz, ap, as, 10) == BookStatus::Stale);
  CHECK(b.snapshot(ok_px, std::vector<double>{1, 2}, ap, as, 0) == BookStatus::BadLength);
  CHECK(state(b) == before);
}

TEST_CASE("book_snapshot_rejects_a_duplicate_even_when_one_copy_has_zero_size") {
  OrderBook b(0.01);
  const std::vector<double> bp{10.00, 10.00}, bs{5, 0};
  CHECK(b.snapshot(bp, bs, {}, {}, 0) == BookStatus::Duplicate);
  CHECK(b.empty());
}

TEST_CASE("book_clear_empties_both_sides_and_keeps_the_sequence") {
  OrderBook b = small_book();
  REQUIRE(b.apply(kBid, 99.0, 1, 4) == BookStatus::Ok);
  b.clear();
  CHECK(b.empty());
  CHECK(b.last_seq() == 4);
}

TEST_CASE("book_unchecked_apply_ignores_delete_of_absent_level_and_counts_gaps") {
  OrderBook b = small_book();
  b.apply_unchecked(kBid, 98.00, 0, 1);
  CHECK(b.depth(Side::Bid) == 2);
  b.apply_unchecked(kBid, 98.00, 2, 3);
  CHECK(b.depth(Side::Bid) == 3);
  CHECK(b.gaps() == 1);
  CHECK(b.last_seq() == 3);
}

TEST_CASE("book_unchecked_apply_survives_garbage_without_undefined_behaviour") {
  // Garbage in makes a meaningless book, but never an out-of-bounds access (checked by ASan).
  OrderBook b(0.01);
  b.apply_unchecked(7, 10.0, 1, 0);
  b.apply_unchecked(kBid, kNaN, 1, 0);
  b.apply_unchecked(kBid, kInf, 1, 0);
  b.apply_unchecked(kBid, -5.0, 1, 0);
  b.apply_unchecked(kAsk, 1e300, 1, 0);
  CHECK(b.depth(Side::Bid) + b.depth(Side::Ask) >= 1);
}

TEST_CASE("book_status_names_are_distinct") {
  for (int i = 0; i <= 10; ++i) {
    for (int j = 0; j < i; ++j) {
      CHECK(std::string(to_string(static_cast<BookStatus>(i))) !=
            std::string(to_string(static_cast<BookStatus>(j))));
    }
  }
  CHECK(applied(BookStatus::Ok));
  CHECK(applied(BookStatus::Gap));
  CHECK_FALSE(applied(BookStatus::Crossed));
}

namespace {

// Reference model: std::map per side keyed by ticks; the same validation rules, written plainly.
struct Model {
  double tick;
  std::map<std::int64_t, std::pair<double, double>> bids, asks;  // ticks -> (price, size)
  std::uint64_t last_seq = 0, gaps = 0;

  BookStatus apply(std::uint8_t side, std::int64_t ticks, double price, double size,
                   std::uint64_t seq) {
    if (seq != 0 && seq <= last_seq) return BookStatus::Stale;
    auto& me = side == 0 ? bids : asks;
    if (size == 0) {
      if (me.erase(ticks) == 0) return BookStatus::NoLevel;
    } else {
      if (side == 0 && !asks.empty() && ticks >= asks.begin()->first) return BookStatus::Crossed;
      if (side == 1 && !bids.empty() && ticks <= bids.rbegin()->first) return BookStatus::Crossed;
      auto [it, inserted] = me.try_emplace(ticks, price, size);
      if (!inserted) it->second.second = size;
    }
    if (seq == 0) return BookStatus::Ok;
    const bool gap = last_seq != 0 && seq != last_seq + 1;
    last_seq = seq;
    gaps += gap ? 1 : 0;
    return gap ? BookStatus::Gap : BookStatus::Ok;
  }
};

void check_matches(const OrderBook& b, const Model& m) {
  const auto bids = b.levels(Side::Bid);
  const auto asks = b.levels(Side::Ask);
  REQUIRE(bids.size() == m.bids.size());
  REQUIRE(asks.size() == m.asks.size());
  std::size_t i = 0;
  for (const auto& [t, ps] : m.bids) {  // ascending = worst bid first
    CHECK(bids[i].ticks == t);
    CHECK(bids[i].size == ps.second);
    ++i;
  }
  i = 0;
  for (auto it = m.asks.rbegin(); it != m.asks.rend(); ++it) {  // descending = worst ask first
    CHECK(asks[i].ticks == it->first);
    CHECK(asks[i].size == it->second.second);
    ++i;
  }
  CHECK(b.last_seq() == m.last_seq);
  CHECK(b.gaps() == m.gaps);
}

}  // namespace

TEST_CASE("book_matches_a_map_model_on_a_random_stream_through_both_paths") {
  // Deep books (inserts far from the touch exercise the binary-search fallback), random
  // crossing attempts, deletes of absent levels, stale and skipped sequence numbers.
  std::mt19937_64 rng(12345);
  OrderBook checked(0.01);
  OrderBook unchecked(0.01);
  Model model{0.01, {}, {}, 0, 0};
  std::uint64_t seq = 0;
  for (int i = 0; i < 200000; ++i) {
    const auto side = static_cast<std::uint8_t>(rng() & 1);
    const std::int64_t centre = 10000;
    const auto off = static_cast<std::int64_t>(rng() % 120);
    const std::int64_t ticks = side == 0 ? centre - off : centre + 1 + off - 3;
    const double price = static_cast<double>(ticks) * 0.01;
    const double size = (rng() % 4 == 0) ? 0.0 : static_cast<double>(1 + rng() % 100);
    const auto r = rng() % 100;
    std::uint64_t s = 0;
    if (r < 80) {
      s = ++seq;
    } else if (r < 85) {
      seq += 2;
      s = seq;
    } else if (r < 88) {
      s = seq;  // stale
    }
    const BookStatus want = model.apply(side, ticks, price, size, s);
    const BookStatus got = checked.apply(side, price, size, s);
    REQUIRE(got == want);
    if (applied(got)) unchecked.apply_unchecked(side, price, size, s);
    if (i % 997 == 0) {
      check_matches(checked, model);
      check_matches(unchecked, model);
    }
  }
  check_matches(checked, model);
  check_matches(unchecked, model);
  CHECK(checked.depth(Side::Bid) > 20);
  CHECK(checked.depth(Side::Ask) > 20);
}

TEST_CASE("book_reports_an_out_of_range_price_before_a_bad_size") {
  OrderBook b(0.01);
  CHECK(b.apply(kBid, 1e300, -1.0, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, kInf, kNaN, 0) == BookStatus::BadPrice);
  CHECK(b.apply(kBid, 99.005, -1.0, 0) == BookStatus::BadSize);  // off-tick is checked later
}

TEST_CASE("book_apply_batch_equals_applying_rows_one_by_one") {
  std::mt19937_64 rng(7);
  std::vector<std::uint8_t> side;
  std::vector<double> price, size;
  std::vector<std::uint64_t> seq;
  for (int i = 0; i < 5000; ++i) {
    side.push_back(static_cast<std::uint8_t>(rng() % 3));  // some BadSide rows
    price.push_back(static_cast<double>(9950 + static_cast<std::int64_t>(rng() % 100)) * 0.01);
    size.push_back(rng() % 5 == 0 ? 0.0 : static_cast<double>(rng() % 9));
    // 0 (unsequenced), in order, repeated (stale) or skipped (gap).
    seq.push_back(rng() % 10 == 0 ? 0 : static_cast<std::uint64_t>(i) + 3 - rng() % 4);
  }
  OrderBook one(0.01);
  std::vector<std::int64_t> want_rows;
  std::vector<std::uint8_t> want_reasons;
  for (std::size_t i = 0; i < side.size(); ++i) {
    const BookStatus s = one.apply(side[i], price[i], size[i], seq[i]);
    if (!applied(s)) {
      want_rows.push_back(static_cast<std::int64_t>(i));
      want_reasons.push_back(static_cast<std::uint8_t>(s));
    }
  }
  OrderBook batch(0.01);
  std::vector<std::int64_t> rows;
  std::vector<std::uint8_t> reasons;
  CHECK(batch.apply_batch(side, price, size, seq, true, rows, reasons) == want_rows.size());
  CHECK(rows == want_rows);
  CHECK(reasons == want_reasons);
  CHECK(state(batch) == state(one));
  CHECK(want_rows.size() > 100);
  CHECK(batch.gaps() > 100);
  CHECK(batch.depth(Side::Bid) > 10);
}

TEST_CASE("book_apply_batch_unchecked_reports_nothing_and_rejects_ragged_columns") {
  OrderBook b = small_book();
  std::vector<std::int64_t> rows;
  std::vector<std::uint8_t> reasons;
  const std::vector<std::uint8_t> side{kBid, kAsk};
  const std::vector<double> price{100.01, 100.03}, size{2, 0};
  const std::vector<std::uint64_t> seq{1, 2};
  CHECK(b.apply_batch(side, price, size, seq, false, rows, reasons) == 0);
  CHECK(rows.empty());
  CHECK(b.best_bid_px() == 100.01);
  CHECK(b.depth(Side::Ask) == 1);
  CHECK(b.last_seq() == 2);
  const std::vector<double> short_size{1};
  CHECK_THROWS_AS(b.apply_batch(side, price, short_size, seq, true, rows, reasons),
                  std::invalid_argument);
}
