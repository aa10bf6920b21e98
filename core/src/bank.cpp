// Indicator banks: plan construction, the per-block tick kernel and the per-bar paths.
#include "tickserver/bank.hpp"

#include <algorithm>
#include <array>

namespace tickserver {

IndicatorKind indicator_kind_from_string(std::string_view s) {
  static constexpr std::array kinds = {IndicatorKind::Sma,    IndicatorKind::Ema,
                                       IndicatorKind::Rsi,    IndicatorKind::Macd,
                                       IndicatorKind::BBands, IndicatorKind::Atr,
                                       IndicatorKind::Vwap,   IndicatorKind::StdDev,
                                       IndicatorKind::ZScore};
  for (const IndicatorKind k : kinds) {
    if (s == to_string(k)) return k;
  }
  throw std::invalid_argument("unknown indicator kind '" + std::string(s) +
                              "' (expected sma, ema, rsi, macd, bbands, atr, vwap, stddev or "
                              "zscore)");
}

// ---------------------------------------------------------------------------------------------
// Plan

BankPlan::BankPlan(std::span<const IndicatorSpec> specs) {
  std::vector<std::string_view> seen;
  for (const IndicatorSpec& s : specs) {
    if (s.name.empty()) throw std::invalid_argument("indicator name must not be empty");
    if (std::find(seen.begin(), seen.end(), s.name) != seen.end()) {
      throw std::invalid_argument("duplicate indicator name '" + s.name + "'");
    }
    seen.push_back(s.name);
    if (!specs.empty() && s.interval != specs.front().interval) {
      throw std::invalid_argument("a bank holds indicators of one interval");
    }
    // Constructing the indicator validates its parameters with TA-Lib's ranges.
    switch (s.kind) {
      case IndicatorKind::Sma:
        (void)Sma(s.period);
        sma_.push_back({moment_for(s.period, false), add_output(s.name)});
        break;
      case IndicatorKind::StdDev:
        (void)StdDev(s.period);
        stddev_.push_back({moment_for(s.period, true), add_output(s.name)});
        break;
      case IndicatorKind::ZScore:
        (void)ZScore(s.period);
        zscore_.push_back({moment_for(s.period, true), add_output(s.name)});
        break;
      case IndicatorKind::BBands: {
        (void)BBands(s.period, s.k);
        const std::uint32_t m = moment_for(s.period, true);
        const std::uint32_t upper = add_output(s.name + ".upper");
        add_output(s.name + ".middle");
        add_output(s.name + ".lower");
        bbands_.push_back({m, s.k, upper});
        bands_by_name_.emplace_back(s.name, upper);
        break;
      }
      case IndicatorKind::Ema:
        ema_.push_back({EmaParams(s.period), add_output(s.name)});
        break;
      case IndicatorKind::Rsi:
        rsi_.push_back({RsiParams(s.period), add_output(s.name)});
        break;
      case IndicatorKind::Atr:
        atr_.push_back({AtrParams(s.period), add_output(s.name)});
        break;
      case IndicatorKind::Macd: {
        const MacdParams p(s.fast, s.slow, s.signal);
        const std::uint32_t o = add_output(s.name);
        add_output(s.name + ".signal");
        add_output(s.name + ".hist");
        macd_.push_back({p, o});
        break;
      }
      case IndicatorKind::Vwap:
        vwap_.push_back(add_output(s.name));
        break;
    }
  }
  for (Moment& m : moments_) {
    m.hist = hist_size_;
    hist_size_ += m.params.lag;
  }
  out_col_.assign(names_.size(), -1);
}

std::uint32_t BankPlan::moment_for(int period, bool variance) {
  for (std::size_t i = 0; i < moments_.size(); ++i) {
    if (moments_[i].params.period == period) {
      moments_[i].params.variance = moments_[i].params.variance || variance;
      return static_cast<std::uint32_t>(i);
    }
  }
  moments_.push_back({MomentsParams(period, variance), 0});
  return static_cast<std::uint32_t>(moments_.size() - 1);
}

std::uint32_t BankPlan::add_output(std::string name) {
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    throw std::invalid_argument("duplicate indicator output name '" + name + "'");
  }
  names_.push_back(std::move(name));
  return static_cast<std::uint32_t>(names_.size() - 1);
}

std::optional<std::uint32_t> BankPlan::output_index(std::string_view name) const {
  const auto it = std::find(names_.begin(), names_.end(), name);
  if (it == names_.end()) return std::nullopt;
  return static_cast<std::uint32_t>(it - names_.begin());
}

std::optional<std::pair<std::uint32_t, std::uint32_t>> BankPlan::bands_of(
    std::string_view indicator) const {
  for (const auto& [name, upper] : bands_by_name_) {
    if (name == indicator) return std::make_pair(upper, upper + 2);
  }
  return std::nullopt;
}

