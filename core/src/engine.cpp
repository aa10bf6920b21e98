// Engine: validation and routing of trades and book updates into the per-symbol structures.
#include "tickserver/engine.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

namespace tickserver {

namespace {

[[nodiscard]] bool same(double a, double b) noexcept {
  return a == b || (std::isnan(a) && std::isnan(b));
}

[[noreturn]] void length_mismatch(const char* name, std::size_t got, std::size_t want) {
  throw std::invalid_argument(std::string("length mismatch: '") + name + "' has " +
                              std::to_string(got) + " rows, expected " + std::to_string(want));
}

}  // namespace

RuleKind rule_kind_from_string(std::string_view s) {
  for (const RuleKind k : {RuleKind::Crossover, RuleKind::Threshold, RuleKind::Breakout}) {
    if (s == to_string(k)) return k;
  }
  throw std::invalid_argument("unknown rule kind '" + std::string(s) +
                              "' (expected crossover, threshold or breakout)");
}

void BarColumns::clear() noexcept {
  interval.clear();
  symbol_id.clear();
  ts_event.clear();
  open.clear();
  high.clear();
  low.clear();
  close.clear();
  volume.clear();
  vwap.clear();
  trades.clear();
}

void SignalColumns::clear() noexcept {
  rule_id.clear();
  symbol_id.clear();
  ts_event.clear();
  direction.clear();
  value.clear();
}

void IndicatorColumns::clear() noexcept {
  interval.clear();
  symbol_id.clear();
  ts_event.clear();
  output_id.clear();
  value.clear();
}

void IngestResult::clear() noexcept {
  rejected.clear();
  reject_reason.clear();
  late = 0;
  bars.clear();
  signals.clear();
  indicators.clear();
}

Engine::SymbolState::SymbolState(const Engine& e)
    : ring(e.config_.ring_capacity), book(e.config_.tick_size), rule_state(e.rule_names_.size()) {
  series.reserve(e.intervals_.size());
  for (std::size_t k = 0; k < e.intervals_.size(); ++k) series.emplace_back(e.config_.bar_capacity);
  banks.reserve(e.plans_.size());
  for (const auto& plan : e.plans_) banks.emplace_back(*plan, e.calendar_.get());
}

Engine::Engine(const SymbolRegistry& registry, EngineConfig config)
    : registry_(&registry), config_(std::move(config)), calendar_(std::make_shared<SessionCalendar>()) {
  if (config_.ring_capacity == 0) throw std::invalid_argument("ring_capacity must be positive");
  if (config_.bar_capacity == 0) throw std::invalid_argument("bar_capacity must be positive");
  if (!(config_.tick_size > 0.0) || !std::isfinite(config_.tick_size)) {
    throw std::invalid_argument("tick_size must be finite and positive");
  }
  for (const std::int64_t iv : config_.intervals) {
    if (iv <= 0) {
      throw std::invalid_argument("bar intervals must be positive (0 = tick is implicit), got " +
                                  std::to_string(iv));
    }
    if (std::find(intervals_.begin(), intervals_.end(), iv) != intervals_.end()) {
      throw std::invalid_argument("duplicate bar interval " + std::to_string(iv));
    }
    intervals_.push_back(iv);
  }
  if (intervals_.size() > 64) throw std::invalid_argument("at most 64 bar intervals");
  for (const std::int64_t iv : intervals_) {
    clocks_.emplace_back(iv, calendar_.get());
  }
  n_intervals_ = intervals_.size();

  // One bank plan per interval (tick first), indicators in configuration order. Names are
  // unique per interval (the same indicator may run at several intervals).
  for (const IndicatorSpec& s : config_.indicators) {
    if (s.interval != 0 &&
        std::find(intervals_.begin(), intervals_.end(), s.interval) == intervals_.end()) {
      throw std::invalid_argument("indicator '" + s.name + "' has interval " +
                                  std::to_string(s.interval) +
                                  ", which is neither 0 (tick) nor one of the bar intervals");
    }
  }
  for (std::size_t b = 0; b <= intervals_.size(); ++b) {
    const std::int64_t iv = b == 0 ? 0 : intervals_[b - 1];
    std::vector<IndicatorSpec> specs;
    for (const IndicatorSpec& s : config_.indicators) {
      if (s.interval == iv) specs.push_back(s);
    }
    plans_.push_back(std::make_unique<BankPlan>(specs));
  }

  // Rules, resolved to output slots of their interval's bank.
  rules_.resize(plans_.size());
  if (config_.rules.size() > std::numeric_limits<std::uint16_t>::max()) {
    throw std::invalid_argument("too many rules");
  }
  for (std::size_t i = 0; i < config_.rules.size(); ++i) {
    const RuleSpec& r = config_.rules[i];
    const std::string where = "rule '" + r.name + "': ";
    if (r.name.empty()) throw std::invalid_argument("rule name must not be empty");
    if (std::find(rule_names_.begin(), rule_names_.end(), r.name) != rule_names_.end()) {
      throw std::invalid_argument("duplicate rule name '" + r.name + "'");
    }
    std::size_t b = 0;
    if (r.interval != 0) {
      const auto it = std::find(intervals_.begin(), intervals_.end(), r.interval);
      if (it == intervals_.end()) {
        throw std::invalid_argument(where + "interval " + std::to_string(r.interval) +
                                    " is neither 0 (tick) nor one of the bar intervals");
      }
      b = static_cast<std::size_t>(it - intervals_.begin()) + 1;
    }
    const BankPlan& plan = *plans_[b];
    auto slot = [&](const std::string& output) -> std::uint32_t {
      if (output == "close") return static_cast<std::uint32_t>(plan.n_outputs());
      if (const auto o = plan.output_index(output)) return *o;
      std::string known = "close";
      for (const auto& n : plan.output_names()) known += ", " + n;
      throw std::invalid_argument(where + "no output '" + output + "' at interval " +
                                  std::to_string(r.interval) + " (known: " + known + ")");
    };
    CompiledRule c{r.kind, static_cast<std::uint16_t>(i), 0, 0, r.above, r.below};
    switch (r.kind) {
      case RuleKind::Crossover:
        if (r.a.empty() || r.b.empty()) {
          throw std::invalid_argument(where + "crossover needs outputs a and b");
        }
        c.a = slot(r.a);
        c.b = slot(r.b);
        break;
      case RuleKind::Threshold:
        if (r.a.empty()) throw std::invalid_argument(where + "threshold needs output a");
        c.a = slot(r.a);
        if (std::isnan(r.above) && std::isnan(r.below)) {
          throw std::invalid_argument(where + "threshold needs `above`, `below` or both");
        }
        if (std::isinf(r.above) || std::isinf(r.below)) {
          throw std::invalid_argument(where + "threshold levels must be finite");
        }
        if (r.above < r.below) {
          throw std::invalid_argument(where + "`above` must not be less than `below`");
        }
        break;
      case RuleKind::Breakout: {
        const auto bands = plan.bands_of(r.a);
        if (!bands) {
          throw std::invalid_argument(where + "breakout needs `a` to name a bbands indicator "
                                              "of interval " + std::to_string(r.interval));
        }
        c.a = bands->first;
        c.b = bands->second;
        break;
      }
    }
    RuleGroup& g = rules_[b];
    (r.kind == RuleKind::Crossover ? g.crossover
     : r.kind == RuleKind::Threshold ? g.threshold
                                     : g.breakout)
        .push_back(c);
    rule_names_.push_back(r.name);
  }
  // Tick rules read per-trade columns of run_ticks: ask the tick plan for them.
  BankPlan& tick_plan = *plans_[0];
  const auto n_tick_outputs = static_cast<std::uint32_t>(tick_plan.n_outputs());
  for (const auto* group : {&rules_[0].crossover, &rules_[0].threshold, &rules_[0].breakout}) {
    for (const CompiledRule& r : *group) {
      if (r.a < n_tick_outputs) tick_plan.want(r.a);
      if (r.kind != RuleKind::Threshold && r.b < n_tick_outputs) tick_plan.want(r.b);
      tick_rules_.push_back(r);
    }
  }
  for (CompiledRule& r : tick_rules_) {
    r.a_col = r.a < n_tick_outputs ? tick_plan.column(r.a) : -1;
    r.b_col = r.kind != RuleKind::Threshold && r.b < n_tick_outputs ? tick_plan.column(r.b) : -1;
  }
  tick_cols_.assign(tick_plan.n_columns() * kChunk, 0.0);
  codes_.assign(kChunk + 1, 0);
  fire_dir_.assign(tick_rules_.size() * kChunk, 0);
  fire_any_.assign(kChunk, 0);
  fire_ticks_.assign(kChunk, 0);
  fire_value_.assign(tick_rules_.size(), nullptr);
  std::size_t max_outputs = 0;
  for (const auto& plan : plans_) max_outputs = std::max(max_outputs, plan->n_outputs());
  values_.assign(max_outputs + 1, kNaN);
  tick_work_ = !plans_[0]->empty() || !rules_[0].empty();
  fired_.resize(config_.rules.size());
  sync_symbols();
}

Engine::~Engine() = default;

void Engine::sync_symbols() {
  while (syms_.size() < registry_->size()) syms_.push_back(std::make_unique<SymbolState>(*this));
  n_syms_ = syms_.size();
}

TICKSERVER_INLINE TradeReject Engine::check(SymbolId symbol_id, double price,
                                             double size) const noexcept {
  if (symbol_id >= n_syms_) return TradeReject::UnknownSymbol;
  if (!(price > 0.0) || !(price < std::numeric_limits<double>::infinity())) {
    return TradeReject::BadPrice;
  }
  if (!(size >= 0.0) || !(size < std::numeric_limits<double>::infinity())) {
    return TradeReject::BadSize;
  }
  return TradeReject::Ok;
}

namespace {

/// Append k rows to every signal column; return the index of the first new row.
std::size_t grow(SignalColumns& sc, std::size_t k) {
  const std::size_t at = sc.size();
  // resize(), not an exact reserve(): a result appended to by many calls keeps geometric growth.
  sc.rule_id.resize(at + k);
  sc.symbol_id.resize(at + k);
  sc.ts_event.resize(at + k);
  sc.direction.resize(at + k);
  sc.value.resize(at + k);
  return at;
}

}  // namespace

void Engine::emit_signals(std::size_t n, SymbolId symbol_id, std::int64_t ts, IngestResult& out) {
  if (tag_signals_) signal_rows_.insert(signal_rows_.end(), n, row_);
  SignalColumns& sc = out.signals;
  const std::size_t at = grow(sc, n);
  for (std::size_t i = 0; i < n; ++i) {
    sc.rule_id[at + i] = fired_[i].id;
    sc.symbol_id[at + i] = symbol_id;
    sc.ts_event[at + i] = ts;
    sc.direction[at + i] = fired_[i].direction;
    sc.value[at + i] = fired_[i].value;
  }
  counters_.signals += n;
}

void Engine::end_call() noexcept {
  tag_signals_ = false;
  bar_rows_.clear();
  indicator_rows_.clear();
  signal_rows_.clear();
  row_ = 0;
}

// A bank's rules on its output values `v` (the close in slot n_outputs), one evaluation: bar
// closes and the trade-by-trade path.
TICKSERVER_INLINE std::size_t Engine::eval_rules(SymbolState& st, std::size_t bank,
                                                 const double* v) noexcept {
  const RuleGroup& g = rules_[bank];
  const double close = v[plans_[bank]->n_outputs()];
  rules::State* state = st.rule_state.data();
  Fired* fired = fired_.data();
  std::size_t n = 0;
  for (const CompiledRule& r : g.crossover) {
    const double a = v[r.a];
    const int dir = rules::crossover(a, v[r.b], state[r.id]);
    fired[n] = {a, r.id, static_cast<std::int8_t>(dir)};
    n += dir != 0;
  }
  for (const CompiledRule& r : g.threshold) {
    const double a = v[r.a];
    const int dir = rules::threshold(a, r.above, r.below, state[r.id]);
    fired[n] = {a, r.id, static_cast<std::int8_t>(dir)};
    n += dir != 0;
  }
  for (const CompiledRule& r : g.breakout) {
    const int dir = rules::breakout(close, v[r.a], v[r.b], state[r.id]);
    fired[n] = {close, r.id, static_cast<std::int8_t>(dir)};
    n += dir != 0;
  }
  return n;
}

void Engine::on_bar_close(SymbolState& st, SymbolId symbol_id, std::size_t k, const Bar& bar,
                          IngestResult& out, std::uint32_t run_index) {
  const std::int64_t iv = intervals_[k];
  BarColumns& b = out.bars;
  b.interval.push_back(iv);
  b.symbol_id.push_back(symbol_id);
  b.ts_event.push_back(bar.ts_open);
  b.open.push_back(bar.open);
  b.high.push_back(bar.high);
  b.low.push_back(bar.low);
  b.close.push_back(bar.close);
  b.volume.push_back(bar.volume);
  b.vwap.push_back(bar.vwap());
  b.trades.push_back(bar.trades);
  bar_rows_.push_back(row_);
  ++counters_.bars;

  const std::size_t bank_idx = k + 1;
  const BankPlan& plan = *plans_[bank_idx];
  Bank& bank = st.banks[bank_idx];
  double* v = values_.data();
  if (!plan.empty()) {
    bank.update_bar(bar);
    bank.values({v, plan.n_outputs()});
    IndicatorColumns& ic = out.indicators;
    for (std::size_t o = 0; o < plan.n_outputs(); ++o) {
      if (std::isnan(v[o])) continue;
      ic.interval.push_back(iv);
      ic.symbol_id.push_back(symbol_id);
      ic.ts_event.push_back(bar.ts_open);
      ic.output_id.push_back(static_cast<std::uint16_t>(o));
      ic.value.push_back(v[o]);
      indicator_rows_.push_back(row_);
      ++counters_.indicator_values;
    }
  }
  bank.set_close(bar.close);  // rules read the close even without indicators
  if (rules_[bank_idx].empty()) return;
  v[plan.n_outputs()] = bar.close;
  const std::size_t n = eval_rules(st, bank_idx, v);
  if (n == 0) return;
  if (run_index == kNoRun) {
    emit_signals(n, symbol_id, bar.ts_open, out);
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    bar_fired_.push_back(
        {run_index, {bar.ts_open, symbol_id, fired_[i].id, fired_[i].direction, fired_[i].value}});
  }
}

// Bars of a chunk: the trades that fall inside every interval's forming bar are added in bulk;
// a trade that opens, rolls or is late for some interval goes through add_fast() one by one,
// exactly as row-by-row processing would.
TICKSERVER_HOT_CLONES void Engine::run_bars(SymbolState& st, SymbolId symbol_id, const std::int64_t* ts,
                      const double* price, const double* size, std::size_t n,
                      const std::uint32_t* rows, IngestResult& out) {
  const std::size_t n_iv = n_intervals_;
  if (n_iv == 0) return;
  BarSeries* series = st.series.data();
  std::size_t i = 0;
  while (i < n) {
    std::size_t m = n;
    for (std::size_t k = 0; k < n_iv; ++k) m = i + series[k].forming_prefix(ts + i, m - i);
    if (m > i) {
      for (std::size_t k = 0; k < n_iv; ++k) series[k].add_forming(price + i, size + i, m - i);
    }
    if (m == n) return;
    const std::int64_t t = ts[m];
    const double p = price[m];
    const double q = size[m];
    std::uint64_t must_roll = 0;
    bool late = false;
    for (std::size_t k = 0; k < n_iv; ++k) {
      const BarEvent e = series[k].add_fast(t, p, q, clocks_[k]);
      must_roll |= static_cast<std::uint64_t>(e == BarEvent::MustRoll) << k;
      late |= e == BarEvent::Late;
    }
    if (must_roll != 0) {
      row_ = rows != nullptr ? rows[m] : 0;
      for (std::size_t k = 0; k < n_iv; ++k) {
        if ((must_roll >> k) & 1U) {
          on_bar_close(st, symbol_id, k, series[k].roll(t, p, q, clocks_[k]), out,
                       static_cast<std::uint32_t>(m));
        }
      }
    }
    if (late) {
      ++out.late;
      ++counters_.late;
    }
    i = m + 1;
  }
}

// Each tick rule over the chunk's columns: observation codes (element-wise, vectorised), then
// each trade's direction (rules::observe), OR-ed into fire_any_; returns the number of trades
// where some rule fired, listed in fire_ticks_.
TICKSERVER_INLINE std::size_t Engine::scan_tick_rules(SymbolState& st, const double* price,
                                                      std::size_t n) noexcept {
  const double* cols = tick_cols_.data();
  auto column = [&](std::int32_t c) {
    return c < 0 ? price : cols + static_cast<std::size_t>(c) * kChunk;
  };
  rules::State* state = st.rule_state.data();
  std::uint8_t* __restrict codes = codes_.data();
  std::int8_t* __restrict any = fire_any_.data();
  std::fill(any, any + n, std::int8_t{0});
  for (std::size_t q = 0; q < tick_rules_.size(); ++q) {
    const CompiledRule& r = tick_rules_[q];
    const double* __restrict a = column(r.a_col);
    const double* __restrict b = column(r.b_col);
    std::int8_t* __restrict dir = fire_dir_.data() + q * kChunk;
    codes[0] = static_cast<std::uint8_t>(state[r.id]);
    switch (r.kind) {
      case RuleKind::Crossover:
        for (std::size_t i = 0; i < n; ++i) {
          codes[i + 1] = static_cast<std::uint8_t>(rules::crossover_code(a[i], b[i]));
        }
        state[r.id] = rules::observe<RuleKind::Crossover>(codes, n, dir);
        break;
      case RuleKind::Threshold: {
        const double above = r.above, below = r.below;
        for (std::size_t i = 0; i < n; ++i) {
          codes[i + 1] = static_cast<std::uint8_t>(rules::threshold_code(a[i], above, below));
        }
        state[r.id] = rules::observe<RuleKind::Threshold>(codes, n, dir);
        break;
      }
      case RuleKind::Breakout:
        for (std::size_t i = 0; i < n; ++i) {
          codes[i + 1] = static_cast<std::uint8_t>(rules::breakout_code(price[i], a[i], b[i]));
        }
        state[r.id] = rules::observe<RuleKind::Breakout>(codes, n, dir);
        break;
    }
    for (std::size_t i = 0; i < n; ++i) any[i] |= dir[i];
  }
  std::uint32_t* __restrict ticks = fire_ticks_.data();
  std::size_t nt = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ticks[nt] = static_cast<std::uint32_t>(i);
    nt += any[i] != 0;
  }
  return nt;
}

