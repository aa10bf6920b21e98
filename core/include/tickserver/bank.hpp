// Indicator banks: every indicator of one symbol at one interval, grouped by type, flat outputs.
//
// No virtual dispatch; indicators that need the same rolling window (SMA, BBANDS, STDDEV and
// ZSCORE of one period) share a single RollingMoments.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tickserver/bars.hpp"
#include "tickserver/indicators.hpp"

namespace tickserver {

enum class IndicatorKind : std::uint8_t { Sma, Ema, Rsi, Macd, BBands, Atr, Vwap, StdDev, ZScore };

[[nodiscard]] constexpr const char* to_string(IndicatorKind k) noexcept {
  switch (k) {
    case IndicatorKind::Sma: return "sma";
    case IndicatorKind::Ema: return "ema";
    case IndicatorKind::Rsi: return "rsi";
    case IndicatorKind::Macd: return "macd";
    case IndicatorKind::BBands: return "bbands";
    case IndicatorKind::Atr: return "atr";
    case IndicatorKind::Vwap: return "vwap";
    case IndicatorKind::StdDev: return "stddev";
    case IndicatorKind::ZScore: return "zscore";
  }
  return "unknown";
}

/// Parse "sma", "ema", ...; throws std::invalid_argument for anything else.
[[nodiscard]] IndicatorKind indicator_kind_from_string(std::string_view s);

/// One configured indicator. `interval` is a bar interval in ns, or 0 for every trade.
struct IndicatorSpec {
  std::string name;
  IndicatorKind kind = IndicatorKind::Sma;
  std::int64_t interval = 0;
  int period = 14;
  int fast = 12;
  int slow = 26;
  int signal = 9;
  double k = 2.0;
};

/// The layout of a bank, shared by all symbols: which indicators exist, grouped by type, and
/// which output slot each writes. Built once per interval.
class BankPlan {
 public:
  /// `specs` must all have the same interval; names must be unique. Throws std::invalid_argument.
  explicit BankPlan(std::span<const IndicatorSpec> specs);

  [[nodiscard]] const std::vector<std::string>& output_names() const noexcept { return names_; }
  [[nodiscard]] std::size_t n_outputs() const noexcept { return n_outputs_; }
  [[nodiscard]] bool empty() const noexcept { return names_.empty(); }
  /// Slot of an output name ("sma20", "macd.signal", ...).
  [[nodiscard]] std::optional<std::uint32_t> output_index(std::string_view name) const;
  /// Slots (upper, lower) of a bbands indicator by indicator name.
  [[nodiscard]] std::optional<std::pair<std::uint32_t, std::uint32_t>> bands_of(
      std::string_view indicator) const;

 private:
  friend class Bank;
  struct Moment {
    int period;
    bool variance;
  };
  struct MomentOut {
    std::uint32_t moment;
    std::uint32_t out;
  };
  struct BandsOut {
    std::uint32_t moment;
    double k;
    std::uint32_t upper;  // middle = upper + 1, lower = upper + 2
  };
  struct PeriodOut {
    int period;
    std::uint32_t out;
  };
  struct MacdOut {
    int fast, slow, signal;
    std::uint32_t out;  // macd; signal = out + 1, hist = out + 2
  };

  std::uint32_t moment_for(int period, bool variance);
  std::uint32_t add_output(std::string name);

  std::vector<std::string> names_;
  std::size_t n_outputs_ = 0;
  std::vector<std::pair<std::string, std::uint32_t>> bands_by_name_;
  std::vector<Moment> moments_;
  std::vector<MomentOut> sma_, stddev_, zscore_;
  std::vector<BandsOut> bbands_;
  std::vector<PeriodOut> ema_, rsi_, atr_;
  std::vector<MacdOut> macd_;
  std::vector<std::uint32_t> vwap_;
};

/// The indicator state of one symbol at one interval. Holds a pointer to its plan (which must
/// outlive it) and shares the engine's session calendar for VWAP.
class Bank {
 public:
  Bank(const BankPlan& plan, const std::shared_ptr<SessionCalendar>& calendar);

