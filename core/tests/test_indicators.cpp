#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "tickserver/indicators.hpp"

using namespace tickserver;

TEST_CASE("sma_matches_hand_computed_values") {
  Sma s(3);
  CHECK(std::isnan(s.update(1)));
  CHECK(std::isnan(s.update(2)));
  CHECK(s.update(3) == 2.0);
  CHECK(s.update(4) == 3.0);
  CHECK(s.update(8) == 5.0);
  CHECK(s.lookback() == 2);
}

TEST_CASE("sma_of_period_one_is_the_input") {
  Sma s(1);
  CHECK(s.update(7.5) == 7.5);
  CHECK(s.update(-2.0) == -2.0);
}

TEST_CASE("ema_is_seeded_by_the_sma_then_smoothed") {
  Ema e(3);  // k = 0.5
  CHECK(std::isnan(e.update(1)));
  CHECK(std::isnan(e.update(2)));
  CHECK(e.update(3) == 2.0);
  CHECK(e.update(4) == 3.0);
  CHECK(e.update(6) == 4.5);
  CHECK(e.value() == 4.5);
}

TEST_CASE("rsi_matches_hand_computed_wilder_values") {
  Rsi r(2);
  CHECK(std::isnan(r.update(1)));
  CHECK(std::isnan(r.update(2)));
  CHECK(r.update(1) == 50.0);   // gains 1, losses 1
  CHECK(r.update(2) == 75.0);   // (0.5+1)/2 vs 0.5/2
  CHECK(r.update(3) == 87.5);
  CHECK(r.lookback() == 2);
}

TEST_CASE("rsi_of_constant_prices_is_zero_like_talib") {
  Rsi r(3);
  double last = 0;
  for (int i = 0; i < 10; ++i) last = r.update(5.0);
  CHECK(last == 0.0);
}

TEST_CASE("macd_of_a_linear_ramp_has_constant_line_and_zero_histogram") {
  Macd m(2, 3, 2);
  for (int i = 1; i <= 3; ++i) CHECK(std::isnan(m.update(i).macd));
  const MacdValue v = m.update(4);  // first output at lookback (3-1)+(2-1) = 3
  CHECK(v.macd == 0.5);
  CHECK(v.signal == 0.5);
  CHECK(v.hist == 0.0);
  const MacdValue w = m.update(5);
  CHECK(w.macd == doctest::Approx(0.5));
  CHECK(m.lookback() == 3);
}

TEST_CASE("macd_swaps_fast_and_slow_like_talib") {
  const Macd m(26, 12, 9);
  CHECK(m.fast() == 12);
  CHECK(m.slow() == 26);
}

TEST_CASE("bbands_are_mean_plus_minus_k_population_stddev") {
  BBands b(3, 2.0);
  (void)b.update(1);
  (void)b.update(2);
  const Bands v = b.update(3);
  const double sd = std::sqrt(2.0 / 3.0);
  CHECK(v.middle == 2.0);
  CHECK(v.upper == doctest::Approx(2.0 + 2 * sd).epsilon(1e-14));
  CHECK(v.lower == doctest::Approx(2.0 - 2 * sd).epsilon(1e-14));
}

TEST_CASE("stddev_is_population_stddev_of_the_window") {
  StdDev s(4);
  const double xs[] = {2, 4, 4, 4, 5, 5, 7, 9};
  double last = 0;
  for (const double x : xs) last = s.update(x);
  // last window {5, 5, 7, 9}: mean 6.5, variance 2.75
  CHECK(last == doctest::Approx(std::sqrt(2.75)).epsilon(1e-14));
}

TEST_CASE("stddev_resolves_tiny_spreads_on_a_large_level") {
  // TA-Lib 0.8 measures deviations from a shift, so sd of {1, 1+1e-8, ...} is ~5e-9, not 0.
  StdDev s(4);
  double last = 0;
  for (int i = 0; i < 12; ++i) last = s.update(i % 2 ? 1.0 + 1e-8 : 1.0);
  CHECK(last == doctest::Approx(0.5e-8).epsilon(1e-6));
}

TEST_CASE("stddev_of_a_flat_window_is_exactly_zero") {
  StdDev s(5);
  double last = 1;
  for (int i = 0; i < 50; ++i) last = s.update(i < 20 ? 100.0 + i : 123.25);
  CHECK(last == 0.0);
}

TEST_CASE("zscore_measures_distance_from_the_window_mean_in_stddevs") {
  ZScore z(3);
  (void)z.update(1);
  (void)z.update(2);
  CHECK(z.update(3) == doctest::Approx(1.0 / std::sqrt(2.0 / 3.0)).epsilon(1e-14));
  ZScore flat(3);
  for (int i = 0; i < 5; ++i) (void)flat.update(4.0);
  CHECK(std::isnan(flat.value()));
}

