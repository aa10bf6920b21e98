// Time bars per interval: OHLCV, VWAP, trade count, a forming bar and the late-trade policy.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tickserver/platform.hpp"
#include "tickserver/ring_buffer.hpp"

namespace tickserver {

inline constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
inline constexpr std::int64_t kNanosPerMinute = 60 * kNanosPerSecond;
inline constexpr std::int64_t kNanosPerHour = 60 * kNanosPerMinute;
inline constexpr std::int64_t kNanosPerDay = 24 * kNanosPerHour;

/// One bar. `ts_open` is the start of its interval (inclusive, UTC ns).
struct Bar {
  std::int64_t ts_open;
  double open;
  double high;
  double low;
  double close;
  double volume;
  double notional;  ///< sum of price * size; vwap() = notional / volume
  std::uint64_t trades;

  /// Volume-weighted average price; NaN for a bar whose trades all had size 0.
  [[nodiscard]] double vwap() const noexcept { return volume > 0.0 ? notional / volume : kNaN; }
};
static_assert(sizeof(Bar) == 64, "a bar should occupy exactly one cache line");

/// A half-open time range [start, end).
struct TimeSpan {
  std::int64_t start;
  std::int64_t end;
};

/// Trading-session boundaries for daily bars and session VWAP. Without boundaries a session is
/// a UTC day. With boundaries (strictly increasing session starts), a session runs from one
/// start to the next; before the first and after the last start, sessions continue in 24 h
/// steps from those starts.
class SessionCalendar {
 public:
  /// Replace the session starts. Throws std::invalid_argument unless strictly increasing.
  void set_boundaries(std::vector<std::int64_t> starts) {
    for (std::size_t i = 1; i < starts.size(); ++i) {
      if (starts[i] <= starts[i - 1]) {
        throw std::invalid_argument("session starts must be strictly increasing (index " +
                                    std::to_string(i) + ")");
      }
    }
    starts_ = std::move(starts);
    ++version_;
  }
  [[nodiscard]] const std::vector<std::int64_t>& boundaries() const noexcept { return starts_; }
  /// Incremented by every set_boundaries(); lets holders of cached sessions notice a change.
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }

  /// The session containing `ts`.
  [[nodiscard]] TimeSpan session_of(std::int64_t ts) const noexcept {
    if (starts_.empty()) return day_step(0, ts);
    const auto it = std::upper_bound(starts_.begin(), starts_.end(), ts);
    if (it == starts_.begin()) return day_step(starts_.front(), ts);
    if (it == starts_.end()) return day_step(starts_.back(), ts);
    return {*(it - 1), *it};
  }

 private:
  /// The 24 h step, aligned to `anchor`, that contains `ts`.
  [[nodiscard]] static TimeSpan day_step(std::int64_t anchor, std::int64_t ts) noexcept {
    const std::int64_t offset = floor_mod(floor_mod(ts, kNanosPerDay) - floor_mod(anchor, kNanosPerDay),
                                          kNanosPerDay);
    const std::int64_t start = sub_saturated(ts, offset);
    return {start, add_saturated(start, kNanosPerDay)};
  }

  std::vector<std::int64_t> starts_;
  std::uint64_t version_ = 0;
};

/// Maps a timestamp to the bar interval containing it. Intervals are aligned to the UTC epoch,
/// except 1-day bars, which follow a SessionCalendar when one is given.
class BarClock {
 public:
  BarClock(std::int64_t interval, const SessionCalendar* calendar = nullptr)
      : interval_(interval), calendar_(interval == kNanosPerDay ? calendar : nullptr) {
    if (interval <= 0) throw std::invalid_argument("bar interval must be positive");
  }

  [[nodiscard]] std::int64_t interval() const noexcept { return interval_; }

  [[nodiscard]] TimeSpan bucket(std::int64_t ts) const noexcept {
    if (calendar_ != nullptr) return calendar_->session_of(ts);
    const std::int64_t start = sub_saturated(ts, floor_mod(ts, interval_));
    return {start, add_saturated(start, interval_)};
  }

 private:
  std::int64_t interval_;
  const SessionCalendar* calendar_;
};

/// What adding a trade did to a BarSeries.
enum class BarEvent : std::uint8_t {
  Updated,  ///< the trade went into the forming bar
  Opened,   ///< there was no forming bar; the trade opened one
  Rolled,   ///< the trade was past the forming bar: that bar closed and the trade opened a new one
  Late,     ///< the trade is older than the forming bar (or than a closed bar): ignored, counted
  MustRoll, ///< (add_fast only) the trade is past the forming bar; nothing changed: call roll()
};