// Write the signals of the nt trades in fire_ticks_ (by trade, then in evaluation order) with
// the signals of bar closes inside the chunk (after the same trade's tick signals). Every tick
// rule's slot is written at each such trade and kept only if it fired, without branching.
TICKSERVER_HOT_CLONES void Engine::emit_chunk_signals(SymbolId symbol_id, const std::int64_t* ts,
                                                      const double* price, std::size_t nt,
                                                      const std::uint32_t* rows,
                                                      IngestResult& out) {
  const std::size_t n_rules = tick_rules_.size();
  const double* cols = tick_cols_.data();
  for (std::size_t q = 0; q < n_rules; ++q) {  // the column of each rule's signal value
    const CompiledRule& r = tick_rules_[q];
    fire_value_[q] = r.kind == RuleKind::Breakout || r.a_col < 0
                         ? price
                         : cols + static_cast<std::size_t>(r.a_col) * kChunk;
  }
  SignalColumns& sc = out.signals;
  const std::size_t at0 = grow(sc, nt * n_rules + bar_fired_.size());
  std::size_t at = at0;
  const std::size_t rows0 = signal_rows_.size();
  if (rows != nullptr) signal_rows_.resize(rows0 + nt * n_rules + bar_fired_.size());
  std::size_t next_bar = 0;
  auto emit_bars_before = [&](std::uint32_t index) {  // bar signals of trades before `index`
    for (; next_bar < bar_fired_.size() && bar_fired_[next_bar].index < index; ++next_bar) {
      const BarFired& f = bar_fired_[next_bar];
      sc.rule_id[at] = f.signal.rule_id;
      sc.symbol_id[at] = f.signal.symbol_id;
      sc.ts_event[at] = f.signal.ts_event;
      sc.direction[at] = f.signal.direction;
      sc.value[at] = f.signal.value;
      if (rows != nullptr) signal_rows_[rows0 + (at - at0)] = rows[f.index];
      ++at;
    }
  };
  std::uint16_t* rule_id = sc.rule_id.data();
  std::uint32_t* sym = sc.symbol_id.data();
  std::int64_t* ts_out = sc.ts_event.data();
  std::int8_t* direction = sc.direction.data();
  double* value = sc.value.data();
  std::int64_t* tags = signal_rows_.data() + rows0;
  const std::uint32_t* ticks = fire_ticks_.data();
  for (std::size_t k = 0; k < nt; ++k) {
    const std::uint32_t i = ticks[k];
    if (next_bar < bar_fired_.size()) [[unlikely]] emit_bars_before(i);
    const std::int64_t t = ts[i];
    for (std::size_t q = 0; q < n_rules; ++q) {
      const std::int8_t d = fire_dir_[q * kChunk + i];
      rule_id[at] = tick_rules_[q].id;
      sym[at] = symbol_id;
      ts_out[at] = t;
      direction[at] = d;
      value[at] = fire_value_[q][i];
      if (rows != nullptr) tags[at - at0] = rows[i];
      at += d != 0;
    }
  }
  emit_bars_before(kNoRun);
  counters_.signals += at - at0;
  sc.rule_id.resize(at);
  sc.symbol_id.resize(at);
  sc.ts_event.resize(at);
  sc.direction.resize(at);
  sc.value.resize(at);
  if (rows != nullptr) signal_rows_.resize(rows0 + (at - at0));
  bar_fired_.clear();
}

