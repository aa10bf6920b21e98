// Incremental O(1) indicators that reproduce TA-Lib 0.8's batch functions value for value.
//
// Each indicator has update() (commit one input, return the output), peek() (the output
// update() would return, without changing state: lets a forming bar be revised) and value()
// (the last committed output). Outputs are NaN during warm-up; the number of NaN outputs equals
// TA-Lib's lookback. The arithmetic reproduces TA-Lib 0.8.1 operation for operation:
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

/// A fixed-length delay line: push() stores an input and returns the one stored `n` pushes ago.
class Delay {
 public:
  explicit Delay(std::size_t n) : buf_(n, 0.0), n_(n) {}

  /// Store x and return the input from n pushes ago (0.0 while filling; x itself when n == 0).
  TICKSERVER_INLINE double push(double x) noexcept {
    if (n_ == 0) [[unlikely]] return x;
    const std::size_t pos = pos_;
    double* slot = buf_.data() + pos;
    const double old = *slot;
    *slot = x;
    pos_ = pos + 1 == n_ ? 0 : pos + 1;
    return old;
  }
  /// The i-th oldest stored input (0 = the one the next push() returns). Precondition: i < size().
  [[nodiscard]] double at(std::size_t i) const noexcept {
    std::size_t j = pos_ + i;
    if (j >= n_) j -= n_;
    return buf_[j];
  }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  void reset() noexcept {
    std::fill(buf_.begin(), buf_.end(), 0.0);
    pos_ = 0;
  }

 private:
  std::vector<double> buf_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

}  // namespace detail

/// Mean and population variance of the last `period` inputs, exactly as TA-Lib's SMA and VAR
/// compute them (the mean is TA-Lib's SMA; the variance is what STDDEV and BBANDS take the
/// square root of). Shared by Sma, StdDev, BBands and ZScore.
class RollingMoments {
 public:
  struct Value {
    double mean;
    double variance;  ///< NaN when variance tracking is off
  };

  explicit RollingMoments(int period, bool track_variance = true)
      : period_(detail::check_period("period", period, 1)),
        inv_period_(1.0 / static_cast<double>(period)),
        variance_(track_variance),
        warm_(static_cast<std::uint64_t>(period - 1)),
        lag_(static_cast<std::size_t>(period - 1)) {
    reset();
  }

  /// Commit x; afterwards mean(), variance() and stddev() describe the window ending at x.
  TICKSERVER_INLINE Value update(double x) noexcept {
    const std::uint64_t n = count_++;
    const double trailing = lag_.push(x);  // the input period-1 updates ago
    if (n >= warm_) [[likely]] {
      const double total = sum_ + x;
      mean_ = total / period_;
      sum_ = total - trailing;
      if (variance_) {
        if (n == 0) [[unlikely]] shift_ = x;  // period 1
        var_ = step_variance(x, trailing);
        sd_ = std::sqrt(var_);
      }
      return {mean_, var_};
    }
    sum_ += x;
    if (variance_) {
      if (n == 0) shift_ = x;
      double t = x - shift_;
      t1_ += t;
      t *= t;
      t2_ += t;
    }
    return {kNaN, kNaN};
  }

  /// Mean of the window after the last update (NaN during warm-up).
  [[nodiscard]] double mean() const noexcept { return mean_; }
  /// Population variance after the last update (NaN during warm-up or without tracking).
  [[nodiscard]] double variance() const noexcept { return var_; }
  /// sqrt(variance()).
  [[nodiscard]] double stddev() const noexcept { return sd_; }

  [[nodiscard]] Value peek(double x) const noexcept {
    if (count_ < warm_) return {kNaN, kNaN};
    const double mean = (sum_ + x) / period_;
    if (!variance_) return {mean, kNaN};
    const double shift = count_ == 0 ? x : shift_;
    double t = x - shift;
    const double t1 = t1_ + t;
    t *= t;
    const double t2 = t2_ + t;
    const double m1 = t1 * inv_period_;
    double var = t2 * inv_period_ - m1 * m1;
    const double oldest = period_ == 1 ? x : lag_.at(0);
    double r = oldest - shift;
    const double t2_after = t2 - r * r;
    r *= r;
    if (needs_reseed(var, r, t2_after, bars_ - 1)) {
      var = two_pass([&](auto&& f) {
        for (std::size_t i = 0; i < lag_.size(); ++i) f(lag_.at(i));
        f(x);
      }).variance;
    }
    return {mean, var};
  }

