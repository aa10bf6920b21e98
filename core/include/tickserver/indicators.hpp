// Incremental O(1) indicators that reproduce TA-Lib 0.8's batch functions value for value.
//
// Each kind is split into immutable parameters (`XxxParams`, shared by every symbol of an
// engine) and mutable state (`XxxState`, one per symbol), advanced by inline functions in a
// namespace of the kind's name: `update` (one input), `run` (a block of inputs with the state
// held in registers, writing per-input outputs only where asked: an engine reads most outputs
// once per batch, not once per trade), `peek` and `value` (outputs derived from the state on
// demand). The standalone classes (Sma, Ema, ...) pair one params with one state; the engine's
// indicator banks keep per-symbol states and share the params (bank.hpp).
//
// Outputs are NaN during warm-up; the number of NaN outputs equals TA-Lib's lookback. The
// arithmetic reproduces TA-Lib 0.8.1 operation for operation (docs/decisions/0010):
//  - SMA: running sum in TA-Lib's add-then-subtract order, divided by the period.
//  - EMA, MACD: seeded with the SMA of the first `period` inputs (MACD's fast EMA is seeded on
//    the slow EMA's first bar from the last `fast` inputs), then fma(x - prev, k, prev) with
//    k = 2 / (period + 1).
//  - RSI: Wilder; gains and losses accumulated without a branch, scaled by a hoisted 1/period;
//    0 when no gain and no loss was seen.
//  - ATR: true range; seed = mean of the first `period` ranges; then
//    fma((period-1)/period, atr, (1 - (period-1)/period) * tr).
//  - STDDEV, BBANDS: population variance from running sums of deviations from a shift that is
//    re-anchored on the window mean (a fresh two-pass) when the sums lose precision and at
//    least every 32 windows; BBANDS' middle band is the SMA above.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tickserver/bars.hpp"
#include "tickserver/platform.hpp"