  /// Feed one trade: every indicator sees the price (ATR as high = low = close = price).
  void update_tick(double price, double size, std::int64_t ts_event) noexcept;
  /// Commit one closed bar: indicators see the close (ATR high/low/close, VWAP its notional).
  void update_bar(const Bar& bar) noexcept;
  /// The outputs update_bar(bar) would produce, without committing (provisional forming bar).
  void peek_bar(const Bar& bar, std::span<double> out) const noexcept;
  /// Set the "close" slot without updating indicators (a bank without indicators).
  void set_close(double x) noexcept { out_.back() = x; }
  /// The session calendar changed: VWAPs look their session up again.
  void calendar_changed() noexcept;

  /// Outputs after the last committed update, indexed like plan.output_names().
  [[nodiscard]] std::span<const double> values() const noexcept {
    return {out_.data(), out_.size() - 1};
  }
  /// values() followed by one more slot holding the last input (the trade price or bar close),
  /// so that rules read "close" like any other output (slot plan.n_outputs()).
  [[nodiscard]] const double* slots() const noexcept { return out_.data(); }
  [[nodiscard]] std::size_t memory_bytes() const noexcept;

 private:
  template <typename T>
  struct Item {
    T ind;
    std::uint32_t out;  // first output slot
  };

  template <typename Input>
  void update(const Input& in) noexcept;

  const BankPlan* plan_;
  std::vector<RollingMoments> moments_;
  std::vector<Item<Ema>> ema_;
  std::vector<Item<Rsi>> rsi_;
  std::vector<Item<Macd>> macd_;
  std::vector<Item<Atr>> atr_;
  std::vector<Item<Vwap>> vwap_;
  std::vector<double> out_;
};

// ---------------------------------------------------------------------------------------------
// Hot path, inline so that it is compiled into the engine's per-CPU clones.

namespace detail {
struct TickInput {
  double price, size;
  std::int64_t ts;
  [[nodiscard]] double close() const noexcept { return price; }
  [[nodiscard]] double high() const noexcept { return price; }
  [[nodiscard]] double low() const noexcept { return price; }
  [[nodiscard]] double notional() const noexcept { return price * size; }
  [[nodiscard]] double volume() const noexcept { return size; }
  [[nodiscard]] std::int64_t time() const noexcept { return ts; }
};
struct BarInput {
  const Bar& bar;
  [[nodiscard]] double close() const noexcept { return bar.close; }
  [[nodiscard]] double high() const noexcept { return bar.high; }
  [[nodiscard]] double low() const noexcept { return bar.low; }
  [[nodiscard]] double notional() const noexcept { return bar.notional; }
  [[nodiscard]] double volume() const noexcept { return bar.volume; }
  [[nodiscard]] std::int64_t time() const noexcept { return bar.ts_open; }
};
}  // namespace detail

template <typename Input>
[[gnu::always_inline]] inline void Bank::update(const Input& in) noexcept {
  const BankPlan& p = *plan_;
  double* out = out_.data();
  const double x = in.close();
  out[p.n_outputs()] = x;
  for (RollingMoments& m : moments_) m.update(x);
  const RollingMoments* ms = moments_.data();
  for (const auto& d : p.sma_) out[d.out] = ms[d.moment].mean();
  for (const auto& d : p.stddev_) out[d.out] = ms[d.moment].stddev();
  for (const auto& d : p.zscore_) {
    out[d.out] = ZScore::of(x, ms[d.moment].mean(), ms[d.moment].stddev());
  }
  for (const auto& d : p.bbands_) {
    const Bands b = BBands::of(ms[d.moment].mean(), ms[d.moment].stddev(), d.k);
    out[d.upper] = b.upper;
    out[d.upper + 1] = b.middle;
    out[d.upper + 2] = b.lower;
  }
  for (auto& it : ema_) out[it.out] = it.ind.update(x);
  for (auto& it : rsi_) out[it.out] = it.ind.update(x);
  for (auto& it : macd_) {
    const MacdValue v = it.ind.update(x);
    out[it.out] = v.macd;
    out[it.out + 1] = v.signal;
    out[it.out + 2] = v.hist;
  }
  for (auto& it : atr_) out[it.out] = it.ind.update(in.high(), in.low(), x);
  for (auto& it : vwap_) out[it.out] = it.ind.add(in.notional(), in.volume(), in.time());
}

[[gnu::always_inline]] inline void Bank::update_tick(double price, double size,
                                                   std::int64_t ts_event) noexcept {
  update(detail::TickInput{price, size, ts_event});
}

inline void Bank::update_bar(const Bar& bar) noexcept { update(detail::BarInput{bar}); }

}  // namespace tickserver