  [[nodiscard]] int period() const noexcept { return period_; }
  [[nodiscard]] bool tracks_variance() const noexcept { return variance_; }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }

  void reset() noexcept {
    lag_.reset();
    count_ = 0;
    mean_ = var_ = sd_ = kNaN;
    sum_ = 0.0;
    shift_ = 0.0;
    t1_ = 0.0;
    t2_ = 0.0;
    bars_ = 32 * static_cast<std::int64_t>(period_);
  }

 private:
  struct Fresh {
    double shift, t1, t2, variance;
  };

  // TA-Lib's reseed trigger, checked after the trailing input left the sums: the variance lost
  // most of its digits to the shift, an outlier just left the window, or 32 windows passed.
  [[nodiscard]] bool needs_reseed(double var, double removed_sq, double t2,
                                  std::int64_t bars_left) const noexcept {
    return var < 0.000001 * (t2 * inv_period_) || removed_sq > 1000000.0 * t2 || bars_left <= 0;
  }

  /// Fresh two-pass statistics of the current window, exactly as TA-Lib's reseed computes them.
  template <typename ForEach>
  [[nodiscard]] Fresh two_pass(ForEach&& for_each) const noexcept {
    double s = 0.0;
    for_each([&](double v) { s += v; });
    const double shift = s * inv_period_;
    double t1 = 0.0;
    double t2 = 0.0;
    for_each([&](double v) {
      double t = v - shift;
      t1 += t;
      t *= t;
      t2 += t;
    });
    const double m1 = t1 * inv_period_;
    double var = t2 * inv_period_ - m1 * m1;
    if (var < 0.000000000001 * (t2 * inv_period_)) var = 0.0;
    return {shift, t1, t2, var};
  }

  TICKSERVER_INLINE double step_variance(double x, double trailing) noexcept {
    double t = x - shift_;
    t1_ += t;
    t *= t;
    t2_ += t;
    const double m1 = t1_ * inv_period_;
    double var = t2_ * inv_period_ - m1 * m1;
    t = trailing - shift_;
    t1_ -= t;
    t *= t;
    t2_ -= t;
    --bars_;
    if (needs_reseed(var, t, t2_, bars_)) [[unlikely]] var = reseed(trailing);
    return var;
  }

  // Re-anchor the shift on the window mean and rebuild the sums (a fresh two-pass); returns the
  // window's variance. The window is `trailing` followed by the period-1 inputs in the delay line.
  // Inlined despite being rare: a call on the hot path makes the compiler spill registers around
  // it on every update.
  TICKSERVER_INLINE double reseed(double trailing) noexcept {
    bars_ = 32 * static_cast<std::int64_t>(period_);
    const bool single = period_ == 1;
    const Fresh f = two_pass([&](auto&& g) {
      g(trailing);
      if (!single) {
        for (std::size_t i = 0; i < lag_.size(); ++i) g(lag_.at(i));
      }
    });
    shift_ = f.shift;
    double r = trailing - shift_;
    t1_ = f.t1 - r;
    r *= r;
    t2_ = f.t2 - r;
    return f.variance;
  }

  int period_;
  double inv_period_;
  bool variance_;
  std::uint64_t warm_;  // updates before the first output (period - 1)
  detail::Delay lag_;   // the last period-1 inputs
  std::uint64_t count_ = 0;
  double mean_ = kNaN;
  double var_ = kNaN;
  double sd_ = kNaN;
  double sum_ = 0.0;    // TA-Lib SMA's periodTotal (last period-1 inputs)
  double shift_ = 0.0;  // TA-Lib VAR's shift
  double t1_ = 0.0;     // sum of (x - shift) over the last period-1 inputs
  double t2_ = 0.0;     // sum of (x - shift)^2 over the last period-1 inputs
  std::int64_t bars_ = 0;  // windows left before a forced reseed
};