namespace tickserver {

namespace detail {

/// Return `period`, or throw std::invalid_argument unless it is in TA-Lib's range [lo, 100000].
inline int check_period(const char* what, int period, int lo) {
  if (period < lo || period > 100000) {
    throw std::invalid_argument(std::string(what) + " must be in [" + std::to_string(lo) +
                                ", 100000], got " + std::to_string(period));
  }
  return period;
}

}  // namespace detail

// =============================================================================================
// Rolling moments: mean and population variance of the last `period` inputs, exactly as TA-Lib's
// SMA and VAR compute them (the mean is TA-Lib's SMA; the variance is what STDDEV and BBANDS take
// the square root of). One state serves every SMA, STDDEV, BBANDS and ZSCORE of one period.

struct MomentsParams {
  MomentsParams(int period_, bool variance_)
      : period(detail::check_period("period", period_, 1)),
        inv_period(1.0 / static_cast<double>(period_)),
        variance(variance_),
        lag(static_cast<std::size_t>(period_ - 1)) {}
  int period;
  double inv_period;
  bool variance;    ///< track the variance (STDDEV, BBANDS, ZSCORE), not only the mean (SMA)
  std::size_t lag;  ///< period - 1: inputs kept in the history; also the warm-up length
};

/// Per-symbol state. The history of the last `lag` inputs lives outside (a ring of `lag`
/// doubles, oldest at `pos`), so that many states can share one allocation.
struct MomentsState {
  std::uint64_t count = 0;
  double sum = 0.0;    ///< TA-Lib SMA's periodTotal: the last period-1 inputs
  double shift = 0.0;  ///< TA-Lib VAR's shift
  double t1 = 0.0;     ///< sum of (x - shift) over the last period-1 inputs
  double t2 = 0.0;     ///< sum of (x - shift)^2 over the last period-1 inputs
  std::int64_t bars = 0;  ///< windows left before a forced reseed
  double total = kNaN;    ///< sum of the window ending at the last input (NaN in warm-up)
  double var = kNaN;      ///< variance of that window (NaN in warm-up or when not tracked)
  std::size_t pos = 0;    ///< oldest slot of the history ring
};

namespace moments {

struct Value {
  double mean;
  double variance;  ///< NaN when variance tracking is off
};

inline void reset(const MomentsParams& p, MomentsState& s, double* hist) noexcept {
  s = MomentsState{};
  s.bars = 32 * static_cast<std::int64_t>(p.period);
  std::fill(hist, hist + p.lag, 0.0);
}

/// Mean of the window ending at the last input (NaN during warm-up): TA-Lib's SMA.
[[nodiscard]] inline double mean(const MomentsParams& p, const MomentsState& s) noexcept {
  return s.total / p.period;
}

struct Fresh {
  double shift, t1, t2, variance;
};

/// Fresh two-pass statistics of a window, exactly as TA-Lib's reseed computes them.
/// `for_each(g)` calls g on the window's inputs, oldest first.
template <typename ForEach>
[[nodiscard]] TICKSERVER_INLINE Fresh two_pass(const MomentsParams& p, ForEach&& for_each) noexcept {
  double s = 0.0;
  for_each([&](double v) { s += v; });
  const double shift = s * p.inv_period;
  double t1 = 0.0;
  double t2 = 0.0;
  for_each([&](double v) {
    double t = v - shift;
    t1 += t;
    t *= t;
    t2 += t;
  });
  const double m1 = t1 * p.inv_period;
  double var = t2 * p.inv_period - m1 * m1;
  if (var < 0.000000000001 * (t2 * p.inv_period)) var = 0.0;
  return {shift, t1, t2, var};
}

// TA-Lib's reseed trigger, checked after the trailing input left the sums: the variance lost
// most of its digits to the shift, an outlier just left the window, or 32 windows passed.
[[nodiscard]] TICKSERVER_INLINE bool needs_reseed(const MomentsParams& p, double var,
                                                  double removed_sq, double t2,
                                                  std::int64_t bars_left) noexcept {
  return var < 0.000001 * (t2 * p.inv_period) || removed_sq > 1000000.0 * t2 || bars_left <= 0;
}

// Re-anchor the shift on the window mean and rebuild the sums (a fresh two-pass); returns the
// window's variance. `window` walks the window (trailing first). Inlined despite being rare: a
// call on the hot path makes the compiler spill registers around it on every update.
template <typename Window>
TICKSERVER_INLINE double reseed(const MomentsParams& p, MomentsState& s, double trailing,
                                Window&& window) noexcept {
  s.bars = 32 * static_cast<std::int64_t>(p.period);
  const Fresh f = two_pass(p, window);
  s.shift = f.shift;
  double r = trailing - s.shift;
  s.t1 = f.t1 - r;
  r *= r;
  s.t2 = f.t2 - r;
  return f.variance;
}

/// One update after the warm-up: `trailing` is the input leaving the window (the one period-1
/// updates ago; x itself for period 1).
template <bool Var, typename Window>
TICKSERVER_INLINE void steady(const MomentsParams& p, MomentsState& s, double x, double trailing,
                              Window&& window) noexcept {
  const double total = s.sum + x;
  s.total = total;
  s.sum = total - trailing;
  if constexpr (Var) {
    double t = x - s.shift;
    s.t1 += t;
    t *= t;
    s.t2 += t;
    const double m1 = s.t1 * p.inv_period;
    double var = s.t2 * p.inv_period - m1 * m1;
    t = trailing - s.shift;
    s.t1 -= t;
    t *= t;
    s.t2 -= t;
    --s.bars;
    if (needs_reseed(p, var, t, s.t2, s.bars)) [[unlikely]] var = reseed(p, s, trailing, window);
    s.var = var;
  }
}

/// Commit one input (the scalar form of run() with n = 1).
template <bool Var>
TICKSERVER_INLINE void update(const MomentsParams& p, MomentsState& s, double* __restrict hist,
                              double x) noexcept {
  const std::size_t lag = p.lag;
  const std::uint64_t c = s.count++;
  double trailing = x;  // the input leaving the window: the one `lag` updates ago
  if (lag > 0) {
    const std::size_t pos = s.pos;
    trailing = hist[pos];
    hist[pos] = x;
    s.pos = pos + 1 == lag ? 0 : pos + 1;
  }
  if (c >= lag) [[likely]] {
    if constexpr (Var) {
      if (c == 0) [[unlikely]] s.shift = x;  // period 1
    }
    // The window after this update: `trailing`, then the history from its oldest slot (which
    // ends with x).
    steady<Var>(p, s, x, trailing, [&](auto&& g) {
      g(trailing);
      std::size_t k = s.pos;
      for (std::size_t j = 0; j < lag; ++j) {
        g(hist[k]);
        if (++k == lag) k = 0;
      }
    });
    return;
  }
  s.sum += x;
  if constexpr (Var) {
    if (c == 0) s.shift = x;
    double t = x - s.shift;
    s.t1 += t;
    t *= t;
    s.t2 += t;
  }
}

/// Commit x[0..n). Where `tot` / `var` are given (template flags), write each input's window
/// total (mean = total / period) and variance to them, NaN during warm-up.
template <bool Var, bool WantTot, bool WantVar>
TICKSERVER_INLINE void run(const MomentsParams& p, MomentsState& st, double* __restrict hist,
                           const double* __restrict x, std::size_t n, double* __restrict tot,
                           double* __restrict var) noexcept {
  static_assert(Var || !WantVar);
  const std::size_t lag = p.lag;
  const std::size_t pos0 = st.pos;
  // Input i of this block for i in [-lag, n): negative i reach back into the history.
  auto input = [x, hist, lag, pos0](std::ptrdiff_t i) -> double {
    if (i >= 0) return x[i];
    std::size_t k = pos0 + lag - static_cast<std::size_t>(-i);
    if (k >= lag) k -= lag;
    return hist[k];
  };
  // The window ending at input i, oldest first (for a reseed).
  auto window_of = [&input, lag](std::size_t i) {
    return [&input, lag, i](auto&& g) {
      const std::ptrdiff_t end = static_cast<std::ptrdiff_t>(i);
      for (std::ptrdiff_t j = end - static_cast<std::ptrdiff_t>(lag); j <= end; ++j) g(input(j));
    };
  };
  MomentsState s = st;
  std::size_t i = 0;
  for (; i < n && (s.count < lag || s.count == 0); ++i) {
    const std::uint64_t c = s.count++;
    const double xi = x[i];
    if (c >= lag) {  // period 1: the first update already has a full window
      if constexpr (Var) s.shift = xi;
      steady<Var>(p, s, xi, xi, window_of(i));
      if constexpr (WantTot) tot[i] = s.total;
      if constexpr (WantVar) var[i] = s.var;
      continue;
    }
    s.sum += xi;
    if constexpr (Var) {
      if (c == 0) s.shift = xi;
      double t = xi - s.shift;
      s.t1 += t;
      t *= t;
      s.t2 += t;
    }
    if constexpr (WantTot) tot[i] = kNaN;
    if constexpr (WantVar) var[i] = kNaN;
  }
  const std::size_t first = i;
  for (; i < n && i < lag; ++i) {  // the trailing input is in the history
    std::size_t k = pos0 + i;
    if (k >= lag) k -= lag;
    steady<Var>(p, s, x[i], hist[k], window_of(i));
    if constexpr (WantTot) tot[i] = s.total;
    if constexpr (WantVar) var[i] = s.var;
  }
  for (; i < n; ++i) {  // the trailing input is in this block
    steady<Var>(p, s, x[i], x[i - lag], window_of(i));
    if constexpr (WantTot) tot[i] = s.total;
    if constexpr (WantVar) var[i] = s.var;
  }
  s.count += n - first;
  if (lag > 0) {  // keep the last `lag` inputs
    if (n >= lag) {
      std::copy(x + (n - lag), x + n, hist);
      s.pos = 0;
    } else {
      std::size_t k = pos0;
      for (std::size_t j = 0; j < n; ++j) {
        hist[k] = x[j];
        if (++k == lag) k = 0;
      }
      s.pos = k;
    }
  }
  st = s;
}

/// The mean and variance an update with x would give, without changing anything.
[[nodiscard]] inline Value peek(const MomentsParams& p, const MomentsState& s, const double* hist,
                                double x) noexcept {
  if (s.count < p.lag) return {kNaN, kNaN};
  const double mean = (s.sum + x) / p.period;
  if (!p.variance) return {mean, kNaN};
  const double shift = s.count == 0 ? x : s.shift;
  double t = x - shift;
  const double t1 = s.t1 + t;
  t *= t;
  const double t2 = s.t2 + t;
  const double m1 = t1 * p.inv_period;
  double var = t2 * p.inv_period - m1 * m1;
  const double oldest = p.lag == 0 ? x : hist[s.pos];
  double r = oldest - shift;
  const double t2_after = t2 - r * r;
  r *= r;
  if (needs_reseed(p, var, r, t2_after, s.bars - 1)) {
    var = two_pass(p, [&](auto&& g) {
            std::size_t k = s.pos;
            for (std::size_t j = 0; j < p.lag; ++j) {
              g(hist[k]);
              if (++k == p.lag) k = 0;
            }
            g(x);
          }).variance;
  }
  return {mean, var};
}

}  // namespace moments

/// Standalone rolling moments (one params, one state, its own history).
class RollingMoments {
 public:
  using Value = moments::Value;

