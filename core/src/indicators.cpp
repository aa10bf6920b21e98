// Batch updates of the standalone indicators, compiled per CPU level (TICKSERVER_HOT_CLONES).
//
// The loops take their pointers as __restrict: without it, each output store could alias the
// indicator's own state, which then makes a round trip through memory on every input.
#include "tickserver/indicators.hpp"

#include <cassert>

namespace tickserver {

namespace {

template <typename T>
TICKSERVER_INLINE void run(T& __restrict ind, const double* __restrict x, double* __restrict out,
                           std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = ind.update(x[i]);
}

}  // namespace

TICKSERVER_HOT_CLONES void update_many(Sma& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  run(ind, x.data(), out.data(), x.size());
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
  run(ind, x.data(), out.data(), x.size());
}

TICKSERVER_HOT_CLONES void update_many(ZScore& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  run(ind, x.data(), out.data(), x.size());
}

namespace {

TICKSERVER_INLINE void run_bbands(BBands& __restrict ind, const double* __restrict x,
                                  double* __restrict upper, double* __restrict middle,
                                  double* __restrict lower, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const Bands b = ind.update(x[i]);
    upper[i] = b.upper;
    middle[i] = b.middle;
    lower[i] = b.lower;
  }
}

TICKSERVER_INLINE void run_vwap(Vwap& __restrict ind, const double* __restrict price,
                                const double* __restrict size,
                                const std::int64_t* __restrict ts, double* __restrict out,
                                std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = ind.update(price[i], size[i], ts[i]);
}

}  // namespace

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
  run_bbands(ind, x.data(), upper.data(), middle.data(), lower.data(), x.size());
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
  run_vwap(ind, price.data(), size.data(), ts_event.data(), out.data(), price.size());
}

}  // namespace tickserver