/// Simple moving average (TA-Lib SMA). Lookback period-1.
class Sma {
 public:
  explicit Sma(int period) : m_(period, false) {}
  TICKSERVER_INLINE double update(double x) noexcept { return value_ = m_.update(x).mean; }
  [[nodiscard]] double peek(double x) const noexcept { return m_.peek(x).mean; }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); value_ = kNaN; }

 private:
  RollingMoments m_;
  double value_ = kNaN;
};

/// Population standard deviation over `period` inputs (TA-Lib STDDEV, nbdev 1). Lookback period-1.
class StdDev {
 public:
  explicit StdDev(int period) : m_(detail::check_period("period", period, 2), true) {}
  TICKSERVER_INLINE double update(double x) noexcept {
    m_.update(x);
    return value_ = m_.stddev();
  }
  [[nodiscard]] double peek(double x) const noexcept { return std::sqrt(m_.peek(x).variance); }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); value_ = kNaN; }

 private:
  RollingMoments m_;
  double value_ = kNaN;
};

/// z-score of the input against its own window: (x - SMA) / STDDEV over `period` inputs, both
/// exactly as TA-Lib computes them. NaN during warm-up and when the window is flat (stddev 0).
class ZScore {
 public:
  explicit ZScore(int period) : m_(detail::check_period("period", period, 2), true) {}
  /// z of x given the window's mean and standard deviation.
  [[nodiscard]] static double of(double x, double mean, double sd) noexcept {
    return sd > 0.0 ? (x - mean) / sd : kNaN;
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
    return value_ = of(m_.mean(), m_.stddev(), k_);
  }
  [[nodiscard]] Bands peek(double x) const noexcept {
    const RollingMoments::Value v = m_.peek(x);
    return of(v.mean, std::sqrt(v.variance), k_);
  }
  [[nodiscard]] Bands value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return m_.period(); }
  [[nodiscard]] double k() const noexcept { return k_; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period() - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return m_.count(); }
  void reset() noexcept { m_.reset(); value_ = {kNaN, kNaN, kNaN}; }

 private:
  RollingMoments m_;
  double k_;
  Bands value_{kNaN, kNaN, kNaN};
};

/// Exponential moving average (TA-Lib EMA). Lookback period-1.
class Ema {
 public:
  explicit Ema(int period)
      : period_(detail::check_period("period", period, 1)),
        seed_at_(static_cast<std::uint64_t>(period - 1)),
        k_(2.0 / static_cast<double>(period + 1)) {}
  TICKSERVER_INLINE double update(double x) noexcept {
    const std::uint64_t n = count_++;
    if (n > seed_at_) [[likely]] return prev_ = std::fma(x - prev_, k_, prev_);
    sum_ += x;
    if (n < seed_at_) return kNaN;
    return prev_ = sum_ / period_;
  }
  /// update() over n inputs, with the state in registers once warmed up (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict out,
                             std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i < n && count_ <= seed_at_; ++i) out[i] = update(x[i]);
    if (i == n) return;
    double prev = prev_;
    const double k = k_;
    for (std::size_t j = i; j < n; ++j) out[j] = prev = std::fma(x[j] - prev, k, prev);
    prev_ = prev;
    count_ += n - i;
  }
  [[nodiscard]] double peek(double x) const noexcept {
    if (count_ > seed_at_) return std::fma(x - prev_, k_, prev_);
    if (count_ == seed_at_) return (sum_ + x) / period_;
    return kNaN;
  }
  [[nodiscard]] double value() const noexcept {
    return count_ >= static_cast<std::uint64_t>(period_) ? prev_ : kNaN;
  }
  [[nodiscard]] int period() const noexcept { return period_; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period_ - 1); }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  void reset() noexcept { count_ = 0; sum_ = 0.0; prev_ = kNaN; }

 private:
  int period_;
  std::uint64_t seed_at_;  // index of the update that seeds the EMA (period - 1)
  double k_;
  std::uint64_t count_ = 0;
  double sum_ = 0.0;
  double prev_ = kNaN;
};