  explicit RollingMoments(int period, bool track_variance = true)
      : p_(period, track_variance), hist_(p_.lag, 0.0) {
    reset();
  }

  /// Commit x; afterwards mean(), variance() and stddev() describe the window ending at x.
  TICKSERVER_INLINE Value update(double x) noexcept {
    if (p_.variance) {
      moments::update<true>(p_, s_, hist_.data(), x);
    } else {
      moments::update<false>(p_, s_, hist_.data(), x);
    }
    return {mean(), s_.var};
  }
  /// Commit x[0..n); write each window's total (mean = total / period) and, when tracked,
  /// variance where the pointers are not null.
  TICKSERVER_INLINE void run(const double* x, std::size_t n, double* tot, double* var) noexcept {
    if (p_.variance) {
      if (tot && var) return moments::run<true, true, true>(p_, s_, hist_.data(), x, n, tot, var);
      if (tot) return moments::run<true, true, false>(p_, s_, hist_.data(), x, n, tot, nullptr);
      if (var) return moments::run<true, false, true>(p_, s_, hist_.data(), x, n, nullptr, var);
      return moments::run<true, false, false>(p_, s_, hist_.data(), x, n, nullptr, nullptr);
    }
    if (tot) return moments::run<false, true, false>(p_, s_, hist_.data(), x, n, tot, nullptr);
    return moments::run<false, false, false>(p_, s_, hist_.data(), x, n, nullptr, nullptr);
  }

  /// Mean of the window after the last update (NaN during warm-up).
  [[nodiscard]] double mean() const noexcept { return moments::mean(p_, s_); }
  /// Population variance after the last update (NaN during warm-up or without tracking).
  [[nodiscard]] double variance() const noexcept { return s_.var; }
  /// sqrt(variance()).
  [[nodiscard]] double stddev() const noexcept { return std::sqrt(s_.var); }

  [[nodiscard]] Value peek(double x) const noexcept {
    return moments::peek(p_, s_, hist_.data(), x);
  }

  [[nodiscard]] int period() const noexcept { return p_.period; }
  [[nodiscard]] bool tracks_variance() const noexcept { return p_.variance; }
  [[nodiscard]] std::uint64_t count() const noexcept { return s_.count; }
  void reset() noexcept { moments::reset(p_, s_, hist_.data()); }

 private:
  MomentsParams p_;
  MomentsState s_;
  std::vector<double> hist_;
};

/// Simple moving average (TA-Lib SMA). Lookback period-1.
class Sma {
 public:
  explicit Sma(int period) : m_(period, false) {}
  TICKSERVER_INLINE double update(double x) noexcept { return m_.update(x).mean; }
  [[nodiscard]] double peek(double x) const noexcept { return m_.peek(x).mean; }
  [[nodiscard]] double value() const noexcept { return m_.mean(); }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); }
  [[nodiscard]] RollingMoments& moments() noexcept { return m_; }

 private:
  RollingMoments m_;
};

