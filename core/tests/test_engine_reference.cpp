#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "tickserver/engine.hpp"

// Differential test: the engine against a plain row-by-row reference model built from the
// standalone indicator classes, BarSeries and the rule functions, on random configurations,
// batch splits, invalid rows, late trades, clock advances and session changes. Every output and
// every snapshot must be identical (bit for bit; NaN equals NaN).

using namespace tickserver;

namespace {

constexpr std::int64_t S = kNanosPerSecond;
constexpr std::int64_t M = kNanosPerMinute;

std::string label(const char* prefix, std::size_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

bool same(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}

struct Input {
  double close, high, low, notional, volume, price, size;
  std::int64_t time;
  bool tick;
};

Input tick_input(std::int64_t ts, double px, double sz) {
  return {px, px, px, px * sz, sz, px, sz, ts, true};
}

Input bar_input(const Bar& b) {
  return {b.close, b.high, b.low, b.notional, b.volume, 0.0, 0.0, b.ts_open, false};
}

/// One configured indicator of the reference model.
struct RefIndicator {
  virtual ~RefIndicator() = default;
  [[nodiscard]] virtual std::size_t outputs() const = 0;
  virtual void update(const Input& in, double* out) = 0;
  virtual void peek(const Input& in, double* out) const = 0;
  virtual void calendar_changed() {}
};

template <typename T>
struct Single : RefIndicator {
  explicit Single(T t) : ind(std::move(t)) {}
  T ind;
  std::size_t outputs() const override { return 1; }
  void update(const Input& in, double* out) override { out[0] = ind.update(in.close); }
  void peek(const Input& in, double* out) const override { out[0] = ind.peek(in.close); }
};

struct RefMacd : RefIndicator {
  explicit RefMacd(Macd m) : ind(m) {}
  Macd ind;
  std::size_t outputs() const override { return 3; }
  void update(const Input& in, double* out) override {
    const MacdValue v = ind.update(in.close);
    out[0] = v.macd;
    out[1] = v.signal;
    out[2] = v.hist;
  }
  void peek(const Input& in, double* out) const override {
    const MacdValue v = ind.peek(in.close);
    out[0] = v.macd;
    out[1] = v.signal;
    out[2] = v.hist;
  }
};

struct RefBands : RefIndicator {
  explicit RefBands(BBands b) : ind(b) {}
  BBands ind;
  std::size_t outputs() const override { return 3; }
  void update(const Input& in, double* out) override {
    const Bands v = ind.update(in.close);
    out[0] = v.upper;
    out[1] = v.middle;
    out[2] = v.lower;
  }
  void peek(const Input& in, double* out) const override {
    const Bands v = ind.peek(in.close);
    out[0] = v.upper;
    out[1] = v.middle;
    out[2] = v.lower;
  }
};

struct RefAtr : RefIndicator {
  explicit RefAtr(Atr a) : ind(a) {}
  Atr ind;
  std::size_t outputs() const override { return 1; }
  void update(const Input& in, double* out) override {
    out[0] = ind.update(in.high, in.low, in.close);
  }
  void peek(const Input& in, double* out) const override {
    out[0] = ind.peek(in.high, in.low, in.close);
  }
};

struct RefVwap : RefIndicator {
  explicit RefVwap(std::shared_ptr<SessionCalendar> cal) : ind(std::move(cal)) {}
  Vwap ind;
  std::size_t outputs() const override { return 1; }
  void update(const Input& in, double* out) override {
    out[0] = in.tick ? ind.update(in.price, in.size, in.time)
                     : ind.add(in.notional, in.volume, in.time);
  }
  void peek(const Input& in, double* out) const override {
    out[0] = in.tick ? ind.peek(in.price, in.size, in.time)
                     : ind.peek_add(in.notional, in.volume, in.time);
  }
  void calendar_changed() override { ind.calendar_changed(); }
};

std::unique_ptr<RefIndicator> make_indicator(const IndicatorSpec& s,
                                             const std::shared_ptr<SessionCalendar>& cal) {
  switch (s.kind) {
    case IndicatorKind::Sma: return std::make_unique<Single<Sma>>(Sma(s.period));
    case IndicatorKind::Ema: return std::make_unique<Single<Ema>>(Ema(s.period));
    case IndicatorKind::Rsi: return std::make_unique<Single<Rsi>>(Rsi(s.period));
    case IndicatorKind::StdDev: return std::make_unique<Single<StdDev>>(StdDev(s.period));
    case IndicatorKind::ZScore: return std::make_unique<Single<ZScore>>(ZScore(s.period));
    case IndicatorKind::Macd: return std::make_unique<RefMacd>(Macd(s.fast, s.slow, s.signal));
    case IndicatorKind::BBands: return std::make_unique<RefBands>(BBands(s.period, s.k));
    case IndicatorKind::Atr: return std::make_unique<RefAtr>(Atr(s.period));
    case IndicatorKind::Vwap: return std::make_unique<RefVwap>(cal);
  }
  return nullptr;
}

std::vector<std::string> output_names(const IndicatorSpec& s) {
  switch (s.kind) {
    case IndicatorKind::Macd: return {s.name, s.name + ".signal", s.name + ".hist"};
    case IndicatorKind::BBands: return {s.name + ".upper", s.name + ".middle", s.name + ".lower"};
    default: return {s.name};
  }
}

/// The indicators of one symbol at one interval; `out` holds the outputs of the last update
/// followed by the close.
struct RefBank {
  std::vector<std::unique_ptr<RefIndicator>> inds;
  std::vector<double> out;  // outputs..., close

  void update(const Input& in) {
    double* o = out.data();
    for (auto& i : inds) {
      i->update(in, o);
      o += i->outputs();
    }
    out.back() = in.close;
  }
  [[nodiscard]] std::vector<double> peek(const Input& in) const {
    std::vector<double> v(out.begin(), out.end() - 1);
    double* o = v.data();
    for (const auto& i : inds) {
      i->peek(in, o);
      o += i->outputs();
    }
    return v;
  }
};

struct RefRule {
  RuleKind kind;
  std::uint16_t id;
  std::size_t bank;
  std::size_t a, b;  // slots (breakout: upper, lower)
  double above, below;
};

struct RefSymbol {
  std::vector<BarSeries> series;
  std::vector<RefBank> banks;
  std::vector<rules::State> rule_state;
  std::uint64_t trades = 0;
  std::vector<TradeRecord> last;  // every accepted trade
};

/// Row-by-row reference of the engine's documented behaviour.
class Reference {
 public:
  Reference(std::size_t n_syms, const EngineConfig& c)
      : cfg_(c), cal_(std::make_shared<SessionCalendar>()) {
    for (const std::int64_t iv : c.intervals) clocks_.emplace_back(iv, cal_.get());
    const std::size_t n_banks = c.intervals.size() + 1;
    std::vector<std::vector<std::string>> names(n_banks);
    for (const IndicatorSpec& s : c.indicators) {
      for (auto& n : output_names(s)) names[bank_of(s.interval)].push_back(n);
    }
    for (std::size_t i = 0; i < c.rules.size(); ++i) {
      const RuleSpec& r = c.rules[i];
      const std::size_t b = bank_of(r.interval);
      auto slot = [&](const std::string& n) -> std::size_t {
        if (n == "close") return names[b].size();
        return static_cast<std::size_t>(std::find(names[b].begin(), names[b].end(), n) -
                                        names[b].begin());
      };
      RefRule rr{r.kind, static_cast<std::uint16_t>(i), b, 0, 0, r.above, r.below};
      if (r.kind == RuleKind::Breakout) {
        rr.a = slot(r.a + ".upper");
        rr.b = slot(r.a + ".lower");
      } else {
        rr.a = slot(r.a);
        rr.b = r.kind == RuleKind::Crossover ? slot(r.b) : 0;
      }
      rules_.push_back(rr);
    }
    // Evaluation order: crossover, threshold, breakout; configuration order within a kind.
    std::stable_sort(rules_.begin(), rules_.end(), [](const RefRule& x, const RefRule& y) {
      return static_cast<int>(x.kind) < static_cast<int>(y.kind);
    });
    for (std::size_t s = 0; s < n_syms; ++s) {
      RefSymbol sym;
      for (std::size_t k = 0; k < c.intervals.size(); ++k) sym.series.emplace_back(c.bar_capacity);
      sym.banks.resize(n_banks);
      for (std::size_t b = 0; b < n_banks; ++b) sym.banks[b].out.assign(names[b].size() + 1, kNaN);
      for (const IndicatorSpec& spec : c.indicators) {
        sym.banks[bank_of(spec.interval)].inds.push_back(make_indicator(spec, cal_));
      }
      sym.rule_state.resize(c.rules.size());
      syms_.push_back(std::move(sym));
    }
    names_ = names;
  }

  std::size_t bank_of(std::int64_t iv) const {
    if (iv == 0) return 0;
    return static_cast<std::size_t>(
               std::find(cfg_.intervals.begin(), cfg_.intervals.end(), iv) -
               cfg_.intervals.begin()) +
           1;
  }

  TradeReject trade(std::int64_t row, SymbolId sid, std::int64_t ts, double px, double sz,
                    std::uint64_t seq, std::uint8_t flags, IngestResult& out) {
    TradeReject r = TradeReject::Ok;
    if (sid >= syms_.size()) {
      r = TradeReject::UnknownSymbol;
    } else if (!(px > 0.0) || !std::isfinite(px)) {
      r = TradeReject::BadPrice;
    } else if (!(sz >= 0.0) || !std::isfinite(sz)) {
      r = TradeReject::BadSize;
    }
    if (r != TradeReject::Ok) {
      out.rejected.push_back(row);
      out.reject_reason.push_back(static_cast<std::uint8_t>(r));
      return r;
    }
    RefSymbol& st = syms_[sid];
    ++st.trades;
    st.last.push_back({ts, px, sz, seq, flags});
    bool late = false;
    std::vector<bool> rolled(st.series.size());
    for (std::size_t k = 0; k < st.series.size(); ++k) {
      const BarEvent e = st.series[k].add(ts, px, sz, clocks_[k]);
      late = late || e == BarEvent::Late;
      rolled[k] = e == BarEvent::Rolled;
    }
    RefBank& tick = st.banks[0];
    tick.update(tick_input(ts, px, sz));
    eval(st, sid, 0, ts, out);
    for (std::size_t k = 0; k < st.series.size(); ++k) {
      if (rolled[k]) bar_close(st, sid, k, st.series[k].closed().back(), out);
    }
    if (late) ++out.late;
    return r;
  }

  void advance(std::int64_t now, IngestResult& out) {
    for (std::size_t s = 0; s < syms_.size(); ++s) {
      for (std::size_t k = 0; k < syms_[s].series.size(); ++k) {
        if (syms_[s].series[k].advance(now)) {
          bar_close(syms_[s], static_cast<SymbolId>(s), k, syms_[s].series[k].closed().back(),
                    out);
        }
      }
    }
  }

  void set_day_boundaries(std::vector<std::int64_t> starts) {
    cal_->set_boundaries(std::move(starts));
    for (auto& s : syms_) {
      for (auto& b : s.banks) {
        for (auto& i : b.inds) i->calendar_changed();
      }
    }
  }

  std::vector<double> values(SymbolId sid, std::size_t bank, bool forming) const {
    const RefSymbol& st = syms_[sid];
    const RefBank& b = st.banks[bank];
    if (bank > 0 && forming && st.series[bank - 1].has_forming()) {
      return b.peek(bar_input(st.series[bank - 1].forming()));
    }
    return {b.out.begin(), b.out.end() - 1};
  }

  const RefSymbol& symbol(SymbolId s) const { return syms_[s]; }
  const std::vector<std::string>& names(std::size_t bank) const { return names_[bank]; }

 private:
  void bar_close(RefSymbol& st, SymbolId sid, std::size_t k, const Bar& bar, IngestResult& out) {
    const std::int64_t iv = cfg_.intervals[k];
    BarColumns& b = out.bars;
    b.interval.push_back(iv);
    b.symbol_id.push_back(sid);
    b.ts_event.push_back(bar.ts_open);
    b.open.push_back(bar.open);
    b.high.push_back(bar.high);
    b.low.push_back(bar.low);
    b.close.push_back(bar.close);
    b.volume.push_back(bar.volume);
    b.vwap.push_back(bar.vwap());
    b.trades.push_back(bar.trades);
    RefBank& bank = st.banks[k + 1];
    if (!bank.inds.empty()) {
      bank.update(bar_input(bar));
      for (std::size_t o = 0; o + 1 < bank.out.size(); ++o) {
        if (std::isnan(bank.out[o])) continue;
        out.indicators.interval.push_back(iv);
        out.indicators.symbol_id.push_back(sid);
        out.indicators.ts_event.push_back(bar.ts_open);
        out.indicators.output_id.push_back(static_cast<std::uint16_t>(o));
        out.indicators.value.push_back(bank.out[o]);
      }
    }
    bank.out.back() = bar.close;
    eval(st, sid, k + 1, bar.ts_open, out);
  }

  void eval(RefSymbol& st, SymbolId sid, std::size_t bank, std::int64_t ts, IngestResult& out) {
    const std::vector<double>& v = st.banks[bank].out;
    const double close = v.back();
    for (const RefRule& r : rules_) {
      if (r.bank != bank) continue;
      int dir = 0;
      double value = v[r.a];
      switch (r.kind) {
        case RuleKind::Crossover: dir = rules::crossover(v[r.a], v[r.b], st.rule_state[r.id]); break;
        case RuleKind::Threshold:
          dir = rules::threshold(v[r.a], r.above, r.below, st.rule_state[r.id]);
          break;
        case RuleKind::Breakout:
          dir = rules::breakout(close, v[r.a], v[r.b], st.rule_state[r.id]);
          value = close;
          break;
      }
      if (dir == 0) continue;
      out.signals.rule_id.push_back(r.id);
      out.signals.symbol_id.push_back(sid);
      out.signals.ts_event.push_back(ts);
      out.signals.direction.push_back(static_cast<std::int8_t>(dir));
      out.signals.value.push_back(value);
    }
  }

  EngineConfig cfg_;
  std::shared_ptr<SessionCalendar> cal_;
  std::vector<BarClock> clocks_;
  std::vector<RefRule> rules_;
  std::vector<RefSymbol> syms_;
  std::vector<std::vector<std::string>> names_;
};

// ---------------------------------------------------------------------------------------------
// Random configurations and feeds.

IndicatorSpec random_indicator(std::mt19937_64& rng, const std::string& name, std::int64_t iv) {
  static constexpr int periods[] = {1, 2, 3, 5, 9, 14, 20};
  auto pick = [&](int lo) {
    int p = 0;
    do p = periods[rng() % std::size(periods)];
    while (p < lo);
    return p;
  };
  IndicatorSpec s;
  s.name = name;
  s.interval = iv;
  s.kind = static_cast<IndicatorKind>(rng() % 9);
  switch (s.kind) {
    case IndicatorKind::Sma:
    case IndicatorKind::Ema:
    case IndicatorKind::Atr: s.period = pick(1); break;
    case IndicatorKind::Rsi:
    case IndicatorKind::StdDev:
    case IndicatorKind::ZScore: s.period = pick(2); break;
    case IndicatorKind::BBands:
      s.period = pick(2);
      s.k = rng() % 3 == 0 ? 0.5 : 2.0;
      break;
    case IndicatorKind::Macd:
      s.fast = pick(2);
      s.slow = pick(2);
      s.signal = pick(1);
      break;
    case IndicatorKind::Vwap: break;
  }
  return s;
}

EngineConfig random_config(std::mt19937_64& rng) {
  EngineConfig c;
  c.ring_capacity = 1 + rng() % 300;
  c.bar_capacity = 1 + rng() % 20;
  const std::int64_t choices[] = {S, 10 * S, M};
  for (const std::int64_t iv : choices) {
    if (rng() % 2 == 0) c.intervals.push_back(iv);
  }
  std::vector<std::int64_t> ivs = {0};
  ivs.insert(ivs.end(), c.intervals.begin(), c.intervals.end());
  std::vector<std::vector<std::string>> outs(ivs.size());
  std::vector<std::vector<std::string>> bands(ivs.size());
  for (std::size_t b = 0; b < ivs.size(); ++b) {
    const std::size_t n = b == 0 ? rng() % 12 : rng() % 5;
    for (std::size_t i = 0; i < n; ++i) {
      IndicatorSpec s = random_indicator(rng, label("i", i), ivs[b]);
      for (auto& o : output_names(s)) outs[b].push_back(o);
      if (s.kind == IndicatorKind::BBands) bands[b].push_back(s.name);
      c.indicators.push_back(s);
    }
    outs[b].push_back("close");
  }
  const std::size_t n_rules = rng() % 7;
  for (std::size_t i = 0; i < n_rules; ++i) {
    const std::size_t b = rng() % 3 == 0 ? rng() % ivs.size() : 0;
    RuleSpec r;
    r.name = label("r", i);
    r.interval = ivs[b];
    const auto& o = outs[b];
    const int kind = static_cast<int>(rng() % 3);
    if (kind == 2 && !bands[b].empty()) {
      r.kind = RuleKind::Breakout;
      r.a = bands[b][rng() % bands[b].size()];
    } else if (kind == 1) {
      r.kind = RuleKind::Threshold;
      r.a = o[rng() % o.size()];
      const double lv[][2] = {{70.0, 30.0}, {100.2, 99.8}, {kNaN, 50.0}, {0.3, kNaN}, {1.0, 1.0}};
      const auto& l = lv[rng() % std::size(lv)];
      r.above = l[0];
      r.below = l[1];
    } else {
      r.kind = RuleKind::Crossover;
      r.a = o[rng() % o.size()];
      r.b = o[rng() % o.size()];
    }
    c.rules.push_back(r);
  }
  return c;
}

struct Feed {
  std::mt19937_64 rng;
  std::size_t n_syms;
  std::vector<double> px;
  std::int64_t ts = 0;

  Feed(std::uint64_t seed, std::size_t n) : rng(seed), n_syms(n), px(n, 100.0) {
    // Start a few minutes before a UTC midnight so that sessions roll over.
    ts = 20'000 * kNanosPerDay - 3 * M - static_cast<std::int64_t>(rng() % 1000) * 1'000'000;
  }

  double uniform() { return static_cast<double>(rng() % 1'000'000) / 1e6; }

  void next(std::vector<SymbolId>& sym, std::vector<std::int64_t>& t, std::vector<double>& p,
            std::vector<double>& q, std::vector<std::uint64_t>& seq,
            std::vector<std::uint8_t>& fl) {
    const SymbolId s = static_cast<SymbolId>(rng() % n_syms);
    const int mode = static_cast<int>(rng() % 100);
    if (mode < 3) {
      ts -= static_cast<std::int64_t>(rng() % 90) * S;  // late (or a bar back)
    } else if (mode < 5) {
      ts += static_cast<std::int64_t>(rng() % 200) * S;  // a gap
    } else if (mode > 10) {
      ts += static_cast<std::int64_t>(rng() % 1500) * 1'000'000;  // 0..1.5 s; repeats allowed
    }
    if (rng() % 4 != 0) {  // else a flat tick
      px[s] = std::max(0.05, px[s] + std::round((uniform() - 0.5) * 40.0) * 0.01);
    }
    double price = px[s];
    double size = static_cast<double>(rng() % 5);
    SymbolId sid = s;
    const int bad = static_cast<int>(rng() % 200);
    if (bad == 0) price = std::nan("");
    if (bad == 1) price = -price;
    if (bad == 2) size = std::numeric_limits<double>::infinity();
    if (bad == 3) size = -1.0;
    if (bad == 4) sid = static_cast<SymbolId>(n_syms + 2);
    if (bad == 5) price = 0.0;
    sym.push_back(sid);
    t.push_back(ts);
    p.push_back(price);
    q.push_back(size);
    seq.push_back(seq.size());
    fl.push_back(static_cast<std::uint8_t>(rng() % 4));
  }
};

void check_results(const IngestResult& a, const IngestResult& b) {
  CHECK(a.rejected == b.rejected);
  CHECK(a.reject_reason == b.reject_reason);
  CHECK(a.late == b.late);
  CHECK(a.bars.interval == b.bars.interval);
  CHECK(a.bars.symbol_id == b.bars.symbol_id);
  CHECK(a.bars.ts_event == b.bars.ts_event);
  CHECK(same(a.bars.open, b.bars.open));
  CHECK(same(a.bars.high, b.bars.high));
  CHECK(same(a.bars.low, b.bars.low));
  CHECK(same(a.bars.close, b.bars.close));
  CHECK(same(a.bars.volume, b.bars.volume));
  CHECK(same(a.bars.vwap, b.bars.vwap));
  CHECK(a.bars.trades == b.bars.trades);
  CHECK(a.indicators.interval == b.indicators.interval);
  CHECK(a.indicators.symbol_id == b.indicators.symbol_id);
  CHECK(a.indicators.ts_event == b.indicators.ts_event);
  CHECK(a.indicators.output_id == b.indicators.output_id);
  CHECK(same(a.indicators.value, b.indicators.value));
  CHECK(a.signals.rule_id == b.signals.rule_id);
  CHECK(a.signals.symbol_id == b.signals.symbol_id);
  CHECK(a.signals.ts_event == b.signals.ts_event);
  CHECK(a.signals.direction == b.signals.direction);
  CHECK(same(a.signals.value, b.signals.value));
}

void check_state(const Engine& e, const Reference& ref, std::size_t n_syms,
                 const EngineConfig& c) {
  for (SymbolId s = 0; s < n_syms; ++s) {
    const RefSymbol& rs = ref.symbol(s);
    const TradeRing& ring = e.ring(s);
    CHECK(ring.total_pushed() == rs.trades);
    const std::size_t n = std::min<std::size_t>(ring.size(), 5);
    for (std::size_t i = 0; i < n; ++i) {
      const TradeRecord a = ring.at(ring.size() - n + i);
      const TradeRecord& b = rs.last[rs.last.size() - n + i];
      CHECK(a.ts_event == b.ts_event);
      CHECK(a.price == b.price);
      CHECK(a.size == b.size);
      CHECK(a.seq == b.seq);
      CHECK(a.flags == b.flags);
    }
    CHECK(same(e.indicator_values(s, 0, true), ref.values(s, 0, true)));
    for (std::size_t k = 0; k < c.intervals.size(); ++k) {
      const std::int64_t iv = c.intervals[k];
      CHECK(same(e.indicator_values(s, iv, true), ref.values(s, k + 1, true)));
      CHECK(same(e.indicator_values(s, iv, false), ref.values(s, k + 1, false)));
      const BarSeries& a = e.bars(s, iv);
      const BarSeries& b = rs.series[k];
      CHECK(a.late() == b.late());
      CHECK(a.closed().total_pushed() == b.closed().total_pushed());
      REQUIRE(a.has_forming() == b.has_forming());
      if (a.has_forming()) {
        CHECK(a.forming().ts_open == b.forming().ts_open);
        CHECK(a.forming().high == b.forming().high);
        CHECK(a.forming().low == b.forming().low);
        CHECK(a.forming().close == b.forming().close);
        CHECK(a.forming().volume == b.forming().volume);
        CHECK(a.forming().notional == b.forming().notional);
        CHECK(a.forming().trades == b.forming().trades);
      }
    }
  }
}

void run_scenario(std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const EngineConfig cfg = random_config(rng);
  const std::size_t n_syms = rng() % 3 == 0 ? 1 : 1 + rng() % 5;
  SymbolRegistry reg;
  for (std::size_t i = 0; i < n_syms; ++i) reg.intern(label("S", i));
  Engine engine(reg, cfg);
  Reference ref(n_syms, cfg);
  for (std::size_t b = 0; b <= cfg.intervals.size(); ++b) {
    CHECK(engine.indicator_names(b == 0 ? 0 : cfg.intervals[b - 1]) == ref.names(b));
  }
  Feed feed(seed * 7 + 1, n_syms);
  static constexpr std::size_t sizes[] = {1, 2, 5, 37, 300, 700, 2000};
  for (int call = 0; call < 40; ++call) {
    IngestResult got, want;
    const int what = static_cast<int>(rng() % 20);
    if (what == 0) {
      const std::int64_t now = feed.ts + static_cast<std::int64_t>(rng() % 120) * S;
      engine.advance(now, got);
      ref.advance(now, want);
    } else if (what == 1 && call == 7) {
      const std::int64_t day = (feed.ts / kNanosPerDay) * kNanosPerDay;
      std::vector<std::int64_t> starts = {day - 10 * kNanosPerHour, day + 2 * M,
                                          day + 4 * kNanosPerHour};
      engine.set_day_boundaries(starts);
      ref.set_day_boundaries(starts);
      continue;
    } else if (what == 2) {
      std::vector<SymbolId> sym;
      std::vector<std::int64_t> ts;
      std::vector<double> px, sz;
      std::vector<std::uint64_t> seq;
      std::vector<std::uint8_t> fl;
      feed.next(sym, ts, px, sz, seq, fl);
      const TradeReject r = engine.on_trade(sym[0], ts[0], px[0], sz[0], seq[0], fl[0], got);
      CHECK(r == ref.trade(0, sym[0], ts[0], px[0], sz[0], seq[0], fl[0], want));
      want.rejected.clear();  // on_trade reports the reason instead
      want.reject_reason.clear();
    } else {
      const std::size_t n = sizes[rng() % std::size(sizes)];
      std::vector<SymbolId> sym;
      std::vector<std::int64_t> ts;
      std::vector<double> px, sz;
      std::vector<std::uint64_t> seq;
      std::vector<std::uint8_t> fl;
      for (std::size_t i = 0; i < n; ++i) feed.next(sym, ts, px, sz, seq, fl);
      engine.on_trades(sym, ts, px, sz, seq, fl, got);
      for (std::size_t i = 0; i < n; ++i) {
        (void)ref.trade(static_cast<std::int64_t>(i), sym[i], ts[i], px[i], sz[i], seq[i], fl[i],
                        want);
      }
    }
    check_results(got, want);
    check_state(engine, ref, n_syms, cfg);
  }
}

}  // namespace

TEST_CASE("engine_equals_a_row_by_row_reference_model_on_random_configurations") {
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    CAPTURE(seed);
    run_scenario(seed);
  }
}

