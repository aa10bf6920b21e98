#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "tickserver/bars.hpp"
#include "tickserver/indicators.hpp"
#include "tickserver/ring_buffer.hpp"
#include "tickserver/signals.hpp"

// The block paths (kernels over many inputs, bulk ring and bar updates, rule scans) against the
// one-at-a-time operations they replace: same results, bit for bit.

using namespace tickserver;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

/// A random walk with flat stretches and outliers entering and leaving the window (both make
/// the variance reseed).
std::vector<double> awkward_series(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x;
  double p = 100.0;
  for (std::size_t i = 0; i < n; ++i) {
    const int mode = static_cast<int>(rng() % 50);
    if (mode == 0) {
      x.push_back(p * 1e4);  // an outlier
      continue;
    }
    if (mode > 10) p += (static_cast<double>(rng() % 2001) - 1000.0) * 1e-4;  // else flat
    x.push_back(p);
  }
  return x;
}

std::vector<std::size_t> random_splits(std::size_t n, std::mt19937_64& rng) {
  std::vector<std::size_t> sizes;
  while (n > 0) {
    const std::size_t k = std::min<std::size_t>(n, 1 + rng() % 70);
    sizes.push_back(k);
    n -= k;
  }
  return sizes;
}

void check_same_state(const MomentsState& a, const MomentsState& b) {
  CHECK(a.count == b.count);
  CHECK(same_bits(a.sum, b.sum));
  CHECK(same_bits(a.shift, b.shift));
  CHECK(same_bits(a.t1, b.t1));
  CHECK(same_bits(a.t2, b.t2));
  CHECK(a.bars == b.bars);
  CHECK(same_bits(a.total, b.total));
  CHECK(same_bits(a.var, b.var));
}

template <bool Var>
void check_moments_blocks(int period) {
  const MomentsParams p(period, Var);
  const std::vector<double> x = awkward_series(3000, static_cast<std::uint64_t>(period));
  MomentsState one, block;
  std::vector<double> hist_one(p.lag), hist_block(p.lag);
  moments::reset(p, one, hist_one.data());
  moments::reset(p, block, hist_block.data());
  std::vector<double> tot(x.size()), var(x.size());
  std::mt19937_64 rng(7);
  std::size_t at = 0;
  for (const std::size_t k : random_splits(x.size(), rng)) {
    moments::run<Var, true, Var>(p, block, hist_block.data(), x.data() + at, k, tot.data() + at,
                                 Var ? var.data() + at : nullptr);
    at += k;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    moments::update<Var>(p, one, hist_one.data(), x[i]);
    CHECK(same_bits(tot[i], one.total));
    if constexpr (Var) CHECK(same_bits(var[i], one.var));
  }
  check_same_state(one, block);
  // The histories hold the same inputs, oldest first from their own positions.
  for (std::size_t j = 0; j < p.lag; ++j) {
    CHECK(hist_one[(one.pos + j) % p.lag] == hist_block[(block.pos + j) % p.lag]);
  }
}

}  // namespace

TEST_CASE("moments_block_kernel_equals_one_update_at_a_time") {
  for (const int period : {1, 2, 5, 20, 64}) {
    CAPTURE(period);
    check_moments_blocks<true>(period);
    check_moments_blocks<false>(period);
  }
}

TEST_CASE("indicator_block_kernels_equal_one_update_at_a_time_across_any_split") {
  const std::vector<double> x = awkward_series(2000, 3);
  std::mt19937_64 rng(11);
  const auto splits = random_splits(x.size(), rng);
  EmaState e1, e2;
  RsiState r1, r2;
  MacdState m1, m2;
  const EmaParams ep(9);
  const RsiParams rp(14);
  const MacdParams mp(12, 26, 9);
  std::vector<double> e(x.size()), r(x.size()), ml(x.size()), ms(x.size()), mh(x.size());
  std::size_t at = 0;
  for (const std::size_t k : splits) {
    ema::run<true>(ep, e2, x.data() + at, k, e.data() + at);
    rsi::run<true>(rp, r2, x.data() + at, k, r.data() + at);
    macd::run<true>(mp, m2, x.data() + at, k, ml.data() + at, ms.data() + at, mh.data() + at);
    at += k;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    CHECK(same_bits(e[i], ema::update(ep, e1, x[i])));
    CHECK(same_bits(r[i], rsi::update(rp, r1, x[i])));
    const MacdValue v = macd::update(mp, m1, x[i]);
    CHECK(same_bits(ml[i], v.macd));
    CHECK(same_bits(ms[i], v.signal));
    CHECK(same_bits(mh[i], v.hist));
  }
  CHECK(same_bits(ema::value(ep, e1), ema::value(ep, e2)));
  CHECK(same_bits(rsi::value(rp, r1), rsi::value(rp, r2)));
  CHECK(same_bits(macd::value(mp, m1).signal, macd::value(mp, m2).signal));
}