/// Population standard deviation over `period` inputs (TA-Lib STDDEV, nbdev 1). Lookback period-1.
class StdDev {
 public:
  explicit StdDev(int period) : m_(detail::check_period("period", period, 2), true) {}
  TICKSERVER_INLINE double update(double x) noexcept {
    m_.update(x);
    return m_.stddev();
  }
  [[nodiscard]] double peek(double x) const noexcept { return std::sqrt(m_.peek(x).variance); }
  [[nodiscard]] double value() const noexcept { return m_.stddev(); }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); }
  [[nodiscard]] RollingMoments& moments() noexcept { return m_; }

 private:
  RollingMoments m_;
};

/// z-score of the input against its own window: (x - SMA) / STDDEV over `period` inputs, both
/// exactly as TA-Lib computes them. NaN during warm-up and when the window is flat (stddev 0).
class ZScore {
 public:
  explicit ZScore(int period) : m_(detail::check_period("period", period, 2), true) {}
  /// z of x given the window's mean and standard deviation. The quotient is computed even when
  /// it is discarded and selected with bit operations: loops over many inputs then vectorise (a
  /// conditional division or a floating-point select would not, under -ftrapping-math).
  [[nodiscard]] static double of(double x, double mean, double sd) noexcept {
    const double z = (x - mean) / sd;
    const std::uint64_t keep = 0 - static_cast<std::uint64_t>(sd > 0.0);
    return std::bit_cast<double>((std::bit_cast<std::uint64_t>(z) & keep) |
                                 (std::bit_cast<std::uint64_t>(kNaN) & ~keep));
  }
  TICKSERVER_INLINE double update(double x) noexcept {
    m_.update(x);
    return value_ = of(x, m_.mean(), m_.stddev());
  }
  [[nodiscard]] double peek(double x) const noexcept {
    const RollingMoments::Value v = m_.peek(x);
    return of(x, v.mean, std::sqrt(v.variance));
  }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); value_ = kNaN; }
  [[nodiscard]] RollingMoments& moments() noexcept { return m_; }
  void set_value(double v) noexcept { value_ = v; }

 private:
  RollingMoments m_;
  double value_ = kNaN;
};

/// Bollinger bands (TA-Lib BBANDS with an SMA middle band and equal up/down multipliers `k`).
struct Bands {
  double upper;
  double middle;
  double lower;
};

class BBands {
 public:
  explicit BBands(int period = 20, double k = 2.0)
      : m_(detail::check_period("period", period, 2), true), k_(k) {
    if (!std::isfinite(k)) throw std::invalid_argument("k must be finite");
  }
  /// Bands given the window's mean and standard deviation.
  [[nodiscard]] static Bands of(double mean, double sd, double k) noexcept {
    const double dev = sd * k;
    return {mean + dev, mean, mean - dev};
  }
  TICKSERVER_INLINE Bands update(double x) noexcept {
    m_.update(x);
    return value();
  }
  [[nodiscard]] Bands peek(double x) const noexcept {
    const RollingMoments::Value v = m_.peek(x);
    return of(v.mean, std::sqrt(v.variance), k_);
  }
  [[nodiscard]] Bands value() const noexcept { return of(m_.mean(), m_.stddev(), k_); }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] double k() const noexcept { return k_; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); }
  [[nodiscard]] RollingMoments& moments() noexcept { return m_; }

 private:
  RollingMoments m_;
  double k_;
};

// =============================================================================================
// EMA

struct EmaParams {
  explicit EmaParams(int period_)
      : period(detail::check_period("period", period_, 1)),
        seed_at(static_cast<std::uint64_t>(period_ - 1)),
        k(2.0 / static_cast<double>(period_ + 1)) {}
  int period;
  std::uint64_t seed_at;  ///< index of the update that seeds the EMA (period - 1)
  double k;
};

struct EmaState {
  std::uint64_t count = 0;
  double sum = 0.0;
  double prev = kNaN;
};

namespace ema {

TICKSERVER_INLINE double update(const EmaParams& p, EmaState& s, double x) noexcept {
  const std::uint64_t n = s.count++;
  if (n > p.seed_at) [[likely]] return s.prev = std::fma(x - s.prev, p.k, s.prev);
  s.sum += x;
  if (n < p.seed_at) return kNaN;
  return s.prev = s.sum / p.period;
}

/// update() over x[0..n), with the state in registers once warmed up; outputs to `out` if Want.
template <bool Want>
TICKSERVER_INLINE void run(const EmaParams& p, EmaState& st, const double* __restrict x,
                           std::size_t n, double* __restrict out) noexcept {
  EmaState s = st;
  std::size_t i = 0;
  for (; i < n && s.count <= p.seed_at; ++i) {
    const double v = update(p, s, x[i]);
    if constexpr (Want) out[i] = v;
  }
  double prev = s.prev;
  const double k = p.k;
  for (std::size_t j = i; j < n; ++j) {
    prev = std::fma(x[j] - prev, k, prev);
    if constexpr (Want) out[j] = prev;
  }
  s.prev = prev;
  s.count += n - i;
  st = s;
}

[[nodiscard]] inline double peek(const EmaParams& p, const EmaState& s, double x) noexcept {
  if (s.count > p.seed_at) return std::fma(x - s.prev, p.k, s.prev);
  if (s.count == p.seed_at) return (s.sum + x) / p.period;
  return kNaN;
}

[[nodiscard]] inline double value(const EmaParams& p, const EmaState& s) noexcept {
  return s.count >= static_cast<std::uint64_t>(p.period) ? s.prev : kNaN;
}

}  // namespace ema