TEST_CASE("engine_equals_the_reference_model_on_the_benchmark_configuration") {
  // The `tickserver bench core` all-in configuration: every kind on ticks plus three rules.
  EngineConfig c;
  c.ring_capacity = 1000;
  c.bar_capacity = 10;
  c.intervals = {M};
  c.indicators = {
      {"sma20", IndicatorKind::Sma, 0, 20}, {"ema20", IndicatorKind::Ema, 0, 20},
      {"rsi14", IndicatorKind::Rsi, 0, 14}, {"macd", IndicatorKind::Macd, 0, 14, 12, 26, 9},
      {"bb", IndicatorKind::BBands, 0, 20}, {"atr14", IndicatorKind::Atr, 0, 14},
      {"vwap", IndicatorKind::Vwap, 0},     {"sd20", IndicatorKind::StdDev, 0, 20},
      {"z20", IndicatorKind::ZScore, 0, 20},
  };
  c.rules = {{"x", RuleKind::Crossover, 0, "close", "ema20"},
             {"t", RuleKind::Threshold, 0, "rsi14", "", 70.0, 30.0},
             {"b", RuleKind::Breakout, 0, "bb", ""}};
  // Three symbols with 5,000-row batches are grouped by symbol: with a 1,000-trade ring the
  // rows are partitioned through scratch columns, with a 100,000-trade ring straight into the
  // rings.
  for (const auto& [n_syms, ring] : {std::pair<std::size_t, std::size_t>{1, 1000},
                                     {3, 1000},
                                     {3, 100'000}}) {
    c.ring_capacity = ring;
    SymbolRegistry reg;
    for (std::size_t i = 0; i < n_syms; ++i) reg.intern(label("S", i));
    Engine engine(reg, c);
    Reference ref(n_syms, c);
    Feed feed(99 + n_syms, n_syms);
    for (int call = 0; call < 6; ++call) {
      std::vector<SymbolId> sym;
      std::vector<std::int64_t> ts;
      std::vector<double> px, sz;
      std::vector<std::uint64_t> seq;
      std::vector<std::uint8_t> fl;
      for (int i = 0; i < 5000; ++i) feed.next(sym, ts, px, sz, seq, fl);
      IngestResult got, want;
      engine.on_trades(sym, ts, px, sz, seq, fl, got);
      for (std::size_t i = 0; i < sym.size(); ++i) {
        (void)ref.trade(static_cast<std::int64_t>(i), sym[i], ts[i], px[i], sz[i], seq[i], fl[i],
                        want);
      }
      CHECK(got.signals.size() > 100);
      check_results(got, want);
      check_state(engine, ref, n_syms, c);
    }
  }
}