TEST_CASE("atr_matches_hand_computed_true_ranges") {
  Atr a(2);
  CHECK(std::isnan(a.update(10, 8, 9)));
  CHECK(std::isnan(a.update(11, 9, 10)));   // TR 2
  CHECK(a.update(12, 9, 11) == 2.5);        // TR 3, seed (2+3)/2
  CHECK(a.update(11, 10, 10) == 1.75);      // TR 1: 0.5*2.5 + 0.5*1
  CHECK(a.lookback() == 2);
}

TEST_CASE("vwap_resets_each_utc_day_and_ignores_trades_from_before_the_session") {
  Vwap v;
  const std::int64_t day = kNanosPerDay;
  CHECK(v.update(10.0, 1.0, day + 1) == 10.0);
  CHECK(v.update(20.0, 3.0, day + 2) == 17.5);
  CHECK(v.update(99.0, 5.0, day - 1) == 17.5);  // yesterday's trade arriving late
  CHECK(v.update(30.0, 1.0, 2 * day) == 30.0);  // new day
}

TEST_CASE("vwap_follows_day_boundaries_when_set") {
  Vwap v;
  const std::int64_t open = 14 * kNanosPerHour;
  v.set_day_boundaries({open, open + kNanosPerDay});
  CHECK(v.update(10.0, 1.0, open - 10) == 10.0);   // previous session
  CHECK(v.update(20.0, 1.0, open + 10) == 20.0);   // new session at 14:00
  CHECK(v.update(40.0, 1.0, 20 * kNanosPerHour) == 30.0);
}

TEST_CASE("vwap_is_nan_without_volume") {
  Vwap v;
  CHECK(std::isnan(v.update(10.0, 0.0, 1)));
}

TEST_CASE("peek_returns_what_update_would_without_changing_state") {
  const double xs[] = {10, 11, 10.5, 12, 13, 12.5, 11, 10, 10.25, 11.5, 12.75, 13.5, 12, 11};
  Sma sma(4);
  Ema ema(4);
  Rsi rsi(3);
  Macd macd(3, 5, 2);
  BBands bb(4, 2.0);
  Atr atr(3);
  StdDev sd(4);
  ZScore z(4);
  for (const double x : xs) {
    const double p_sma = sma.peek(x), p_ema = ema.peek(x), p_rsi = rsi.peek(x);
    const MacdValue p_macd = macd.peek(x);
    const Bands p_bb = bb.peek(x);
    const double p_atr = atr.peek(x + 1, x - 1, x), p_sd = sd.peek(x), p_z = z.peek(x);
    auto same = [](double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); };
    CHECK(same(sma.peek(x + 5), sma.peek(x + 5)));  // peeking twice changes nothing
    CHECK(same(p_sma, sma.update(x)));
    CHECK(same(p_ema, ema.update(x)));
    CHECK(same(p_rsi, rsi.update(x)));
    const MacdValue u = macd.update(x);
    CHECK(same(p_macd.macd, u.macd));
    CHECK(same(p_macd.signal, u.signal));
    const Bands ub = bb.update(x);
    CHECK(same(p_bb.upper, ub.upper));
    CHECK(same(p_bb.lower, ub.lower));
    CHECK(same(p_atr, atr.update(x + 1, x - 1, x)));
    CHECK(same(p_sd, sd.update(x)));
    CHECK(same(p_z, z.update(x)));
  }
}

TEST_CASE("update_many_equals_repeated_update") {
  std::vector<double> xs;
  for (int i = 0; i < 200; ++i) xs.push_back(100.0 + std::sin(i * 0.3) * 5 + i * 0.01);
  Ema a(10), b(10);
  std::vector<double> out(xs.size());
  update_many(a, xs, out);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double v = b.update(xs[i]);
    CHECK((v == out[i] || (std::isnan(v) && std::isnan(out[i]))));
  }
}

TEST_CASE("indicators_reject_periods_outside_talib_ranges") {
  CHECK_THROWS_AS(Sma(0), std::invalid_argument);
  CHECK_THROWS_AS(Ema(100001), std::invalid_argument);
  CHECK_THROWS_AS(Rsi(1), std::invalid_argument);
  CHECK_THROWS_AS(StdDev(1), std::invalid_argument);
  CHECK_THROWS_AS(BBands(1, 2.0), std::invalid_argument);
  CHECK_THROWS_AS(Macd(1, 26, 9), std::invalid_argument);
  CHECK_THROWS_AS(Macd(12, 26, 0), std::invalid_argument);
  CHECK_THROWS_AS(Atr(0), std::invalid_argument);
  CHECK_THROWS_AS(BBands(20, std::nan("")), std::invalid_argument);
}