/// Exponential moving average (TA-Lib EMA). Lookback period-1.
class Ema {
 public:
  explicit Ema(int period) : p_(period) {}
  TICKSERVER_INLINE double update(double x) noexcept { return ema::update(p_, s_, x); }
  /// update() over n inputs (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict out,
                             std::size_t n) noexcept {
    ema::run<true>(p_, s_, x, n, out);
  }
  [[nodiscard]] double peek(double x) const noexcept { return ema::peek(p_, s_, x); }
  [[nodiscard]] double value() const noexcept { return ema::value(p_, s_); }
  [[nodiscard]] int period() const noexcept { return p_.period; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(p_.period - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return s_.count; }
  void reset() noexcept { s_ = EmaState{}; }

 private:
  EmaParams p_;
  EmaState s_;
};

// =============================================================================================
// RSI

struct RsiParams {
  explicit RsiParams(int period_)
      : period(detail::check_period("period", period_, 2)),
        p(static_cast<std::uint64_t>(period_)),
        inv_period(1.0 / static_cast<double>(period_)),
        pm1(static_cast<double>(period_ - 1)) {}
  int period;
  std::uint64_t p;
  double inv_period;
  double pm1;
};

struct RsiState {
  std::uint64_t count = 0;
  double prev = 0.0;
  double gain = 0.0;
  double loss = 0.0;
};

namespace rsi {

[[nodiscard]] TICKSERVER_INLINE double ratio(double gain, double loss) noexcept {
  const double total = gain + loss;
  return total > 0.0 ? 100.0 * (gain / total) : 0.0;
}

TICKSERVER_INLINE double update(const RsiParams& p, RsiState& s, double x) noexcept {
  const std::uint64_t n = s.count++;
  if (n == 0) [[unlikely]] {
    s.prev = x;
    return kNaN;
  }
  const double d = x - s.prev;
  s.prev = x;
  const double up = d > 0.0 ? d : 0.0;
  if (n > p.p) [[likely]] {
    s.loss *= p.pm1;
    s.gain *= p.pm1;
    s.gain += up;
    s.loss += up - d;
    s.loss *= p.inv_period;
    s.gain *= p.inv_period;
    return ratio(s.gain, s.loss);
  }
  s.gain += up;
  s.loss += up - d;
  if (n < p.p) return kNaN;
  s.loss *= p.inv_period;
  s.gain *= p.inv_period;
  return ratio(s.gain, s.loss);
}

/// update() over x[0..n), with the state in registers once warmed up; outputs to `out` if Want.
template <bool Want>
TICKSERVER_INLINE void run(const RsiParams& p, RsiState& st, const double* __restrict x,
                           std::size_t n, double* __restrict out) noexcept {
  RsiState s = st;
  std::size_t i = 0;
  for (; i < n && s.count <= p.p; ++i) {
    const double v = update(p, s, x[i]);
    if constexpr (Want) out[i] = v;
  }
  double prev = s.prev, gain = s.gain, loss = s.loss;
  const double inv = p.inv_period, pm1 = p.pm1;
  for (std::size_t j = i; j < n; ++j) {
    const double d = x[j] - prev;
    prev = x[j];
    const double up = d > 0.0 ? d : 0.0;
    loss *= pm1;
    gain *= pm1;
    gain += up;
    loss += up - d;
    loss *= inv;
    gain *= inv;
    if constexpr (Want) out[j] = ratio(gain, loss);
  }
  s.prev = prev;
  s.gain = gain;
  s.loss = loss;
  s.count += n - i;
  st = s;
}

[[nodiscard]] inline double value(const RsiParams& p, const RsiState& s) noexcept {
  return s.count > p.p ? ratio(s.gain, s.loss) : kNaN;
}

[[nodiscard]] inline double peek(const RsiParams& p, const RsiState& s, double x) noexcept {
  RsiState copy = s;
  return update(p, copy, x);
}

}  // namespace rsi

/// Relative strength index, Wilder smoothing (TA-Lib RSI). Lookback `period`.
class Rsi {
 public:
  explicit Rsi(int period = 14) : p_(period) {}
  TICKSERVER_INLINE double update(double x) noexcept { return rsi::update(p_, s_, x); }
  /// update() over n inputs (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict out,
                             std::size_t n) noexcept {
    rsi::run<true>(p_, s_, x, n, out);
  }
  [[nodiscard]] double peek(double x) const noexcept { return rsi::peek(p_, s_, x); }
  [[nodiscard]] double value() const noexcept { return rsi::value(p_, s_); }
  [[nodiscard]] int period() const noexcept { return p_.period; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(p_.period); }
  [[nodiscard]] std::uint64_t count() const noexcept { return s_.count; }
  void reset() noexcept { s_ = RsiState{}; }

 private:
  RsiParams p_;
  RsiState s_;
};

// =============================================================================================
// MACD

/// MACD line, signal line and histogram.
struct MacdValue {
  double macd;
  double signal;
  double hist;
};