// Everything but the bar rolls runs over blocks of one symbol's trades, kind by kind, with
// each kind's state in registers: ring columns are copied, bars take the trades inside their
// forming bar in bulk, the tick indicators run their recurrences (writing per-trade values only
// where a rule reads them) and the tick rules scan those columns without branching.
TICKSERVER_HOT_CLONES void Engine::process_run(SymbolId symbol_id, const std::int64_t* ts,
                                               const double* price, const double* size,
                                               const std::uint64_t* seq,
                                               const std::uint8_t* flags, std::size_t n,
                                               const std::uint32_t* rows, IngestResult& out) {
  SymbolState& st = *syms_[symbol_id];
  if (!st.ring.allocated()) [[unlikely]] st.ring.reserve();
  st.ring.push_many(ts, price, size, seq, flags, n);
  process_stored(st, symbol_id, ts, price, size, n, rows, out);
}

TICKSERVER_INLINE void Engine::process_one(SymbolState& st, SymbolId symbol_id,
                                               std::int64_t ts, double price, double size,
                                               std::int64_t row, IngestResult& out) {
  std::uint64_t must_roll = 0;
  bool late = false;
  BarSeries* series = st.series.data();
  for (std::size_t k = 0; k < n_intervals_; ++k) {
    const BarEvent e = series[k].add_fast(ts, price, size, clocks_[k]);
    must_roll |= static_cast<std::uint64_t>(e == BarEvent::MustRoll) << k;
    late |= e == BarEvent::Late;
  }
  row_ = row;
  if (tick_work_) {
    double* v = values_.data();
    st.banks[0].update_tick(price, size, ts, v);
    if (const std::size_t fired = eval_rules(st, 0, v)) emit_signals(fired, symbol_id, ts, out);
  }
  if (must_roll != 0) [[unlikely]] {
    for (std::size_t k = 0; k < n_intervals_; ++k) {
      if ((must_roll >> k) & 1U) {
        on_bar_close(st, symbol_id, k, series[k].roll(ts, price, size, clocks_[k]), out, kNoRun);
      }
    }
  }
  if (late) [[unlikely]] {
    ++out.late;
    ++counters_.late;
  }
}