std::int32_t BankPlan::column_for(std::uint32_t slot) {
  if (out_col_[slot] < 0) out_col_[slot] = new_column();
  return out_col_[slot];
}

void BankPlan::want(std::uint32_t slot) {
  if (slot >= names_.size()) throw std::out_of_range("no such output slot");
  auto tot = [&](std::uint32_t m) {
    if (moments_[m].tot < 0) moments_[m].tot = new_column();
  };
  auto var = [&](std::uint32_t m) {
    if (moments_[m].var < 0) moments_[m].var = new_column();
  };
  for (const auto& d : sma_) {
    if (d.out == slot) tot(d.moment);
  }
  for (const auto& d : stddev_) {
    if (d.out == slot) var(d.moment);
  }
  for (const auto& d : zscore_) {
    if (d.out == slot) {
      tot(d.moment);
      var(d.moment);
    }
  }
  for (const auto& d : bbands_) {  // all three bands are written together
    if (slot >= d.upper && slot <= d.upper + 2) {
      tot(d.moment);
      var(d.moment);
      for (std::uint32_t o = d.upper; o <= d.upper + 2; ++o) column_for(o);
    }
  }
  for (const auto& d : macd_) {  // all three lines are written together
    if (slot >= d.out && slot <= d.out + 2) {
      for (std::uint32_t o = d.out; o <= d.out + 2; ++o) column_for(o);
    }
  }
  column_for(slot);
}

// ---------------------------------------------------------------------------------------------
// Bank

Bank::Bank(const BankPlan& plan, const SessionCalendar* calendar)
    : plan_(&plan),
      calendar_(calendar),
      moments_(plan.moments_.size()),
      hist_(plan.hist_size_, 0.0),
      ema_(plan.ema_.size()),
      rsi_(plan.rsi_.size()),
      macd_(plan.macd_.size()),
      atr_(plan.atr_.size()),
      vwap_(plan.vwap_.size()) {
  for (std::size_t i = 0; i < moments_.size(); ++i) {
    const auto& m = plan.moments_[i];
    moments::reset(m.params, moments_[i], hist_.data() + m.hist);
  }
}

namespace {

/// moments::run with its template flags chosen at run time.
TICKSERVER_INLINE void run_moments(const MomentsParams& p, MomentsState& s, double* hist,
                                   const double* x, std::size_t n, double* tot,
                                   double* var) noexcept {
  if (p.variance) {
    if (tot != nullptr && var != nullptr) {
      moments::run<true, true, true>(p, s, hist, x, n, tot, var);
    } else if (tot != nullptr) {
      moments::run<true, true, false>(p, s, hist, x, n, tot, nullptr);
    } else if (var != nullptr) {
      moments::run<true, false, true>(p, s, hist, x, n, nullptr, var);
    } else {
      moments::run<true, false, false>(p, s, hist, x, n, nullptr, nullptr);
    }
  } else if (tot != nullptr) {
    moments::run<false, true, false>(p, s, hist, x, n, tot, nullptr);
  } else {
    moments::run<false, false, false>(p, s, hist, x, n, nullptr, nullptr);
  }
}

/// ATR over trades (high = low = close = price, finite): the true range is |prev - price|
/// (TA-Lib's max(high - low, |prev - high|, |prev - low|) gives exactly that bit pattern).
template <bool Want>
TICKSERVER_INLINE void run_atr_ticks(const AtrParams& p, AtrState& st,
                                     const double* __restrict x, std::size_t n,
                                     double* __restrict out) noexcept {
  AtrState s = st;
  std::size_t i = 0;
  for (; i < n && s.count <= p.p; ++i) {
    const double v = atr::update(p, s, x[i], x[i], x[i]);
    if constexpr (Want) out[i] = v;
  }
  double pc = s.prev_close, value = s.value;
  const double beta = p.beta, alpha = p.alpha;
  for (std::size_t j = i; j < n; ++j) {
    const double tr = std::fabs(pc - x[j]);
    pc = x[j];
    value = std::fma(beta, value, alpha * tr);
    if constexpr (Want) out[j] = value;
  }
  s.prev_close = pc;
  s.value = value;
  s.count += n - i;
  st = s;
}

}  // namespace