struct MacdParams {
  MacdParams(int fast_, int slow_, int signal_) {
    detail::check_period("fast period", fast_, 2);
    detail::check_period("slow period", slow_, 2);
    detail::check_period("signal period", signal_, 1);
    if (slow_ < fast_) std::swap(fast_, slow_);  // as TA-Lib does
    fast = fast_;
    slow = slow_;
    signal = signal_;
    kf = 2.0 / static_cast<double>(fast_ + 1);
    ks = 2.0 / static_cast<double>(slow_ + 1);
    kg = 2.0 / static_cast<double>(signal_ + 1);
    slow_seed = static_cast<std::uint64_t>(slow_ - 1);
    fast_from = static_cast<std::uint64_t>(slow_ - fast_);
    signal_seed = static_cast<std::uint64_t>(signal_ - 1);
  }
  int fast = 12;
  int slow = 26;
  int signal = 9;
  double kf = 0.0;
  double ks = 0.0;
  double kg = 0.0;
  std::uint64_t slow_seed = 0;    ///< update that seeds both EMAs (slow - 1)
  std::uint64_t fast_from = 0;    ///< first input of the fast seed (slow - fast)
  std::uint64_t signal_seed = 0;  ///< MACD-line index that seeds the signal (signal - 1)
  [[nodiscard]] std::uint64_t lookback() const noexcept {
    return static_cast<std::uint64_t>(slow - 1 + signal - 1);
  }
};

struct MacdState {
  std::uint64_t count = 0;
  double slow_sum = 0.0;
  double fast_sum = 0.0;
  double signal_sum = 0.0;
  double fast_ema = 0.0;
  double slow_ema = 0.0;
  double signal = 0.0;
};

namespace macd {

TICKSERVER_INLINE MacdValue update(const MacdParams& p, MacdState& s, double x) noexcept {
  const std::uint64_t n = s.count++;
  if (n > p.slow_seed) [[likely]] {
    s.fast_ema = std::fma(x - s.fast_ema, p.kf, s.fast_ema);
    s.slow_ema = std::fma(x - s.slow_ema, p.ks, s.slow_ema);
  } else {
    s.slow_sum += x;
    if (n >= p.fast_from) s.fast_sum += x;
    if (n < p.slow_seed) return {kNaN, kNaN, kNaN};
    s.slow_ema = s.slow_sum / p.slow;
    s.fast_ema = s.fast_sum / p.fast;
  }
  const double line = s.fast_ema - s.slow_ema;
  const std::uint64_t j = n - p.slow_seed;  // index on the MACD line
  if (j > p.signal_seed) [[likely]] {
    s.signal = p.signal == 1 ? line : std::fma(line - s.signal, p.kg, s.signal);
  } else {
    s.signal_sum += line;
    if (j < p.signal_seed) return {kNaN, kNaN, kNaN};
    s.signal = s.signal_sum / p.signal;
  }
  return {line, s.signal, line - s.signal};
}

/// update() over x[0..n), with the state in registers once warmed up; outputs if Want.
template <bool Want>
TICKSERVER_INLINE void run(const MacdParams& p, MacdState& st, const double* __restrict x,
                           std::size_t n, double* __restrict macd, double* __restrict signal,
                           double* __restrict hist) noexcept {
  MacdState s = st;
  std::size_t i = 0;
  const std::uint64_t warm = p.slow_seed + p.signal_seed;  // last warm-up update
  for (; i < n && s.count <= warm; ++i) {
    const MacdValue v = update(p, s, x[i]);
    if constexpr (Want) {
      macd[i] = v.macd;
      signal[i] = v.signal;
      hist[i] = v.hist;
    }
  }
  double fe = s.fast_ema, se = s.slow_ema, sig = s.signal;
  const double kf = p.kf, ks = p.ks, kg = p.kg;
  const bool plain = p.signal == 1;
  for (std::size_t j = i; j < n; ++j) {
    fe = std::fma(x[j] - fe, kf, fe);
    se = std::fma(x[j] - se, ks, se);
    const double line = fe - se;
    sig = plain ? line : std::fma(line - sig, kg, sig);
    if constexpr (Want) {
      macd[j] = line;
      signal[j] = sig;
      hist[j] = line - sig;
    }
  }
  s.fast_ema = fe;
  s.slow_ema = se;
  s.signal = sig;
  s.count += n - i;
  st = s;
}

[[nodiscard]] inline MacdValue value(const MacdParams& p, const MacdState& s) noexcept {
  if (s.count <= p.lookback()) return {kNaN, kNaN, kNaN};
  const double line = s.fast_ema - s.slow_ema;
  return {line, s.signal, line - s.signal};
}

[[nodiscard]] inline MacdValue peek(const MacdParams& p, const MacdState& s, double x) noexcept {
  MacdState copy = s;
  return update(p, copy, x);
}

}  // namespace macd

/// Moving average convergence/divergence (TA-Lib MACD). Lookback (slow-1) + (signal-1).
class Macd {
 public:
  explicit Macd(int fast = 12, int slow = 26, int signal = 9) : p_(fast, slow, signal) {}
  TICKSERVER_INLINE MacdValue update(double x) noexcept { return macd::update(p_, s_, x); }
  /// update() over n inputs (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict macd,
                             double* __restrict signal, double* __restrict hist,
                             std::size_t n) noexcept {
    macd::run<true>(p_, s_, x, n, macd, signal, hist);
  }
  [[nodiscard]] MacdValue peek(double x) const noexcept { return macd::peek(p_, s_, x); }
  [[nodiscard]] MacdValue value() const noexcept { return macd::value(p_, s_); }
  [[nodiscard]] int fast() const noexcept { return p_.fast; }
  [[nodiscard]] int slow() const noexcept { return p_.slow; }
  [[nodiscard]] int signal_period() const noexcept { return p_.signal; }
  [[nodiscard]] std::size_t lookback() const noexcept {
    return static_cast<std::size_t>(p_.lookback());
  }
  [[nodiscard]] std::uint64_t count() const noexcept { return s_.count; }
  void reset() noexcept { s_ = MacdState{}; }

 private:
  MacdParams p_;
  MacdState s_;
};