TICKSERVER_INLINE void Engine::store_and_process_one(SymbolState& st, SymbolId symbol_id,
                                                     std::int64_t ts, double price, double size,
                                                     std::uint64_t seq, std::uint8_t flags,
                                                     IngestResult& out) {
  if (!st.ring.allocated()) [[unlikely]] st.ring.reserve();
  st.ring.push(ts, price, size, seq, flags);
  ++counters_.trades;
  process_one(st, symbol_id, ts, price, size, 0, out);
}

TICKSERVER_HOT_CLONES void Engine::process_stored(SymbolState& st, SymbolId symbol_id,
                                                  const std::int64_t* ts, const double* price,
                                                  const double* size, std::size_t n,
                                                  const std::uint32_t* rows, IngestResult& out) {
  counters_.trades += n;
  if (n < kShortRun) {
    for (std::size_t i = 0; i < n; ++i) {
      process_one(st, symbol_id, ts[i], price[i], size[i], rows != nullptr ? rows[i] : 0, out);
    }
    return;
  }
  for (std::size_t c0 = 0; c0 < n; c0 += kChunk) {
    const std::size_t m = std::min(kChunk, n - c0);
    const std::uint32_t* chunk_rows = rows != nullptr ? rows + c0 : nullptr;
    run_bars(st, symbol_id, ts + c0, price + c0, size + c0, m, chunk_rows, out);
    std::size_t fired = 0;
    if (tick_work_) {
      for (std::size_t b0 = 0; b0 < m; b0 += kBlock) {
        st.banks[0].run_ticks(price + c0 + b0, size + c0 + b0, ts + c0 + b0,
                              std::min(kBlock, m - b0), tick_cols_.data() + b0, kChunk);
      }
      fired = scan_tick_rules(st, price + c0, m);
    }
    if (fired != 0 || !bar_fired_.empty()) {
      emit_chunk_signals(symbol_id, ts + c0, price + c0, fired, chunk_rows, out);
    }
  }
}