TICKSERVER_HOT_CLONES void Bank::run_ticks(const double* __restrict price,
                                           const double* __restrict size,
                                           const std::int64_t* __restrict ts, std::size_t n,
                                           double* __restrict cols,
                                           std::size_t stride) noexcept {
  if (n == 0) return;
  const BankPlan& p = *plan_;
  auto col = [cols, stride](std::int32_t c) -> double* {
    return c < 0 ? nullptr : cols + static_cast<std::size_t>(c) * stride;
  };
  // Recurrences, one kind at a time, each with its state in registers.
  for (std::size_t m = 0; m < moments_.size(); ++m) {
    const auto& mp = p.moments_[m];
    run_moments(mp.params, moments_[m], hist_.data() + mp.hist, price, n, col(mp.tot),
                col(mp.var));
  }
  for (std::size_t i = 0; i < ema_.size(); ++i) {
    if (double* o = col(p.out_col_[p.ema_[i].out])) {
      ema::run<true>(p.ema_[i].params, ema_[i], price, n, o);
    } else {
      ema::run<false>(p.ema_[i].params, ema_[i], price, n, nullptr);
    }
  }
  for (std::size_t i = 0; i < rsi_.size(); ++i) {
    if (double* o = col(p.out_col_[p.rsi_[i].out])) {
      rsi::run<true>(p.rsi_[i].params, rsi_[i], price, n, o);
    } else {
      rsi::run<false>(p.rsi_[i].params, rsi_[i], price, n, nullptr);
    }
  }
  for (std::size_t i = 0; i < macd_.size(); ++i) {
    const std::uint32_t o = p.macd_[i].out;
    if (double* line = col(p.out_col_[o])) {
      macd::run<true>(p.macd_[i].params, macd_[i], price, n, line, col(p.out_col_[o + 1]),
                      col(p.out_col_[o + 2]));
    } else {
      macd::run<false>(p.macd_[i].params, macd_[i], price, n, nullptr, nullptr, nullptr);
    }
  }
  for (std::size_t i = 0; i < atr_.size(); ++i) {
    if (double* o = col(p.out_col_[p.atr_[i].out])) {
      run_atr_ticks<true>(p.atr_[i].params, atr_[i], price, n, o);
    } else {
      run_atr_ticks<false>(p.atr_[i].params, atr_[i], price, n, nullptr);
    }
  }
  for (std::size_t i = 0; i < vwap_.size(); ++i) {
    if (double* o = col(p.out_col_[p.vwap_[i]])) {
      vwap::run<true>(*calendar_, vwap_[i], price, size, ts, n, o);
    } else {
      vwap::run<false>(*calendar_, vwap_[i], price, size, ts, n, nullptr);
    }
  }
  // Outputs derived from the moments, where wanted: element-wise, off the recurrences'
  // dependency chains (the compiler vectorises the divisions and square roots).
  for (const auto& d : p.sma_) {
    if (double* o = col(p.out_col_[d.out])) {
      const double* tot = col(p.moments_[d.moment].tot);
      const double period = p.moments_[d.moment].params.period;
      for (std::size_t i = 0; i < n; ++i) o[i] = tot[i] / period;
    }
  }
  for (const auto& d : p.stddev_) {
    if (double* o = col(p.out_col_[d.out])) {
      const double* var = col(p.moments_[d.moment].var);
      for (std::size_t i = 0; i < n; ++i) o[i] = std::sqrt(var[i]);
    }
  }
  for (const auto& d : p.zscore_) {
    if (double* o = col(p.out_col_[d.out])) {
      const double* tot = col(p.moments_[d.moment].tot);
      const double* var = col(p.moments_[d.moment].var);
      const double period = p.moments_[d.moment].params.period;
      for (std::size_t i = 0; i < n; ++i) {
        o[i] = ZScore::of(price[i], tot[i] / period, std::sqrt(var[i]));
      }
    }
  }
  for (const auto& d : p.bbands_) {
    if (double* up = col(p.out_col_[d.upper])) {
      double* __restrict mid = col(p.out_col_[d.upper + 1]);
      double* __restrict low = col(p.out_col_[d.upper + 2]);
      const double* tot = col(p.moments_[d.moment].tot);
      const double* var = col(p.moments_[d.moment].var);
      const double period = p.moments_[d.moment].params.period;
      const double k = d.k;
      for (std::size_t i = 0; i < n; ++i) {
        const Bands b = BBands::of(tot[i] / period, std::sqrt(var[i]), k);
        up[i] = b.upper;
        mid[i] = b.middle;
        low[i] = b.lower;
      }
    }
  }
  close_ = price[n - 1];
}

void Bank::update_bar(const Bar& bar) noexcept {
  const BankPlan& p = *plan_;
  const double x = bar.close;
  update_moments(x);
  for (std::size_t i = 0; i < ema_.size(); ++i) (void)ema::update(p.ema_[i].params, ema_[i], x);
  for (std::size_t i = 0; i < rsi_.size(); ++i) (void)rsi::update(p.rsi_[i].params, rsi_[i], x);
  for (std::size_t i = 0; i < macd_.size(); ++i) {
    (void)macd::update(p.macd_[i].params, macd_[i], x);
  }
  for (std::size_t i = 0; i < atr_.size(); ++i) {
    (void)atr::update(p.atr_[i].params, atr_[i], bar.high, bar.low, x);
  }
  for (VwapState& s : vwap_) (void)vwap::add(*calendar_, s, bar.notional, bar.volume, bar.ts_open);
  close_ = x;
}

