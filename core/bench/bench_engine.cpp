// Micro-benchmark of Engine::on_trades with the `tickserver bench core` all-in configuration,
// for profiling without Python:
//   bench_engine [ticks] [symbols] [repeats] [mode] [chunk] [warm]
// mode: all (default), norules, noind (ring + bars only), x / t / b (one rule), or an indicator
// name prefix (that indicator only); chunk: rows per on_trades call (0 = one call); warm: feed
// the same trades (shifted later in time) this many times before the timed pass, so that ring,
// bar and result storage is already resident (fresh pages cost a fault on first touch).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tickserver/engine.hpp"

using namespace tickserver;

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  const std::uint32_t n_sym = argc > 2 ? static_cast<std::uint32_t>(std::atoi(argv[2])) : 1;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
  // What to configure: all (default), norules, noind (ring + bars only), or one indicator kind.
  const std::string mode = argc > 4 ? argv[4] : "all";
  // Rows per on_trades call (0 = all in one call). Batches under 512 rows are not grouped.
  const std::size_t chunk = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 0;
  const int warm = argc > 6 ? std::atoi(argv[6]) : 0;

  std::mt19937_64 rng(42);
  std::normal_distribution<double> step(0.0, 0.0005);
  std::uniform_int_distribution<std::uint32_t> pick(0, n_sym - 1);
  std::vector<SymbolId> sym(n);
  std::vector<std::int64_t> ts(n);
  std::vector<double> px(n), sz(n, 1.0);
  std::vector<std::uint64_t> seq(n);
  std::vector<std::uint8_t> flags(n, 0);
  double p = 100.0;
  for (std::size_t i = 0; i < n; ++i) {
    p *= std::exp(step(rng));
    px[i] = p;
    ts[i] = static_cast<std::int64_t>(i) * 10'000'000;
    sym[i] = n_sym == 1 ? 0 : pick(rng);
    seq[i] = i;
  }

  SymbolRegistry reg;
  for (std::uint32_t i = 0; i < n_sym; ++i) {
    std::string name = "S";
    name += std::to_string(i);
    reg.intern(name);
  }
  EngineConfig c;
  c.ring_capacity = 100'000;
  c.bar_capacity = 1'000;
  c.intervals = {kNanosPerMinute};
  c.indicators = {
      {"sma20", IndicatorKind::Sma, 0, 20}, {"ema20", IndicatorKind::Ema, 0, 20},
      {"rsi14", IndicatorKind::Rsi, 0, 14}, {"macd", IndicatorKind::Macd, 0, 14, 12, 26, 9},
      {"bb", IndicatorKind::BBands, 0, 20}, {"atr14", IndicatorKind::Atr, 0, 14},
      {"vwap", IndicatorKind::Vwap, 0},     {"sd20", IndicatorKind::StdDev, 0, 20},
      {"z20", IndicatorKind::ZScore, 0, 20},
  };
  c.rules = {{"x", RuleKind::Crossover, 0, "close", "ema20"},
             {"t", RuleKind::Threshold, 0, "rsi14", "", 70.0, 30.0},
             {"b", RuleKind::Breakout, 0, "bb", ""}};

  if (mode == "norules" || mode == "noind") c.rules.clear();
  if (mode == "noind") c.indicators.clear();
  if (mode == "x" || mode == "t" || mode == "b") {
    std::erase_if(c.rules, [&](const RuleSpec& r) { return r.name != mode; });
  } else if (mode != "all" && mode != "norules" && mode != "noind") {
    c.rules.clear();
    std::erase_if(c.indicators, [&](const IndicatorSpec& s) { return s.name.rfind(mode, 0) != 0; });
  }

  double best = 1e300;
  std::size_t signals = 0;
  auto feed = [&](Engine& e, std::span<const std::int64_t> t, IngestResult& out) {
    if (chunk == 0) {
      e.on_trades(sym, t, px, sz, seq, flags, out);
      return;
    }
    for (std::size_t lo = 0; lo < n; lo += chunk) {
      const std::size_t k = std::min(chunk, n - lo);
      e.on_trades(std::span(sym).subspan(lo, k), t.subspan(lo, k), std::span(px).subspan(lo, k),
                  std::span(sz).subspan(lo, k), std::span(seq).subspan(lo, k),
                  std::span(flags).subspan(lo, k), out);
    }
  };
  std::vector<std::int64_t> shifted(ts);
  for (int r = 0; r < repeats; ++r) {
    Engine e(reg, c);
    IngestResult out;
    for (int w = 0; w <= warm; ++w) {
      for (std::size_t i = 0; i < n; ++i) {
        shifted[i] = ts[i] + static_cast<std::int64_t>(w) * static_cast<std::int64_t>(n) * 10'000'000;
      }
      if (w == warm) break;
      feed(e, shifted, out);
      out.clear();
    }
    const auto t0 = std::chrono::steady_clock::now();
    feed(e, shifted, out);
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(t1 - t0).count() /
                              static_cast<double>(n));
    signals = out.signals.size();
  }
  std::printf("%zu ticks, %u symbols: %.2f ns/tick (best of %d), %zu signals\n", n, n_sym, best,
              repeats, signals);
  return 0;
}