TICKSERVER_HOT_CLONES void Engine::on_trades(std::span<const SymbolId> symbol_id,
                                             std::span<const std::int64_t> ts_event,
                                             std::span<const double> price,
                                             std::span<const double> size,
                                             std::span<const std::uint64_t> seq,
                                             std::span<const std::uint8_t> flags,
                                             IngestResult& out) {
  const std::size_t n = symbol_id.size();
  if (ts_event.size() != n) length_mismatch("ts_event", ts_event.size(), n);
  if (price.size() != n) length_mismatch("price", price.size(), n);
  if (size.size() != n) length_mismatch("size", size.size(), n);
  if (seq.size() != n) length_mismatch("seq", seq.size(), n);
  if (flags.size() != n) length_mismatch("flags", flags.size(), n);
  // Grouping pays off once a batch holds many trades per symbol; its per-call cost is
  // O(symbols), hence the second condition.
  if (n >= 512 && n >= n_syms_ && n_syms_ > 1 && n <= 0xFFFFFFFFu) {
    on_trades_grouped(symbol_id, ts_event, price, size, seq, flags, out);
    return;
  }
  const SymbolId* sym = symbol_id.data();
  const double* px = price.data();
  const double* sz = size.data();
  std::size_t i = 0;
  while (i < n) {
    const TradeReject r = check(sym[i], px[i], sz[i]);
    if (r != TradeReject::Ok) [[unlikely]] {
      out.rejected.push_back(static_cast<std::int64_t>(i));
      out.reject_reason.push_back(static_cast<std::uint8_t>(r));
      ++counters_.trades_rejected;
      ++i;
      continue;
    }
    // The run of valid rows of this symbol starting at i.
    std::size_t j = i + 1;
    while (j < n && sym[j] == sym[i] && check(sym[j], px[j], sz[j]) == TradeReject::Ok) ++j;
    if (j - i < kShortRun) {
      SymbolState& st = *syms_[sym[i]];
      for (; i < j; ++i) store_and_process_one(st, sym[i], ts_event[i], px[i], sz[i], seq[i],
                                               flags[i], out);
      continue;
    }
    process_run(sym[i], ts_event.data() + i, px + i, sz + i, seq.data() + i, flags.data() + i,
                j - i, nullptr, out);
    i = j;
  }
  end_call();
}

