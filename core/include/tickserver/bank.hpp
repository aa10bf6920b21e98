// Indicator banks: every indicator of one symbol at one interval, state per kind, shared params.
//
// A BankPlan (one per interval, shared by all symbols) holds the indicators' parameters, the
// output layout and which outputs rules read on every input; a Bank holds one symbol's state,
// grouped by kind (structure of arrays; no parameters, no virtual dispatch). Indicators that
// need the same rolling window (SMA, BBANDS, STDDEV and ZSCORE of one period) share one moments
// state. Outputs are derived from the state when read, so a block of trades pays only for the
// recurrences plus the per-trade outputs some rule needs.
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

/// The layout of a bank, shared by all symbols: the indicators' parameters grouped by kind, the
/// output slot each writes, and the output columns of Bank::run_ticks. Built once per interval.
class BankPlan {
 public:
  /// `specs` must all have the same interval; names must be unique. Throws std::invalid_argument.
  explicit BankPlan(std::span<const IndicatorSpec> specs);

  [[nodiscard]] const std::vector<std::string>& output_names() const noexcept { return names_; }
  [[nodiscard]] std::size_t n_outputs() const noexcept { return names_.size(); }
  [[nodiscard]] bool empty() const noexcept { return names_.empty(); }
  /// Slot of an output name ("sma20", "macd.signal", ...).
  [[nodiscard]] std::optional<std::uint32_t> output_index(std::string_view name) const;
  /// Slots (upper, lower) of a bbands indicator by indicator name.
  [[nodiscard]] std::optional<std::pair<std::uint32_t, std::uint32_t>> bands_of(
      std::string_view indicator) const;

  /// Have Bank::run_ticks write this output slot's value after every input (a rule reads it).
  void want(std::uint32_t slot);
  /// Column of an output slot in run_ticks' output block, or -1 if it is not written.
  [[nodiscard]] std::int32_t column(std::uint32_t slot) const noexcept { return out_col_[slot]; }
  /// Columns of run_ticks' output block (wanted outputs and their intermediate values).
  [[nodiscard]] std::size_t n_columns() const noexcept { return n_cols_; }

 private:
  friend class Bank;
  struct Moment {
    MomentsParams params;
    std::size_t hist;      // offset of its history in Bank::hist_
    std::int32_t tot = -1;  // run_ticks columns of the window totals and variances
    std::int32_t var = -1;
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
  template <typename Params>
  struct Out {
    Params params;
    std::uint32_t out;  // first output slot (MACD: macd, signal, hist)
  };

  std::uint32_t moment_for(int period, bool variance);
  std::uint32_t add_output(std::string name);
  std::int32_t column_for(std::uint32_t slot);
  std::int32_t new_column() { return static_cast<std::int32_t>(n_cols_++); }

  std::vector<std::string> names_;
  std::vector<std::pair<std::string, std::uint32_t>> bands_by_name_;
  std::vector<Moment> moments_;
  std::size_t hist_size_ = 0;
  std::vector<MomentOut> sma_, stddev_, zscore_;
  std::vector<BandsOut> bbands_;
  std::vector<Out<EmaParams>> ema_;
  std::vector<Out<RsiParams>> rsi_;
  std::vector<Out<AtrParams>> atr_;
  std::vector<Out<MacdParams>> macd_;
  std::vector<std::uint32_t> vwap_;
  std::vector<std::int32_t> out_col_;  // per output slot
  std::size_t n_cols_ = 0;
};

/// The indicator state of one symbol at one interval. Holds pointers to its plan and to the
/// session calendar (for VWAP), which must outlive it.
class Bank {
 public:
  Bank(const BankPlan& plan, const SessionCalendar* calendar);

  /// Feed n trades (every indicator sees each price; ATR as high = low = close = price, which
  /// must be finite). The value of every wanted output (BankPlan::want) after each trade i goes
  /// to cols[column * stride + i]. Compiled per CPU level.
  void run_ticks(const double* price, const double* size, const std::int64_t* ts, std::size_t n,
                 double* cols, std::size_t stride) noexcept;
  /// Feed one trade, as run_ticks() with n = 1, and write every output a rule may read (every
  /// wanted output, every EMA, RSI, MACD, ATR and VWAP output) to v[slot] and the price to
  /// v[n_outputs]. For short runs, where run_ticks' per-call work would dominate.
  void update_tick(double price, double size, std::int64_t ts, double* __restrict v) noexcept;
  /// Commit one closed bar: indicators see the close (ATR high/low/close, VWAP its notional).
  void update_bar(const Bar& bar) noexcept;
  /// Outputs after the last committed update, indexed like plan.output_names().
  void values(std::span<double> out) const noexcept;
  /// The outputs update_bar(bar) would produce, without committing (provisional forming bar).
  void peek_bar(const Bar& bar, std::span<double> out) const noexcept;
  /// The last input (trade price or bar close); rules read it as "close".
  [[nodiscard]] double close() const noexcept { return close_; }
  /// Set the close without updating indicators (a bank without indicators).
  void set_close(double x) noexcept { close_ = x; }
  /// The session calendar changed: VWAPs look their session up again.
  void calendar_changed() noexcept;