/// The bars of one symbol at one interval: the forming bar and a ring of closed bars.
///
/// Bars close when a trade arrives past their end or when advance(now) reaches their end. A
/// trade older than the forming bar or than the end of this symbol's last closed bar is late:
/// it is counted and never changes a bar. Lateness is per symbol, not per clock: a trade for an
/// interval the clock has passed but in which this symbol has no bar yet (a backfill after a
/// reconnect) opens that bar, since no published bar is rewritten. Intervals without trades
/// produce no bar.
class BarSeries {
 public:
  explicit BarSeries(std::size_t capacity) : closed_(capacity) {}

  /// Add one trade.
  [[nodiscard]] BarEvent add(std::int64_t ts, double price, double size, const BarClock& clock) {
    const BarEvent e = add_fast(ts, price, size, clock);
    if (e != BarEvent::MustRoll) return e;
    (void)roll(ts, price, size, clock);
    return BarEvent::Rolled;
  }

  /// add() without the bar roll, which may allocate: returns MustRoll instead, leaving the
  /// series unchanged, and the caller then calls roll() with the same trade.
  [[nodiscard]] TICKSERVER_INLINE BarEvent add_fast(std::int64_t ts, double price, double size,
                                                    const BarClock& clock) noexcept {
    if (has_forming_) {
      if (ts >= forming_.ts_open) [[likely]] {
        if (ts < end_) [[likely]] {
          if (price > forming_.high) forming_.high = price;
          if (price < forming_.low) forming_.low = price;
          forming_.close = price;
          forming_.volume += size;
          forming_.notional += price * size;
          ++forming_.trades;
          return BarEvent::Updated;
        }
        return BarEvent::MustRoll;
      }
      ++late_;
      return BarEvent::Late;
    }
    if (ts < closed_end_) {
      ++late_;
      return BarEvent::Late;
    }
    open(ts, price, size, clock);
    return BarEvent::Opened;
  }

  /// How many of the trades stamped ts[0..n) fall, from the first on, into the forming bar
  /// (those add_fast() would report Updated).
  [[nodiscard]] TICKSERVER_INLINE std::size_t forming_prefix(const std::int64_t* ts,
                                                             std::size_t n) const noexcept {
    if (!has_forming_) return 0;
    const std::int64_t lo = forming_.ts_open;
    const std::int64_t hi = end_;
    std::size_t i = 0;
    while (i < n && ts[i] >= lo && ts[i] < hi) ++i;
    return i;
  }

  /// add_fast() of n trades that all fall into the forming bar (see forming_prefix()), in bulk.
  TICKSERVER_INLINE void add_forming(const double* __restrict price,
                                     const double* __restrict size, std::size_t n) noexcept {
    if (n == 0) return;
    double high = forming_.high, low = forming_.low;
    double volume = forming_.volume, notional = forming_.notional;
    for (std::size_t i = 0; i < n; ++i) {
      const double p = price[i];
      high = p > high ? p : high;
      low = p < low ? p : low;
      volume += size[i];
      notional += p * size[i];
    }
    forming_.high = high;
    forming_.low = low;
    forming_.close = price[n - 1];
    forming_.volume = volume;
    forming_.notional = notional;
    forming_.trades += n;
  }

  /// Close the forming bar and open a new one with this trade (after add_fast() said MustRoll).
  /// Returns the bar that closed.
  const Bar& roll(std::int64_t ts, double price, double size, const BarClock& clock) {
    close();
    open(ts, price, size, clock);
    return closed_.back();
  }

  /// Close the forming bar if it ends at or before `now`; return whether one closed.
  [[nodiscard]] bool advance(std::int64_t now) {
    if (!has_forming_ || end_ > now) return false;
    close();
    return true;
  }

  [[nodiscard]] bool has_forming() const noexcept { return has_forming_; }
  /// The forming bar. Precondition: has_forming().
  [[nodiscard]] const Bar& forming() const noexcept { return forming_; }
  /// End (exclusive) of the forming bar. Precondition: has_forming().
  [[nodiscard]] std::int64_t forming_end() const noexcept { return end_; }
  [[nodiscard]] const Ring<Bar>& closed() const noexcept { return closed_; }
  /// Trades found late so far.
  [[nodiscard]] std::uint64_t late() const noexcept { return late_; }

  [[nodiscard]] std::size_t memory_bytes() const noexcept { return closed_.memory_bytes(); }

 private:
  void open(std::int64_t ts, double price, double size, const BarClock& clock) noexcept {
    const TimeSpan span = clock.bucket(ts);
    forming_ = Bar{span.start, price, price, price, price, size, price * size, 1};
    end_ = span.end;
    has_forming_ = true;
  }

  void close() {
    closed_.push(forming_);
    closed_end_ = end_;
    has_forming_ = false;
  }

  Bar forming_{};
  std::int64_t end_ = kMinTime;
  std::int64_t closed_end_ = kMinTime;
  bool has_forming_ = false;
  std::uint64_t late_ = 0;
  Ring<Bar> closed_;
};

}  // namespace tickserver