/// Relative strength index, Wilder smoothing (TA-Lib RSI). Lookback `period`.
class Rsi {
 public:
  explicit Rsi(int period = 14)
      : period_(detail::check_period("period", period, 2)),
        p_(static_cast<std::uint64_t>(period)),
        inv_period_(1.0 / static_cast<double>(period)),
        pm1_(static_cast<double>(period - 1)) {}
  TICKSERVER_INLINE double update(double x) noexcept {
    const std::uint64_t n = count_++;
    if (n == 0) [[unlikely]] {
      prev_ = x;
      return kNaN;
    }
    const double d = x - prev_;
    prev_ = x;
    const double up = d > 0.0 ? d : 0.0;
    const std::uint64_t p = p_;
    if (n > p) [[likely]] {
      loss_ *= pm1_;
      gain_ *= pm1_;
      gain_ += up;
      loss_ += up - d;
      loss_ *= inv_period_;
      gain_ *= inv_period_;
      return value_ = ratio(gain_, loss_);
    }
    gain_ += up;
    loss_ += up - d;
    if (n < p) return kNaN;
    loss_ *= inv_period_;
    gain_ *= inv_period_;
    return value_ = ratio(gain_, loss_);
  }
  /// update() over n inputs, with the state in registers once warmed up (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict out,
                             std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i < n && count_ <= p_; ++i) out[i] = update(x[i]);
    if (i == n) return;
    double prev = prev_, gain = gain_, loss = loss_;
    const double inv = inv_period_, pm1 = pm1_;
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
      out[j] = ratio(gain, loss);
    }
    prev_ = prev;
    gain_ = gain;
    loss_ = loss;
    value_ = out[n - 1];
    count_ += n - i;
  }
  [[nodiscard]] double peek(double x) const noexcept {
    Rsi copy = *this;
    return copy.update(x);
  }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return period_; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period_); }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  void reset() noexcept { count_ = 0; prev_ = gain_ = loss_ = 0.0; value_ = kNaN; }

 private:
  [[nodiscard]] static double ratio(double gain, double loss) noexcept {
    const double total = gain + loss;
    return total > 0.0 ? 100.0 * (gain / total) : 0.0;
  }

  int period_;
  std::uint64_t p_;
  double inv_period_;
  double pm1_;
  std::uint64_t count_ = 0;
  double prev_ = 0.0;
  double gain_ = 0.0;
  double loss_ = 0.0;
  double value_ = kNaN;
};

/// MACD line, signal line and histogram.
struct MacdValue {
  double macd;
  double signal;
  double hist;
};