TEST_CASE("rule_fire_formulas_equal_the_transition_tables") {
  // Every reachable (state, code) pair: crossover codes are 1 and 2, the others 1 to 3.
  for (unsigned prev = 0; prev < 3; ++prev) {
    for (unsigned now = 1; now < 3; ++now) {
      CHECK(rules::fire_crossover(prev, now) == rules::kCrossoverTable[prev * 4 + now]);
    }
  }
  for (unsigned prev = 0; prev < 4; ++prev) {
    for (unsigned now = 1; now < 4; ++now) {
      CHECK(rules::fire_threshold(prev, now) == rules::kThresholdTable[prev * 4 + now]);
      CHECK(rules::fire_breakout(prev, now) == rules::kBreakoutTable[prev * 4 + now]);
    }
  }
}

namespace {

template <RuleKind Kind>
void check_observe(unsigned max_code, bool with_zeros) {
  std::mt19937_64 rng(max_code * 2 + (with_zeros ? 1 : 0));
  const std::int8_t* table = rules::table(Kind);
  rules::State one{};
  rules::State block{};
  std::vector<std::uint8_t> codes(1);
  std::vector<std::int8_t> dir(300);
  for (int round = 0; round < 200; ++round) {
    const std::size_t n = 1 + rng() % 300;
    codes.assign(n + 1, 0);
    codes[0] = static_cast<std::uint8_t>(block);
    for (std::size_t i = 1; i <= n; ++i) {
      // Mostly repeating the previous code, sometimes a change, sometimes unusable (0).
      const unsigned c = rng() % 4 == 0 ? 1 + static_cast<unsigned>(rng() % max_code)
                                        : codes[i - 1] == 0 ? 1 : codes[i - 1];
      codes[i] = static_cast<std::uint8_t>(with_zeros && rng() % 17 == 0 ? 0 : c);
    }
    block = rules::observe<Kind>(codes.data(), n, dir.data());
    for (std::size_t i = 0; i < n; ++i) CHECK(dir[i] == rules::step(table, one, codes[i + 1]));
    CHECK(one == block);
  }
}

}  // namespace

TEST_CASE("rule_block_observation_equals_step_by_step_evaluation") {
  for (const bool zeros : {false, true}) {
    CAPTURE(zeros);
    check_observe<RuleKind::Crossover>(2, zeros);
    check_observe<RuleKind::Threshold>(3, zeros);
    check_observe<RuleKind::Breakout>(3, zeros);
  }
}

TEST_CASE("rule_codes_mark_nan_and_equal_inputs_unusable") {
  const double nan = std::nan("");
  CHECK(rules::crossover_code(1.0, 1.0) == 0);
  CHECK(rules::crossover_code(nan, 1.0) == 0);
  CHECK(rules::crossover_code(2.0, 1.0) == 1);
  CHECK(rules::crossover_code(0.0, 1.0) == 2);
  CHECK(rules::threshold_code(nan, 70, 30) == 0);
  CHECK(rules::threshold_code(50, 70, 30) == 1);
  CHECK(rules::threshold_code(71, 70, 30) == 2);
  CHECK(rules::threshold_code(29, 70, 30) == 3);
  CHECK(rules::threshold_code(29, nan, nan) == 1);  // NaN levels never match
  CHECK(rules::breakout_code(10, nan, 9) == 0);
  CHECK(rules::breakout_code(10, 11, 9) == 1);
  CHECK(rules::breakout_code(12, 11, 9) == 2);
  CHECK(rules::breakout_code(8, 11, 9) == 3);
}

