// Indicator bank construction and the cold paths (provisional values of a forming bar).
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
        (void)Ema(s.period);
        ema_.push_back({s.period, add_output(s.name)});
        break;
      case IndicatorKind::Rsi:
        (void)Rsi(s.period);
        rsi_.push_back({s.period, add_output(s.name)});
        break;
      case IndicatorKind::Atr:
        (void)Atr(s.period);
        atr_.push_back({s.period, add_output(s.name)});
        break;
      case IndicatorKind::Macd: {
        (void)Macd(s.fast, s.slow, s.signal);
        const std::uint32_t o = add_output(s.name);
        add_output(s.name + ".signal");
        add_output(s.name + ".hist");
        macd_.push_back({s.fast, s.slow, s.signal, o});
        break;
      }
      case IndicatorKind::Vwap:
        vwap_.push_back(add_output(s.name));
        break;
    }
  }
}

std::uint32_t BankPlan::moment_for(int period, bool variance) {
  for (std::size_t i = 0; i < moments_.size(); ++i) {
    if (moments_[i].period == period) {
      moments_[i].variance = moments_[i].variance || variance;
      return static_cast<std::uint32_t>(i);
    }
  }
  moments_.push_back({period, variance});
  return static_cast<std::uint32_t>(moments_.size() - 1);
}

std::uint32_t BankPlan::add_output(std::string name) {
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    throw std::invalid_argument("duplicate indicator output name '" + name + "'");
  }
  names_.push_back(std::move(name));
  n_outputs_ = names_.size();
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

Bank::Bank(const BankPlan& plan, const std::shared_ptr<SessionCalendar>& calendar)
    : plan_(&plan), out_(plan.n_outputs() + 1, kNaN) {
  moments_.reserve(plan.moments_.size());
  for (const auto& m : plan.moments_) moments_.emplace_back(m.period, m.variance);
  for (const auto& d : plan.ema_) ema_.push_back({Ema(d.period), d.out});
  for (const auto& d : plan.rsi_) rsi_.push_back({Rsi(d.period), d.out});
  for (const auto& d : plan.atr_) atr_.push_back({Atr(d.period), d.out});
  for (const auto& d : plan.macd_) macd_.push_back({Macd(d.fast, d.slow, d.signal), d.out});
  for (const std::uint32_t o : plan.vwap_) vwap_.push_back({Vwap(calendar), o});
}

void Bank::calendar_changed() noexcept {
  for (auto& it : vwap_) it.ind.calendar_changed();
}

void Bank::peek_bar(const Bar& bar, std::span<double> out) const noexcept {
  const BankPlan& p = *plan_;
  const double x = bar.close;
  std::copy(out_.begin(), out_.end() - 1, out.begin());
  auto moment = [&](std::uint32_t i) {
    const RollingMoments::Value v = moments_[i].peek(x);
    return std::make_pair(v.mean, std::sqrt(v.variance));
  };
  for (const auto& d : p.sma_) out[d.out] = moments_[d.moment].peek(x).mean;
  for (const auto& d : p.stddev_) out[d.out] = moment(d.moment).second;
  for (const auto& d : p.zscore_) {
    const auto [mean, sd] = moment(d.moment);
    out[d.out] = ZScore::of(x, mean, sd);
  }
  for (const auto& d : p.bbands_) {
    const auto [mean, sd] = moment(d.moment);
    const Bands b = BBands::of(mean, sd, d.k);
    out[d.upper] = b.upper;
    out[d.upper + 1] = b.middle;
    out[d.upper + 2] = b.lower;
  }
  for (const auto& it : ema_) out[it.out] = it.ind.peek(x);
  for (const auto& it : rsi_) out[it.out] = it.ind.peek(x);
  for (const auto& it : macd_) {
    const MacdValue v = it.ind.peek(x);
    out[it.out] = v.macd;
    out[it.out + 1] = v.signal;
    out[it.out + 2] = v.hist;
  }
  for (const auto& it : atr_) out[it.out] = it.ind.peek(bar.high, bar.low, bar.close);
  for (const auto& it : vwap_) {
    out[it.out] = it.ind.peek_add(bar.notional, bar.volume, bar.ts_open);
  }
}

std::size_t Bank::memory_bytes() const noexcept {
  std::size_t n = sizeof(Bank) + out_.capacity() * sizeof(double) +
                  ema_.capacity() * sizeof(Item<Ema>) + rsi_.capacity() * sizeof(Item<Rsi>) +
                  macd_.capacity() * sizeof(Item<Macd>) + atr_.capacity() * sizeof(Item<Atr>) +
                  vwap_.capacity() * sizeof(Item<Vwap>);
  for (const auto& m : moments_) {
    n += sizeof(RollingMoments) + static_cast<std::size_t>(m.period()) * sizeof(double);
  }
  return n;
}

}  // namespace tickserver