/// Moving average convergence/divergence (TA-Lib MACD). Lookback (slow-1) + (signal-1).
class Macd {
 public:
  explicit Macd(int fast = 12, int slow = 26, int signal = 9) {
    detail::check_period("fast period", fast, 2);
    detail::check_period("slow period", slow, 2);
    detail::check_period("signal period", signal, 1);
    if (slow < fast) std::swap(fast, slow);  // as TA-Lib does
    fast_ = fast;
    slow_ = slow;
    signal_period_ = signal;
    kf_ = 2.0 / static_cast<double>(fast + 1);
    ks_ = 2.0 / static_cast<double>(slow + 1);
    kg_ = 2.0 / static_cast<double>(signal + 1);
    slow_seed_ = static_cast<std::uint64_t>(slow - 1);
    fast_from_ = static_cast<std::uint64_t>(slow - fast);
    signal_seed_ = static_cast<std::uint64_t>(signal - 1);
  }
  TICKSERVER_INLINE MacdValue update(double x) noexcept {
    const std::uint64_t n = count_++;
    if (n > slow_seed_) [[likely]] {
      fast_ema_ = std::fma(x - fast_ema_, kf_, fast_ema_);
      slow_ema_ = std::fma(x - slow_ema_, ks_, slow_ema_);
    } else {
      slow_sum_ += x;
      if (n >= fast_from_) fast_sum_ += x;
      if (n < slow_seed_) return {kNaN, kNaN, kNaN};
      slow_ema_ = slow_sum_ / slow_;
      fast_ema_ = fast_sum_ / fast_;
    }
    const double line = fast_ema_ - slow_ema_;
    const std::uint64_t j = n - slow_seed_;  // index on the MACD line
    if (j > signal_seed_) [[likely]] {
      signal_ = signal_period_ == 1 ? line : std::fma(line - signal_, kg_, signal_);
    } else {
      signal_sum_ += line;
      if (j < signal_seed_) return {kNaN, kNaN, kNaN};
      signal_ = signal_sum_ / signal_period_;
    }
    return {line, signal_, line - signal_};
  }
  /// update() over n inputs, with the state in registers once warmed up (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict x, double* __restrict macd,
                             double* __restrict signal, double* __restrict hist,
                             std::size_t n) noexcept {
    std::size_t i = 0;
    const std::uint64_t warm = slow_seed_ + signal_seed_;  // last warm-up update
    for (; i < n && count_ <= warm; ++i) {
      const MacdValue v = update(x[i]);
      macd[i] = v.macd;
      signal[i] = v.signal;
      hist[i] = v.hist;
    }
    if (i == n) return;
    double fe = fast_ema_, se = slow_ema_, sig = signal_;
    const double kf = kf_, ks = ks_, kg = kg_;
    const bool plain = signal_period_ == 1;
    for (std::size_t j = i; j < n; ++j) {
      fe = std::fma(x[j] - fe, kf, fe);
      se = std::fma(x[j] - se, ks, se);
      const double line = fe - se;
      sig = plain ? line : std::fma(line - sig, kg, sig);
      macd[j] = line;
      signal[j] = sig;
      hist[j] = line - sig;
    }
    fast_ema_ = fe;
    slow_ema_ = se;
    signal_ = sig;
    count_ += n - i;
  }
  [[nodiscard]] MacdValue peek(double x) const noexcept {
    Macd copy = *this;
    return copy.update(x);
  }
  [[nodiscard]] MacdValue value() const noexcept {
    if (count_ <= lookback()) return {kNaN, kNaN, kNaN};
    const double line = fast_ema_ - slow_ema_;
    return {line, signal_, line - signal_};
  }
  [[nodiscard]] int fast() const noexcept { return fast_; }
  [[nodiscard]] int slow() const noexcept { return slow_; }
  [[nodiscard]] int signal_period() const noexcept { return signal_period_; }
  [[nodiscard]] std::size_t lookback() const noexcept {
    return static_cast<std::size_t>(slow_ - 1 + signal_period_ - 1);
  }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  void reset() noexcept {
    count_ = 0;
    slow_sum_ = fast_sum_ = signal_sum_ = 0.0;
    fast_ema_ = slow_ema_ = signal_ = 0.0;
  }

 private:
  int fast_ = 12;
  int slow_ = 26;
  int signal_period_ = 9;
  double kf_ = 0.0;
  double ks_ = 0.0;
  double kg_ = 0.0;
  std::uint64_t slow_seed_ = 0;    // update that seeds both EMAs (slow - 1)
  std::uint64_t fast_from_ = 0;    // first input of the fast seed (slow - fast)
  std::uint64_t signal_seed_ = 0;  // MACD-line index that seeds the signal (signal - 1)
  std::uint64_t count_ = 0;
  double slow_sum_ = 0.0;
  double fast_sum_ = 0.0;
  double signal_sum_ = 0.0;
  double fast_ema_ = 0.0;
  double slow_ema_ = 0.0;
  double signal_ = 0.0;
};