TICKSERVER_HOT_CLONES void Engine::on_trades_grouped(std::span<const SymbolId> symbol_id,
                                                     std::span<const std::int64_t> ts_event,
                                                     std::span<const double> price,
                                                     std::span<const double> size,
                                                     std::span<const std::uint64_t> seq,
                                                     std::span<const std::uint8_t> flags,
                                                     IngestResult& out) {
  const std::size_t n = symbol_id.size();
  tag_signals_ = true;
  // Pass 1: validate in row order; count the valid rows of each symbol.
  group_start_.assign(n_syms_ + 1, 0);
  std::uint32_t* start = group_start_.data();
  std::size_t distinct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const TradeReject r = check(symbol_id[i], price[i], size[i]);
    if (r != TradeReject::Ok) [[unlikely]] {
      out.rejected.push_back(static_cast<std::int64_t>(i));
      out.reject_reason.push_back(static_cast<std::uint8_t>(r));
      ++counters_.trades_rejected;
      continue;
    }
    distinct += start[symbol_id[i] + 1]++ == 0;
  }
  for (std::size_t s = 0; s < n_syms_; ++s) start[s + 1] += start[s];
  const std::size_t valid = start[n_syms_];
  std::size_t largest = 0;
  for (std::size_t s = 0; s < n_syms_; ++s) {
    largest = std::max<std::size_t>(largest, start[s + 1] - start[s]);
  }
  const std::size_t bars0 = out.bars.size();
  const std::size_t ind0 = out.indicators.size();
  const std::size_t sig0 = out.signals.size();
  g_row_.resize(valid);
  if (largest <= config_.ring_capacity) {
    // Pass 2: stable partition of the valid rows by symbol straight into the symbols' rings,
    // which are written anyway (each symbol's rows fit, so none is overwritten before it is
    // processed); only the row index goes to scratch. Reads are sequential and each write goes
    // to one of the symbols' ring heads, which stay in cache.
    writers_.resize(n_syms_);
    for (std::size_t s = 0; s < n_syms_; ++s) {
      if (start[s + 1] == start[s]) continue;
      TradeRing& ring = syms_[s]->ring;
      if (!ring.allocated()) ring.reserve();
      writers_[s] = ring.writer();
    }
    TradeRing::Writer* w = writers_.data();
    for (std::size_t i = 0; i < n; ++i) {
      const SymbolId sid = symbol_id[i];
      if (check(sid, price[i], size[i]) != TradeReject::Ok) continue;
      g_row_[start[sid]++] = static_cast<std::uint32_t>(i);
      w[sid].push(ts_event[i], price[i], size[i], seq[i], flags[i]);
    }
    // Pass 3: process symbol by symbol, from the ring (start[s] is now the end of s's rows).
    std::size_t begin = 0;
    for (std::size_t s = 0; s < n_syms_; ++s) {
      const std::size_t end = start[s];
      if (end == begin) continue;
      SymbolState& st = *syms_[s];
      st.ring.commit(w[s], end - begin);
      const RingSlices sl = st.ring.last(end - begin);
      const TradeRing& r = st.ring;
      const auto sid = static_cast<SymbolId>(s);
      process_stored(st, sid, r.ts_column() + sl.first, r.price_column() + sl.first,
                     r.size_column() + sl.first, sl.first_len, g_row_.data() + begin, out);
      if (sl.second_len > 0) {
        process_stored(st, sid, r.ts_column(), r.price_column(), r.size_column(), sl.second_len,
                       g_row_.data() + begin + sl.first_len, out);
      }
      begin = end;
    }
  } else {
    // Pass 2: stable partition of the valid rows by symbol into scratch columns.
    g_ts_.resize(valid);
    g_px_.resize(valid);
    g_sz_.resize(valid);
    g_seq_.resize(valid);
    g_flags_.resize(valid);
    for (std::size_t i = 0; i < n; ++i) {
      const SymbolId sid = symbol_id[i];
      if (check(sid, price[i], size[i]) != TradeReject::Ok) continue;
      const std::uint32_t j = start[sid]++;
      g_row_[j] = static_cast<std::uint32_t>(i);
      g_ts_[j] = ts_event[i];
      g_px_[j] = price[i];
      g_sz_[j] = size[i];
      g_seq_[j] = seq[i];
      g_flags_[j] = flags[i];
    }
    // Pass 3: process symbol by symbol (start[s] is now the end of symbol s's rows).
    std::size_t begin = 0;
    for (std::size_t s = 0; s < n_syms_; ++s) {
      const std::size_t end = start[s];
      if (end > begin) {
        process_run(static_cast<SymbolId>(s), g_ts_.data() + begin, g_px_.data() + begin,
                    g_sz_.data() + begin, g_seq_.data() + begin, g_flags_.data() + begin,
                    end - begin, g_row_.data() + begin, out);
      }
      begin = end;
    }
  }
  if (distinct > 1) restore_row_order(out, bars0, ind0, sig0);
  end_call();
}

namespace {

/// Indices 0..n-1 stably sorted by tags[i] (row indices < 2^32): LSD radix sort on 11-bit
/// digits, as many as the largest tag needs (the 2,048 counters stay in L1).
std::vector<std::uint32_t> order_by(const std::vector<std::int64_t>& tags) {
  const std::size_t n = tags.size();
  auto a = std::make_unique_for_overwrite<std::uint64_t[]>(n);
  auto b = std::make_unique_for_overwrite<std::uint64_t[]>(n);
  std::uint64_t largest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto tag = static_cast<std::uint64_t>(tags[i]);
    largest = std::max(largest, tag);
    a[i] = (tag << 32) | static_cast<std::uint64_t>(i);
  }
  constexpr unsigned kBits = 11;
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  std::array<std::size_t, kBuckets> count{};
  for (unsigned shift = 32; shift < 64 && (largest >> (shift - 32)) != 0; shift += kBits) {
    count.fill(0);
    for (std::size_t i = 0; i < n; ++i) ++count[(a[i] >> shift) & (kBuckets - 1)];
    std::size_t sum = 0;
    for (std::size_t& c : count) sum += std::exchange(c, sum);
    for (std::size_t i = 0; i < n; ++i) b[count[(a[i] >> shift) & (kBuckets - 1)]++] = a[i];
    std::swap(a, b);
  }
  std::vector<std::uint32_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(a[i]);
  return order;
}