// =============================================================================================
// ATR

struct AtrParams {
  explicit AtrParams(int period_)
      : period(detail::check_period("period", period_, 1)),
        p(static_cast<std::uint64_t>(period_)),
        beta(static_cast<double>(period_ - 1) / static_cast<double>(period_)),
        alpha(1.0 - beta) {}
  int period;
  std::uint64_t p;
  double beta;
  double alpha;
};

struct AtrState {
  std::uint64_t count = 0;
  double prev_close = 0.0;
  double sum = 0.0;
  double value = kNaN;
};

namespace atr {

TICKSERVER_INLINE double update(const AtrParams& p, AtrState& s, double high, double low,
                                double close) noexcept {
  const std::uint64_t n = s.count++;
  if (n == 0) [[unlikely]] {
    s.prev_close = close;
    return kNaN;
  }
  double tr = high - low;
  const double to_high = std::fabs(s.prev_close - high);
  if (to_high > tr) tr = to_high;
  const double to_low = std::fabs(s.prev_close - low);
  if (to_low > tr) tr = to_low;
  s.prev_close = close;
  if (n > p.p) [[likely]] return s.value = std::fma(p.beta, s.value, p.alpha * tr);
  s.sum += tr;
  if (n < p.p) return kNaN;
  return s.value = s.sum / p.period;
}

/// update() over n bars, with the state in registers once warmed up; outputs to `out` if Want.
template <bool Want>
TICKSERVER_INLINE void run(const AtrParams& p, AtrState& st, const double* __restrict high,
                           const double* __restrict low, const double* __restrict close,
                           std::size_t n, double* __restrict out) noexcept {
  AtrState s = st;
  std::size_t i = 0;
  for (; i < n && s.count <= p.p; ++i) {
    const double v = update(p, s, high[i], low[i], close[i]);
    if constexpr (Want) out[i] = v;
  }
  double pc = s.prev_close, value = s.value;
  const double beta = p.beta, alpha = p.alpha;
  for (std::size_t j = i; j < n; ++j) {
    double tr = high[j] - low[j];
    const double to_high = std::fabs(pc - high[j]);
    if (to_high > tr) tr = to_high;
    const double to_low = std::fabs(pc - low[j]);
    if (to_low > tr) tr = to_low;
    pc = close[j];
    value = std::fma(beta, value, alpha * tr);
    if constexpr (Want) out[j] = value;
  }
  s.prev_close = pc;
  s.value = value;
  s.count += n - i;
  st = s;
}

[[nodiscard]] inline double peek(const AtrParams& p, const AtrState& s, double high, double low,
                                 double close) noexcept {
  AtrState copy = s;
  return update(p, copy, high, low, close);
}

}  // namespace atr

/// Average true range, Wilder smoothing (TA-Lib ATR). Lookback `period`.
class Atr {
 public:
  explicit Atr(int period = 14) : p_(period) {}
  TICKSERVER_INLINE double update(double high, double low, double close) noexcept {
    return atr::update(p_, s_, high, low, close);
  }
  /// update() over n inputs (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict high, const double* __restrict low,
                             const double* __restrict close, double* __restrict out,
                             std::size_t n) noexcept {
    atr::run<true>(p_, s_, high, low, close, n, out);
  }
  [[nodiscard]] double peek(double high, double low, double close) const noexcept {
    return atr::peek(p_, s_, high, low, close);
  }
  [[nodiscard]] double value() const noexcept { return s_.value; }
  [[nodiscard]] int period() const noexcept { return p_.period; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(p_.period); }
  [[nodiscard]] std::uint64_t count() const noexcept { return s_.count; }
  void reset() noexcept { s_ = AtrState{}; }

 private:
  AtrParams p_;
  AtrState s_;
};

// =============================================================================================
// VWAP

/// Session VWAP state: the cached session [lo, hi) (empty until the first trade or after a
/// calendar change) and the session's sums.
struct VwapState {
  std::int64_t lo = kMaxTime;
  std::int64_t hi = kMinTime;
  bool has_session = false;
  std::int64_t session_start = 0;
  double notional = 0.0;
  double volume = 0.0;
};

