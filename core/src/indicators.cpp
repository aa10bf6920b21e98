// Batch updates of the standalone indicators, compiled per CPU level (TICKSERVER_HOT_CLONES).
//
// The recurrences run with their state in registers (the `run` kernels); divisions and square
// roots, which are off the recurrences' dependency chains, run afterwards as separate
// element-wise loops that the compiler vectorises (same IEEE operations, same bits).
#include "tickserver/indicators.hpp"

#include <cassert>

namespace tickserver {

namespace {

constexpr std::size_t kBlock = 512;  // scratch block of the two-output moment kernels

}  // namespace

TICKSERVER_HOT_CLONES void update_many(Sma& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  double* o = out.data();
  const std::size_t n = x.size();
  ind.moments().run(x.data(), n, o, nullptr);
  const double period = ind.period();
  for (std::size_t i = 0; i < n; ++i) o[i] = o[i] / period;
}

TICKSERVER_HOT_CLONES void update_many(Ema& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  ind.run(x.data(), out.data(), x.size());
}

TICKSERVER_HOT_CLONES void update_many(Rsi& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  ind.run(x.data(), out.data(), x.size());
}

TICKSERVER_HOT_CLONES void update_many(StdDev& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  double* o = out.data();
  const std::size_t n = x.size();
  ind.moments().run(x.data(), n, nullptr, o);
  for (std::size_t i = 0; i < n; ++i) o[i] = std::sqrt(o[i]);
}

TICKSERVER_HOT_CLONES void update_many(ZScore& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  const std::size_t n = x.size();
  const double period = ind.period();
  double tot[kBlock];
  for (std::size_t lo = 0; lo < n; lo += kBlock) {
    const std::size_t m = std::min(kBlock, n - lo);
    const double* __restrict xs = x.data() + lo;
    double* __restrict o = out.data() + lo;
    ind.moments().run(xs, m, tot, o);
    for (std::size_t i = 0; i < m; ++i) o[i] = ZScore::of(xs[i], tot[i] / period, std::sqrt(o[i]));
  }
  if (n > 0) ind.set_value(out[n - 1]);
}

TICKSERVER_HOT_CLONES void update_many(Macd& ind, std::span<const double> x,
                                       std::span<double> macd, std::span<double> signal,
                                       std::span<double> hist) noexcept {
  assert(macd.size() == x.size() && signal.size() == x.size() && hist.size() == x.size());
  ind.run(x.data(), macd.data(), signal.data(), hist.data(), x.size());
}

TICKSERVER_HOT_CLONES void update_many(BBands& ind, std::span<const double> x,
                                       std::span<double> upper, std::span<double> middle,
                                       std::span<double> lower) noexcept {
  assert(upper.size() == x.size() && middle.size() == x.size() && lower.size() == x.size());
  const std::size_t n = x.size();
  double* __restrict up = upper.data();
  double* __restrict mid = middle.data();
  double* __restrict low = lower.data();
  ind.moments().run(x.data(), n, mid, up);
  const double period = ind.period();
  const double k = ind.k();
  for (std::size_t i = 0; i < n; ++i) {
    const Bands b = BBands::of(mid[i] / period, std::sqrt(up[i]), k);
    up[i] = b.upper;
    mid[i] = b.middle;
    low[i] = b.lower;
  }
}

TICKSERVER_HOT_CLONES void update_many(Atr& ind, std::span<const double> high,
                                       std::span<const double> low,
                                       std::span<const double> close,
                                       std::span<double> out) noexcept {
  assert(low.size() == high.size() && close.size() == high.size() && out.size() == high.size());
  ind.run(high.data(), low.data(), close.data(), out.data(), high.size());
}

TICKSERVER_HOT_CLONES void update_many(Vwap& ind, std::span<const double> price,
                                       std::span<const double> size,
                                       std::span<const std::int64_t> ts_event,
                                       std::span<double> out) noexcept {
  assert(size.size() == price.size() && ts_event.size() == price.size() &&
         out.size() == price.size());
  ind.run(price.data(), size.data(), ts_event.data(), out.data(), price.size());
}

}  // namespace tickserver