  [[nodiscard]] std::size_t memory_bytes() const noexcept;

 private:
  void update_moments(double x) noexcept;

  const BankPlan* plan_;
  const SessionCalendar* calendar_;
  std::vector<MomentsState> moments_;
  std::vector<double> hist_;  // the moments' histories, back to back
  std::vector<EmaState> ema_;
  std::vector<RsiState> rsi_;
  std::vector<MacdState> macd_;
  std::vector<AtrState> atr_;
  std::vector<VwapState> vwap_;
  double close_ = kNaN;
};

// ---------------------------------------------------------------------------------------------
// The one-trade path, inline so that it is compiled into the engine's per-CPU clones.

TICKSERVER_INLINE void Bank::update_moments(double x) noexcept {
  const auto* mp = plan_->moments_.data();
  MomentsState* ms = moments_.data();
  double* hist = hist_.data();
  for (std::size_t m = 0, n = moments_.size(); m < n; ++m) {
    if (mp[m].params.variance) {
      moments::update<true>(mp[m].params, ms[m], hist + mp[m].hist, x);
    } else {
      moments::update<false>(mp[m].params, ms[m], hist + mp[m].hist, x);
    }
  }
}

TICKSERVER_INLINE void Bank::update_tick(double x, double size, std::int64_t ts,
                                         double* __restrict v) noexcept {
  const BankPlan& p = *plan_;
  update_moments(x);
  // Data pointers and counts in locals: stores through `v` would otherwise make the compiler
  // reload every vector's bounds.
  {
    const auto* d = p.ema_.data();
    EmaState* st = ema_.data();
    for (std::size_t i = 0, n = ema_.size(); i < n; ++i) {
      v[d[i].out] = ema::update(d[i].params, st[i], x);
    }
  }
  {
    const auto* d = p.rsi_.data();
    RsiState* st = rsi_.data();
    for (std::size_t i = 0, n = rsi_.size(); i < n; ++i) {
      v[d[i].out] = rsi::update(d[i].params, st[i], x);
    }
  }
  {
    const auto* d = p.macd_.data();
    MacdState* st = macd_.data();
    for (std::size_t i = 0, n = macd_.size(); i < n; ++i) {
      const MacdValue m = macd::update(d[i].params, st[i], x);
      v[d[i].out] = m.macd;
      v[d[i].out + 1] = m.signal;
      v[d[i].out + 2] = m.hist;
    }
  }
  {
    const auto* d = p.atr_.data();
    AtrState* st = atr_.data();
    for (std::size_t i = 0, n = atr_.size(); i < n; ++i) {
      v[d[i].out] = atr::update(d[i].params, st[i], x, x, x);
    }
  }
  {
    const std::uint32_t* d = p.vwap_.data();
    VwapState* st = vwap_.data();
    for (std::size_t i = 0, n = vwap_.size(); i < n; ++i) {
      v[d[i]] = vwap::add(*calendar_, st[i], x * size, size, ts);
    }
  }
  // Outputs derived from the moments (the window total and variance the update left in the
  // state), where a rule reads them.
  const auto* mp = p.moments_.data();
  const MomentsState* ms = moments_.data();
  const std::int32_t* col = p.out_col_.data();
  auto mean = [&](std::uint32_t m) { return moments::mean(mp[m].params, ms[m]); };
  auto sd = [&](std::uint32_t m) { return std::sqrt(ms[m].var); };
  for (const auto& d : p.sma_) {
    if (col[d.out] >= 0) v[d.out] = mean(d.moment);
  }
  for (const auto& d : p.stddev_) {
    if (col[d.out] >= 0) v[d.out] = sd(d.moment);
  }
  for (const auto& d : p.zscore_) {
    if (col[d.out] >= 0) v[d.out] = ZScore::of(x, mean(d.moment), sd(d.moment));
  }
  for (const auto& d : p.bbands_) {
    if (col[d.upper] >= 0) {
      const Bands b = BBands::of(mean(d.moment), sd(d.moment), d.k);
      v[d.upper] = b.upper;
      v[d.upper + 1] = b.middle;
      v[d.upper + 2] = b.lower;
    }
  }
  v[p.n_outputs()] = x;
  close_ = x;
}

}  // namespace tickserver
