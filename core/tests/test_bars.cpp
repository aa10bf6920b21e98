#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "tickserver/bars.hpp"

using namespace tickserver;

namespace {
constexpr std::int64_t S = kNanosPerSecond;
constexpr std::int64_t M = kNanosPerMinute;
}  // namespace

TEST_CASE("bar_aggregates_ohlcv_vwap_and_trade_count") {
  const BarClock clock(M);
  BarSeries s(10);
  CHECK(s.add(1 * S, 10.0, 1.0, clock) == BarEvent::Opened);
  CHECK(s.add(2 * S, 12.0, 3.0, clock) == BarEvent::Updated);
  CHECK(s.add(3 * S, 9.0, 1.0, clock) == BarEvent::Updated);
  CHECK(s.add(4 * S, 11.0, 5.0, clock) == BarEvent::Updated);
  REQUIRE(s.has_forming());
  const Bar& b = s.forming();
  CHECK(b.ts_open == 0);
  CHECK(b.open == 10.0);
  CHECK(b.high == 12.0);
  CHECK(b.low == 9.0);
  CHECK(b.close == 11.0);
  CHECK(b.volume == 10.0);
  CHECK(b.trades == 4);
  CHECK(b.vwap() == doctest::Approx((10.0 + 36.0 + 9.0 + 55.0) / 10.0));
  CHECK(s.forming_end() == M);
}

TEST_CASE("bar_closes_when_a_trade_arrives_past_its_end_and_skips_empty_intervals") {
  const BarClock clock(M);
  BarSeries s(10);
  (void)s.add(10 * S, 10.0, 1.0, clock);
  CHECK(s.add(3 * M + 5 * S, 11.0, 1.0, clock) == BarEvent::Rolled);  // minutes 1 and 2 empty
  REQUIRE(s.closed().size() == 1);
  CHECK(s.closed().back().ts_open == 0);
  CHECK(s.closed().back().close == 10.0);
  CHECK(s.forming().ts_open == 3 * M);
}

TEST_CASE("late_trade_is_counted_and_never_changes_a_bar") {
  const BarClock clock(M);
  BarSeries s(10);
  (void)s.add(10 * S, 10.0, 1.0, clock);
  (void)s.add(M + 1 * S, 11.0, 1.0, clock);  // closes minute 0
  const Bar closed = s.closed().back();
  const Bar forming = s.forming();
  CHECK(s.add(30 * S, 99.0, 50.0, clock) == BarEvent::Late);
  CHECK(s.late() == 1);
  CHECK(s.closed().size() == 1);
  CHECK(s.closed().back().high == closed.high);
  CHECK(s.closed().back().volume == closed.volume);
  CHECK(s.forming().high == forming.high);
  CHECK(s.forming().volume == forming.volume);
}

TEST_CASE("advance_closes_bars_whose_end_is_at_or_before_now") {
  const BarClock clock(M);
  BarSeries s(10);
  (void)s.add(10 * S, 10.0, 1.0, clock);
  CHECK_FALSE(s.advance(M - 1));
  CHECK(s.has_forming());
  CHECK(s.advance(M));
  CHECK_FALSE(s.has_forming());
  CHECK(s.closed().size() == 1);
  // The interval just closed is over: a trade stamped inside it is late, not a new bar.
  CHECK(s.add(50 * S, 10.0, 1.0, clock) == BarEvent::Late);
  CHECK(s.add(M + 1, 10.0, 1.0, clock) == BarEvent::Opened);
}

TEST_CASE("bars_bucket_negative_timestamps_by_floor") {
  const BarClock clock(M);
  CHECK(clock.bucket(-1).start == -M);
  CHECK(clock.bucket(-1).end == 0);
  CHECK(clock.bucket(-M).start == -M);
  CHECK(clock.bucket(0).start == 0);
}

TEST_CASE("day_bars_default_to_utc_midnight") {
  const SessionCalendar cal;
  const BarClock clock(kNanosPerDay, &cal);
  const std::int64_t t = 3 * kNanosPerDay + 5 * kNanosPerHour;
  CHECK(clock.bucket(t).start == 3 * kNanosPerDay);
  CHECK(clock.bucket(t).end == 4 * kNanosPerDay);
}

TEST_CASE("day_bars_follow_session_boundaries_and_extrapolate_by_24h") {
  SessionCalendar cal;
  const std::int64_t open1 = 10 * kNanosPerDay + 13 * kNanosPerHour + 30 * M;  // 13:30 UTC
  const std::int64_t open2 = 13 * kNanosPerDay + 13 * kNanosPerHour + 30 * M;  // after a weekend
  cal.set_boundaries({open1, open2});
  const BarClock clock(kNanosPerDay, &cal);
  const TimeSpan mid = clock.bucket(12 * kNanosPerDay);
  CHECK(mid.start == open1);
  CHECK(mid.end == open2);
  const TimeSpan after = clock.bucket(open2 + kNanosPerDay + 1);
  CHECK(after.start == open2 + kNanosPerDay);
  CHECK(after.end == open2 + 2 * kNanosPerDay);
  const TimeSpan before = clock.bucket(open1 - 1);
  CHECK(before.start == open1 - kNanosPerDay);
  CHECK(before.end == open1);
  // Other intervals ignore the calendar.
  const BarClock hour(kNanosPerHour, &cal);
  CHECK(hour.bucket(open1).start == open1 - 30 * M);
}

TEST_CASE("session_calendar_rejects_unsorted_boundaries") {
  SessionCalendar cal;
  CHECK_THROWS_AS(cal.set_boundaries({5, 5}), std::invalid_argument);
  CHECK_THROWS_AS(cal.set_boundaries({5, 3}), std::invalid_argument);
  CHECK(cal.version() == 0);
  cal.set_boundaries({1, 2});
  CHECK(cal.version() == 1);
}

TEST_CASE("bar_vwap_is_nan_when_every_trade_had_size_zero") {
  const BarClock clock(M);
  BarSeries s(2);
  (void)s.add(1, 10.0, 0.0, clock);
  CHECK(std::isnan(s.forming().vwap()));
}

TEST_CASE("closed_bar_ring_keeps_bar_capacity_bars") {
  const BarClock clock(S);
  BarSeries s(3);
  for (int i = 0; i < 10; ++i) (void)s.add(i * S, 1.0 + i, 1.0, clock);
  CHECK(s.closed().size() == 3);
  CHECK(s.closed().overwritten() == 6);
  CHECK(s.closed()[0].ts_open == 6 * S);
}

TEST_CASE("bar_interval_must_be_positive") {
  CHECK_THROWS_AS(BarClock(0), std::invalid_argument);
}