template <typename T>
void permute(std::vector<T>& v, std::size_t from, const std::vector<std::uint32_t>& order) {
  auto tmp = std::make_unique_for_overwrite<T[]>(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) tmp[k] = v[from + order[k]];
  std::copy(tmp.get(), tmp.get() + order.size(), v.begin() + static_cast<std::ptrdiff_t>(from));
}

}  // namespace

void Engine::restore_row_order(IngestResult& out, std::size_t bars0, std::size_t indicators0,
                               std::size_t signals0) {
  if (!bar_rows_.empty()) {
    const auto order = order_by(bar_rows_);
    BarColumns& b = out.bars;
    permute(b.interval, bars0, order);
    permute(b.symbol_id, bars0, order);
    permute(b.ts_event, bars0, order);
    permute(b.open, bars0, order);
    permute(b.high, bars0, order);
    permute(b.low, bars0, order);
    permute(b.close, bars0, order);
    permute(b.volume, bars0, order);
    permute(b.vwap, bars0, order);
    permute(b.trades, bars0, order);
  }
  if (!indicator_rows_.empty()) {
    const auto order = order_by(indicator_rows_);
    IndicatorColumns& c = out.indicators;
    permute(c.interval, indicators0, order);
    permute(c.symbol_id, indicators0, order);
    permute(c.ts_event, indicators0, order);
    permute(c.output_id, indicators0, order);
    permute(c.value, indicators0, order);
  }
  if (!signal_rows_.empty()) {
    const auto order = order_by(signal_rows_);
    SignalColumns& c = out.signals;
    permute(c.rule_id, signals0, order);
    permute(c.symbol_id, signals0, order);
    permute(c.ts_event, signals0, order);
    permute(c.direction, signals0, order);
    permute(c.value, signals0, order);
  }
}

TICKSERVER_HOT_CLONES TradeReject Engine::on_trade(SymbolId symbol_id, std::int64_t ts_event,
                                                   double price, double size, std::uint64_t seq,
                                                   std::uint8_t flags, IngestResult& out) {
  const TradeReject r = check(symbol_id, price, size);
  if (r != TradeReject::Ok) [[unlikely]] {
    ++counters_.trades_rejected;
    return r;
  }
  store_and_process_one(*syms_[symbol_id], symbol_id, ts_event, price, size, seq, flags, out);
  end_call();
  return TradeReject::Ok;
}

void Engine::advance(std::int64_t now, IngestResult& out) {
  for (std::size_t sid = 0; sid < syms_.size(); ++sid) {
    SymbolState& st = *syms_[sid];
    for (std::size_t k = 0; k < st.series.size(); ++k) {
      if (st.series[k].advance(now)) {
        on_bar_close(st, static_cast<SymbolId>(sid), k, st.series[k].closed().back(), out,
                     kNoRun);
      }
    }
  }
  end_call();
}

void Engine::touch_book(SymbolState& st, SymbolId symbol_id, BookResult& /*out*/) noexcept {
  if (st.book_stamp == book_call_) return;
  st.book_stamp = book_call_;
  st.top_before[0] = st.book.best_bid_px();
  st.top_before[1] = st.book.best_bid_sz();
  st.top_before[2] = st.book.best_ask_px();
  st.top_before[3] = st.book.best_ask_sz();
  book_touched_.push_back(symbol_id);
}

void Engine::finish_book_call(BookResult& out) {
  for (const SymbolId sid : book_touched_) {
    const SymbolState& st = *syms_[sid];
    const OrderBook& b = st.book;
    if (!same(st.top_before[0], b.best_bid_px()) || !same(st.top_before[1], b.best_bid_sz()) ||
        !same(st.top_before[2], b.best_ask_px()) || !same(st.top_before[3], b.best_ask_sz())) {
      out.changed.push_back(sid);
    }
  }
  book_touched_.clear();
}

void Engine::on_book_deltas(std::span<const SymbolId> symbol_id,
                            std::span<const std::uint8_t> side, std::span<const double> price,
                            std::span<const double> size, std::span<const std::uint64_t> seq,
                            bool checked, BookResult& out) {
  const std::size_t n = symbol_id.size();
  if (side.size() != n) length_mismatch("side", side.size(), n);
  if (price.size() != n) length_mismatch("price", price.size(), n);
  if (size.size() != n) length_mismatch("size", size.size(), n);
  if (seq.size() != n) length_mismatch("seq", seq.size(), n);
  ++book_call_;
  book_touched_.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const SymbolId sid = symbol_id[i];
    if (sid >= syms_.size()) {
      out.rejected.push_back(static_cast<std::int64_t>(i));
      out.reasons.push_back(kBookUnknownSymbol);
      ++counters_.book_rejected;
      continue;
    }
    SymbolState& st = *syms_[sid];
    touch_book(st, sid, out);
    if (checked) {
      const BookStatus s = st.book.apply(side[i], price[i], size[i], seq[i]);
      if (!applied(s)) {
        out.rejected.push_back(static_cast<std::int64_t>(i));
        out.reasons.push_back(static_cast<std::uint8_t>(s));
        ++counters_.book_rejected;
        continue;
      }
    } else {
      st.book.apply_unchecked(side[i], price[i], size[i], seq[i]);
    }
    ++counters_.book_updates;
  }
  finish_book_call(out);
}