/// Average true range, Wilder smoothing (TA-Lib ATR). Lookback `period`.
class Atr {
 public:
  explicit Atr(int period = 14)
      : period_(detail::check_period("period", period, 1)),
        p_(static_cast<std::uint64_t>(period)),
        beta_(static_cast<double>(period - 1) / static_cast<double>(period)),
        alpha_(1.0 - beta_) {}
  TICKSERVER_INLINE double update(double high, double low, double close) noexcept {
    const std::uint64_t n = count_++;
    if (n == 0) [[unlikely]] {
      prev_close_ = close;
      return kNaN;
    }
    double tr = high - low;
    const double to_high = std::fabs(prev_close_ - high);
    if (to_high > tr) tr = to_high;
    const double to_low = std::fabs(prev_close_ - low);
    if (to_low > tr) tr = to_low;
    prev_close_ = close;
    if (n > p_) [[likely]] return value_ = std::fma(beta_, value_, alpha_ * tr);
    sum_ += tr;
    if (n < p_) return kNaN;
    return value_ = sum_ / period_;
  }
  /// update() over n inputs, with the state in registers once warmed up (batch kernel).
  TICKSERVER_INLINE void run(const double* __restrict high, const double* __restrict low,
                             const double* __restrict close, double* __restrict out,
                             std::size_t n) noexcept {
    std::size_t i = 0;
    for (; i < n && count_ <= p_; ++i) out[i] = update(high[i], low[i], close[i]);
    if (i == n) return;
    double pc = prev_close_, atr = value_;
    const double beta = beta_, alpha = alpha_;
    for (std::size_t j = i; j < n; ++j) {
      double tr = high[j] - low[j];
      const double to_high = std::fabs(pc - high[j]);
      if (to_high > tr) tr = to_high;
      const double to_low = std::fabs(pc - low[j]);
      if (to_low > tr) tr = to_low;
      pc = close[j];
      out[j] = atr = std::fma(beta, atr, alpha * tr);
    }
    prev_close_ = pc;
    value_ = atr;
    count_ += n - i;
  }
  [[nodiscard]] double peek(double high, double low, double close) const noexcept {
    Atr copy = *this;
    return copy.update(high, low, close);
  }
  [[nodiscard]] double value() const noexcept { return value_; }
  [[nodiscard]] int period() const noexcept { return period_; }
  [[nodiscard]] std::size_t lookback() const noexcept { return static_cast<std::size_t>(period_); }
  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  void reset() noexcept { count_ = 0; prev_close_ = sum_ = 0.0; value_ = kNaN; }

 private:
  int period_;
  std::uint64_t p_;
  double beta_;
  double alpha_;
  std::uint64_t count_ = 0;
  double prev_close_ = 0.0;
  double sum_ = 0.0;
  double value_ = kNaN;
};

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
    if (ts_event >= lo_ && ts_event < hi_) [[likely]] {
      notional_ += notional;
      volume_ += volume;
      return value();
    }
    return add_outside(notional, volume, ts_event);
  }
  [[nodiscard]] double peek(double price, double size, std::int64_t ts_event) const noexcept {
    Vwap copy = *this;
    return copy.update(price, size, ts_event);
  }
  [[nodiscard]] double peek_add(double notional, double volume, std::int64_t ts_event) const noexcept {
    Vwap copy = *this;
    return copy.add(notional, volume, ts_event);
  }
  [[nodiscard]] double value() const noexcept { return volume_ > 0.0 ? notional_ / volume_ : kNaN; }
  [[nodiscard]] std::size_t lookback() const noexcept { return 0; }
  /// Follow these session starts instead of UTC midnight (shared with every user of the calendar).
  void set_day_boundaries(std::vector<std::int64_t> starts) {
    calendar_->set_boundaries(std::move(starts));
    calendar_changed();
  }
  /// Look the session up again on the next trade (the calendar changed).
  void calendar_changed() noexcept {
    lo_ = kMaxTime;
    hi_ = kMinTime;
  }
  [[nodiscard]] const SessionCalendar& calendar() const noexcept { return *calendar_; }
  void reset() noexcept {
    calendar_changed();
    has_session_ = false;
    notional_ = volume_ = 0.0;
  }

 private:
  // A trade outside the cached session: a new session started, the calendar changed, or the
  // trade belongs to an earlier session (then it is ignored).
  TICKSERVER_INLINE double add_outside(double notional, double volume,
                                       std::int64_t ts_event) noexcept {
    const TimeSpan s = calendar_->session_of(ts_event);
    if (has_session_ && s.start < session_start_) return value();
    if (!has_session_ || s.start != session_start_) notional_ = volume_ = 0.0;
    has_session_ = true;
    session_start_ = s.start;
    lo_ = s.start;
    hi_ = s.end;
    notional_ += notional;
    volume_ += volume;
    return value();
  }

  std::shared_ptr<SessionCalendar> calendar_;
  std::int64_t lo_ = kMaxTime;  // the cached session [lo_, hi_); empty until the first trade
  std::int64_t hi_ = kMinTime;
  bool has_session_ = false;
  std::int64_t session_start_ = 0;
  double notional_ = 0.0;
  double volume_ = 0.0;
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