namespace vwap {

[[nodiscard]] TICKSERVER_INLINE double value(const VwapState& s) noexcept {
  return s.volume > 0.0 ? s.notional / s.volume : kNaN;
}

/// Look the session up again on the next trade (the calendar changed).
inline void calendar_changed(VwapState& s) noexcept {
  s.lo = kMaxTime;
  s.hi = kMinTime;
}

// A trade outside the cached session: a new session started, the calendar changed, or the
// trade belongs to an earlier session (then it is ignored).
inline double add_outside(const SessionCalendar& cal, VwapState& s, double notional,
                          double volume, std::int64_t ts_event) noexcept {
  const TimeSpan span = cal.session_of(ts_event);
  if (s.has_session && span.start < s.session_start) return value(s);
  if (!s.has_session || span.start != s.session_start) s.notional = s.volume = 0.0;
  s.has_session = true;
  s.session_start = span.start;
  s.lo = span.start;
  s.hi = span.end;
  s.notional += notional;
  s.volume += volume;
  return value(s);
}

/// Add a pre-aggregated notional (sum of price * size) and volume, e.g. of a bar.
TICKSERVER_INLINE double add(const SessionCalendar& cal, VwapState& s, double notional,
                             double volume, std::int64_t ts_event) noexcept {
  if (ts_event >= s.lo && ts_event < s.hi) [[likely]] {
    s.notional += notional;
    s.volume += volume;
    return value(s);
  }
  return add_outside(cal, s, notional, volume, ts_event);
}

/// Trades price[i] x size[i] at ts[i]; outputs to `out` if Want.
template <bool Want>
TICKSERVER_INLINE void run(const SessionCalendar& cal, VwapState& st,
                           const double* __restrict price, const double* __restrict size,
                           const std::int64_t* __restrict ts, std::size_t n,
                           double* __restrict out) noexcept {
  std::size_t i = 0;
  while (i < n) {
    const std::int64_t lo = st.lo, hi = st.hi;
    double notional = st.notional, volume = st.volume;
    for (; i < n; ++i) {
      const std::int64_t t = ts[i];
      if (t < lo || t >= hi) [[unlikely]] break;
      notional += price[i] * size[i];
      volume += size[i];
      if constexpr (Want) out[i] = volume > 0.0 ? notional / volume : kNaN;
    }
    st.notional = notional;
    st.volume = volume;
    if (i == n) break;
    const double v = add_outside(cal, st, price[i] * size[i], size[i], ts[i]);
    if constexpr (Want) out[i] = v;
    ++i;
  }
}

}  // namespace vwap

/// Session VWAP: sum(price * size) / sum(size) since the start of the current session (a UTC day
/// unless the calendar has session starts). A trade stamped before the current session started
/// is ignored; one stamped at or after its end starts a new session. NaN until the session has
/// volume.
class Vwap {
 public:
  /// A VWAP with its own calendar (UTC days until set_day_boundaries()).
  Vwap() : calendar_(std::make_shared<SessionCalendar>()) {}
  /// A VWAP following a shared calendar (the engine's); call calendar_changed() after changing it.
  explicit Vwap(std::shared_ptr<SessionCalendar> calendar) : calendar_(std::move(calendar)) {
    if (!calendar_) throw std::invalid_argument("calendar must not be null");
  }

  TICKSERVER_INLINE double update(double price, double size, std::int64_t ts_event) noexcept {
    return add(price * size, size, ts_event);
  }
  /// Add a pre-aggregated notional (sum of price * size) and volume, e.g. of a bar.
  TICKSERVER_INLINE double add(double notional, double volume, std::int64_t ts_event) noexcept {
    return vwap::add(*calendar_, s_, notional, volume, ts_event);
  }
  /// update() over n trades (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict price, const double* __restrict size,
                             const std::int64_t* __restrict ts, double* __restrict out,
                             std::size_t n) noexcept {
    vwap::run<true>(*calendar_, s_, price, size, ts, n, out);
  }
  [[nodiscard]] double peek(double price, double size, std::int64_t ts_event) const noexcept {
    return peek_add(price * size, size, ts_event);
  }
  [[nodiscard]] double peek_add(double notional, double volume, std::int64_t ts_event) const noexcept {
    VwapState copy = s_;
    return vwap::add(*calendar_, copy, notional, volume, ts_event);
  }
  [[nodiscard]] double value() const noexcept { return vwap::value(s_); }
  [[nodiscard]] std::size_t lookback() const noexcept { return 0; }
  /// Follow these session starts instead of UTC midnight (shared with every user of the calendar).
  void set_day_boundaries(std::vector<std::int64_t> starts) {
    calendar_->set_boundaries(std::move(starts));
    calendar_changed();
  }
  /// Look the session up again on the next trade (the calendar changed).
  void calendar_changed() noexcept { vwap::calendar_changed(s_); }
  [[nodiscard]] const SessionCalendar& calendar() const noexcept { return *calendar_; }
  void reset() noexcept { s_ = VwapState{}; }

 private:
  std::shared_ptr<SessionCalendar> calendar_;
  VwapState s_;
};

// Batch updates: out[i] is the output after in[i] (equal-length spans; outputs may not alias
// inputs). Compiled per CPU level (see platform.hpp).
void update_many(Sma& ind, std::span<const double> x, std::span<double> out) noexcept;
void update_many(Ema& ind, std::span<const double> x, std::span<double> out) noexcept;
void update_many(Rsi& ind, std::span<const double> x, std::span<double> out) noexcept;
void update_many(StdDev& ind, std::span<const double> x, std::span<double> out) noexcept;
void update_many(ZScore& ind, std::span<const double> x, std::span<double> out) noexcept;
void update_many(Macd& ind, std::span<const double> x, std::span<double> macd,
                 std::span<double> signal, std::span<double> hist) noexcept;
void update_many(BBands& ind, std::span<const double> x, std::span<double> upper,
                 std::span<double> middle, std::span<double> lower) noexcept;
void update_many(Atr& ind, std::span<const double> high, std::span<const double> low,
                 std::span<const double> close, std::span<double> out) noexcept;
void update_many(Vwap& ind, std::span<const double> price, std::span<const double> size,
                 std::span<const std::int64_t> ts_event, std::span<double> out) noexcept;

}  // namespace tickserver