void Engine::on_quotes(std::span<const SymbolId> symbol_id, std::span<const double> bid_px,
                       std::span<const double> bid_sz, std::span<const double> ask_px,
                       std::span<const double> ask_sz, std::span<const std::uint64_t> seq,
                       BookResult& out) {
  const std::size_t n = symbol_id.size();
  if (bid_px.size() != n) length_mismatch("bid_px", bid_px.size(), n);
  if (bid_sz.size() != n) length_mismatch("bid_sz", bid_sz.size(), n);
  if (ask_px.size() != n) length_mismatch("ask_px", ask_px.size(), n);
  if (ask_sz.size() != n) length_mismatch("ask_sz", ask_sz.size(), n);
  if (seq.size() != n) length_mismatch("seq", seq.size(), n);
  ++book_call_;
  book_touched_.clear();
  for (std::size_t i = 0; i < n; ++i) {
    const SymbolId sid = symbol_id[i];
    if (sid >= syms_.size()) {
      out.rejected.push_back(static_cast<std::int64_t>(i));
      out.reasons.push_back(kBookUnknownSymbol);
      ++counters_.book_rejected;
      continue;
    }
    SymbolState& st = *syms_[sid];
    touch_book(st, sid, out);
    // A side quoted with size 0 is empty (its price is ignored).
    const std::size_t nb = bid_sz[i] == 0.0 ? 0 : 1;
    const std::size_t na = ask_sz[i] == 0.0 ? 0 : 1;
    const BookStatus s = st.book.snapshot(bid_px.subspan(i, nb), bid_sz.subspan(i, nb),
                                          ask_px.subspan(i, na), ask_sz.subspan(i, na), seq[i]);
    if (!applied(s)) {
      out.rejected.push_back(static_cast<std::int64_t>(i));
      out.reasons.push_back(static_cast<std::uint8_t>(s));
      ++counters_.book_rejected;
      continue;
    }
    ++counters_.quotes;
  }
  finish_book_call(out);
}

BookStatus Engine::book_snapshot(SymbolId symbol_id, std::span<const double> bid_px,
                                 std::span<const double> bid_sz, std::span<const double> ask_px,
                                 std::span<const double> ask_sz, std::uint64_t seq) {
  SymbolState& st = state(symbol_id);
  const BookStatus s = st.book.snapshot(bid_px, bid_sz, ask_px, ask_sz, seq);
  if (applied(s)) {
    ++counters_.book_snapshots;
  } else {
    ++counters_.book_rejected;
  }
  return s;
}

void Engine::set_tick_size(SymbolId symbol_id, double tick_size) {
  if (!(tick_size > 0.0) || !std::isfinite(tick_size)) {
    throw std::invalid_argument("tick_size must be finite and positive");
  }
  state(symbol_id).book = OrderBook(tick_size);
}

void Engine::set_day_boundaries(std::vector<std::int64_t> starts) {
  calendar_->set_boundaries(std::move(starts));
  for (const auto& st : syms_) {
    for (Bank& b : st->banks) b.calendar_changed();
  }
}

Engine::SymbolState& Engine::state(SymbolId symbol_id) const {
  if (symbol_id >= syms_.size()) {
    throw std::out_of_range("unknown symbol id " + std::to_string(symbol_id));
  }
  return *syms_[symbol_id];
}

std::size_t Engine::bank_index(std::int64_t interval) const {
  if (interval == 0) return 0;
  const auto it = std::find(intervals_.begin(), intervals_.end(), interval);
  if (it == intervals_.end()) {
    throw std::invalid_argument("unknown interval " + std::to_string(interval) +
                                " (not 0 and not one of the engine's bar intervals)");
  }
  return static_cast<std::size_t>(it - intervals_.begin()) + 1;
}

const TradeRing& Engine::ring(SymbolId symbol_id) const { return state(symbol_id).ring; }

const OrderBook& Engine::book(SymbolId symbol_id) const { return state(symbol_id).book; }

const BarSeries& Engine::bars(SymbolId symbol_id, std::int64_t interval) const {
  const SymbolState& st = state(symbol_id);
  const std::size_t b = bank_index(interval);
  if (b == 0) throw std::invalid_argument("interval 0 (tick) has no bars");
  return st.series[b - 1];
}

const std::vector<std::string>& Engine::indicator_names(std::int64_t interval) const {
  return plans_[bank_index(interval)]->output_names();
}

std::vector<double> Engine::indicator_values(SymbolId symbol_id, std::int64_t interval,
                                             bool forming) const {
  const SymbolState& st = state(symbol_id);
  const std::size_t b = bank_index(interval);
  const Bank& bank = st.banks[b];
  std::vector<double> out(plans_[b]->n_outputs());
  if (b > 0 && forming && st.series[b - 1].has_forming()) {
    bank.peek_bar(st.series[b - 1].forming(), out);
  } else {
    bank.values(out);
  }
  return out;
}

std::vector<std::string> Engine::rule_names() const { return rule_names_; }

std::size_t Engine::memory_bytes() const noexcept {
  std::size_t n = sizeof(Engine) + syms_.capacity() * sizeof(void*);
  for (const auto& p : syms_) {
    const SymbolState& st = *p;
    n += sizeof(SymbolState) + st.ring.memory_bytes() + st.rule_state.capacity();
    n += (st.book.depth(Side::Bid) + st.book.depth(Side::Ask)) * sizeof(Level);
    for (const BarSeries& s : st.series) n += sizeof(BarSeries) + s.memory_bytes();
    for (const Bank& b : st.banks) n += b.memory_bytes();
  }
  return n;
}

}  // namespace tickserver
