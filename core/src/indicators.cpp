// Batch updates of the standalone indicators, compiled per CPU level (TICKSERVER_HOT_CLONES).
#include "tickserver/indicators.hpp"

#include <cassert>

namespace tickserver {

TICKSERVER_HOT_CLONES void update_many(Sma& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ind.update(x[i]);
}

TICKSERVER_HOT_CLONES void update_many(Ema& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ind.update(x[i]);
}

TICKSERVER_HOT_CLONES void update_many(Rsi& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ind.update(x[i]);
}

TICKSERVER_HOT_CLONES void update_many(StdDev& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ind.update(x[i]);
}

TICKSERVER_HOT_CLONES void update_many(ZScore& ind, std::span<const double> x,
                                       std::span<double> out) noexcept {
  assert(out.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) out[i] = ind.update(x[i]);
}

TICKSERVER_HOT_CLONES void update_many(Macd& ind, std::span<const double> x,
                                       std::span<double> macd, std::span<double> signal,
                                       std::span<double> hist) noexcept {
  assert(macd.size() == x.size() && signal.size() == x.size() && hist.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const MacdValue v = ind.update(x[i]);
    macd[i] = v.macd;
    signal[i] = v.signal;
    hist[i] = v.hist;
  }
}

TICKSERVER_HOT_CLONES void update_many(BBands& ind, std::span<const double> x,
                                       std::span<double> upper, std::span<double> middle,
                                       std::span<double> lower) noexcept {
  assert(upper.size() == x.size() && middle.size() == x.size() && lower.size() == x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Bands b = ind.update(x[i]);
    upper[i] = b.upper;
    middle[i] = b.middle;
    lower[i] = b.lower;
  }
}

TICKSERVER_HOT_CLONES void update_many(Atr& ind, std::span<const double> high,
                                       std::span<const double> low,
                                       std::span<const double> close,
                                       std::span<double> out) noexcept {
  assert(low.size() == high.size() && close.size() == high.size() && out.size() == high.size());
  for (std::size_t i = 0; i < high.size(); ++i) out[i] = ind.update(high[i], low[i], close[i]);
}

TICKSERVER_HOT_CLONES void update_many(Vwap& ind, std::span<const double> price,
                                       std::span<const double> size,
                                       std::span<const std::int64_t> ts_event,
                                       std::span<double> out) noexcept {
  assert(size.size() == price.size() && ts_event.size() == price.size() &&
         out.size() == price.size());
  for (std::size_t i = 0; i < price.size(); ++i) {
    out[i] = ind.update(price[i], size[i], ts_event[i]);
  }
}

}  // namespace tickserver