TEST_CASE("trade_ring_bulk_writes_equal_repeated_push") {
  for (const std::size_t capacity : {std::size_t{1}, std::size_t{3}, std::size_t{7}}) {
    CAPTURE(capacity);
    TradeRing one(capacity), many(capacity), scattered(capacity);
    one.reserve();
    many.reserve();
    scattered.reserve();
    std::int64_t t = 0;
    for (const std::size_t n : {std::size_t{2}, std::size_t{1}, std::size_t{9}, std::size_t{5},
                                std::size_t{0}, std::size_t{3}}) {
      std::vector<std::int64_t> ts;
      std::vector<double> px, sz;
      std::vector<std::uint64_t> seq;
      std::vector<std::uint8_t> fl;
      for (std::size_t i = 0; i < n; ++i, ++t) {
        ts.push_back(t);
        px.push_back(100.0 + static_cast<double>(t));
        sz.push_back(static_cast<double>(t % 5));
        seq.push_back(static_cast<std::uint64_t>(t) * 3);
        fl.push_back(static_cast<std::uint8_t>(t % 7));
        one.push(ts.back(), px.back(), sz.back(), seq.back(), fl.back());
      }
      many.push_many(ts.data(), px.data(), sz.data(), seq.data(), fl.data(), n);
      TradeRing::Writer w = scattered.writer();
      for (std::size_t i = 0; i < n; ++i) w.push(ts[i], px[i], sz[i], seq[i], fl[i]);
      scattered.commit(w, n);
      for (const TradeRing* r : {&many, &scattered}) {
        REQUIRE(r->size() == one.size());
        CHECK(r->total_pushed() == one.total_pushed());
        for (std::size_t i = 0; i < one.size(); ++i) {
          CHECK(r->at(i).ts_event == one.at(i).ts_event);
          CHECK(r->at(i).price == one.at(i).price);
          CHECK(r->at(i).size == one.at(i).size);
          CHECK(r->at(i).seq == one.at(i).seq);
          CHECK(r->at(i).flags == one.at(i).flags);
        }
        const RingSlices a = r->last(capacity), b = one.last(capacity);
        CHECK(a.first == b.first);
        CHECK(a.first_len == b.first_len);
      }
    }
  }
}

TEST_CASE("bar_series_bulk_add_equals_add_fast_inside_the_forming_bar") {
  const BarClock clock(kNanosPerMinute);
  BarSeries one(4), bulk(4);
  const std::int64_t s = kNanosPerSecond;
  (void)one.add(1 * s, 10.0, 1.0, clock);
  (void)bulk.add(1 * s, 10.0, 1.0, clock);
  const std::vector<std::int64_t> ts = {2 * s, 3 * s, 3 * s, 50 * s, 59 * s, 60 * s, 61 * s};
  const std::vector<double> px = {10.5, 9.25, 11.0, 10.125, 9.0, 12.0, 13.0};
  const std::vector<double> sz = {2.0, 0.5, 3.0, 0.0, 1.25, 1.0, 1.0};
  const std::size_t m = bulk.forming_prefix(ts.data(), ts.size());
  CHECK(m == 5);  // the trade at 60 s belongs to the next minute
  bulk.add_forming(px.data(), sz.data(), m);
  for (std::size_t i = 0; i < m; ++i) {
    CHECK(one.add_fast(ts[i], px[i], sz[i], clock) == BarEvent::Updated);
  }
  const Bar& a = one.forming();
  const Bar& b = bulk.forming();
  CHECK(a.high == b.high);
  CHECK(a.low == b.low);
  CHECK(a.close == b.close);
  CHECK(same_bits(a.volume, b.volume));
  CHECK(same_bits(a.notional, b.notional));
  CHECK(a.trades == b.trades);
  CHECK(bulk.forming_prefix(ts.data() + m, ts.size() - m) == 0);
  BarSeries empty(4);
  CHECK(empty.forming_prefix(ts.data(), ts.size()) == 0);  // no forming bar: opening is per trade
}