void Bank::values(std::span<double> out) const noexcept {
  const BankPlan& p = *plan_;
  auto mean = [&](std::uint32_t m) { return moments::mean(p.moments_[m].params, moments_[m]); };
  auto sd = [&](std::uint32_t m) { return std::sqrt(moments_[m].var); };
  for (const auto& d : p.sma_) out[d.out] = mean(d.moment);
  for (const auto& d : p.stddev_) out[d.out] = sd(d.moment);
  for (const auto& d : p.zscore_) out[d.out] = ZScore::of(close_, mean(d.moment), sd(d.moment));
  for (const auto& d : p.bbands_) {
    const Bands b = BBands::of(mean(d.moment), sd(d.moment), d.k);
    out[d.upper] = b.upper;
    out[d.upper + 1] = b.middle;
    out[d.upper + 2] = b.lower;
  }
  for (std::size_t i = 0; i < ema_.size(); ++i) {
    out[p.ema_[i].out] = ema::value(p.ema_[i].params, ema_[i]);
  }
  for (std::size_t i = 0; i < rsi_.size(); ++i) {
    out[p.rsi_[i].out] = rsi::value(p.rsi_[i].params, rsi_[i]);
  }
  for (std::size_t i = 0; i < macd_.size(); ++i) {
    const MacdValue v = macd::value(p.macd_[i].params, macd_[i]);
    out[p.macd_[i].out] = v.macd;
    out[p.macd_[i].out + 1] = v.signal;
    out[p.macd_[i].out + 2] = v.hist;
  }
  for (std::size_t i = 0; i < atr_.size(); ++i) out[p.atr_[i].out] = atr_[i].value;
  for (std::size_t i = 0; i < vwap_.size(); ++i) out[p.vwap_[i]] = vwap::value(vwap_[i]);
}

void Bank::peek_bar(const Bar& bar, std::span<double> out) const noexcept {
  const BankPlan& p = *plan_;
  const double x = bar.close;
  auto peek = [&](std::uint32_t m) {
    const auto& mp = p.moments_[m];
    const moments::Value v = moments::peek(mp.params, moments_[m], hist_.data() + mp.hist, x);
    return std::make_pair(v.mean, std::sqrt(v.variance));
  };
  for (const auto& d : p.sma_) out[d.out] = peek(d.moment).first;
  for (const auto& d : p.stddev_) out[d.out] = peek(d.moment).second;
  for (const auto& d : p.zscore_) {
    const auto [mean, sd] = peek(d.moment);
    out[d.out] = ZScore::of(x, mean, sd);
  }
  for (const auto& d : p.bbands_) {
    const auto [mean, sd] = peek(d.moment);
    const Bands b = BBands::of(mean, sd, d.k);
    out[d.upper] = b.upper;
    out[d.upper + 1] = b.middle;
    out[d.upper + 2] = b.lower;
  }
  for (std::size_t i = 0; i < ema_.size(); ++i) {
    out[p.ema_[i].out] = ema::peek(p.ema_[i].params, ema_[i], x);
  }
  for (std::size_t i = 0; i < rsi_.size(); ++i) {
    out[p.rsi_[i].out] = rsi::peek(p.rsi_[i].params, rsi_[i], x);
  }
  for (std::size_t i = 0; i < macd_.size(); ++i) {
    const MacdValue v = macd::peek(p.macd_[i].params, macd_[i], x);
    out[p.macd_[i].out] = v.macd;
    out[p.macd_[i].out + 1] = v.signal;
    out[p.macd_[i].out + 2] = v.hist;
  }
  for (std::size_t i = 0; i < atr_.size(); ++i) {
    out[p.atr_[i].out] = atr::peek(p.atr_[i].params, atr_[i], bar.high, bar.low, x);
  }
  for (std::size_t i = 0; i < vwap_.size(); ++i) {
    VwapState copy = vwap_[i];
    out[p.vwap_[i]] = vwap::add(*calendar_, copy, bar.notional, bar.volume, bar.ts_open);
  }
}

void Bank::calendar_changed() noexcept {
  for (VwapState& s : vwap_) vwap::calendar_changed(s);
}

std::size_t Bank::memory_bytes() const noexcept {
  return sizeof(Bank) + moments_.capacity() * sizeof(MomentsState) +
         hist_.capacity() * sizeof(double) + ema_.capacity() * sizeof(EmaState) +
         rsi_.capacity() * sizeof(RsiState) + macd_.capacity() * sizeof(MacdState) +
         atr_.capacity() * sizeof(AtrState) + vwap_.capacity() * sizeof(VwapState);
}

}  // namespace tickserver
