#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "tickserver/engine.hpp"
#include "tickserver/indicators.hpp"

using namespace tickserver;

namespace {

constexpr std::int64_t S = kNanosPerSecond;
constexpr std::int64_t M = kNanosPerMinute;

struct Batch {
  std::vector<SymbolId> sym;
  std::vector<std::int64_t> ts;
  std::vector<double> px, sz;
  std::vector<std::uint64_t> seq;
  std::vector<std::uint8_t> flags;
  void add(SymbolId s, std::int64_t t, double p, double q) {
    sym.push_back(s);
    ts.push_back(t);
    px.push_back(p);
    sz.push_back(q);
    seq.push_back(seq.size());
    flags.push_back(0);
  }
  void run(Engine& e, IngestResult& out) const { e.on_trades(sym, ts, px, sz, seq, flags, out); }
};

EngineConfig config() {
  EngineConfig c;
  c.ring_capacity = 16;
  c.bar_capacity = 8;
  c.intervals = {M};
  c.indicators = {{"sma2", IndicatorKind::Sma, M, 2}, {"ema3", IndicatorKind::Ema, 0, 3}};
  c.rules = {{"px_over_ema", RuleKind::Crossover, 0, "close", "ema3"}};
  return c;
}

}  // namespace

TEST_CASE("engine_rejects_invalid_rows_with_reasons_and_processes_the_rest") {
  SymbolRegistry reg;
  reg.intern("AAPL");
  Engine e(reg, config());
  Batch b;
  b.add(0, 1, 100.0, 1.0);
  b.add(0, 2, std::nan(""), 1.0);
  b.add(0, 3, -1.0, 1.0);
  b.add(0, 4, 100.0, -1.0);
  b.add(7, 5, 100.0, 1.0);
  b.add(0, 6, 101.0, std::numeric_limits<double>::infinity());
  b.add(0, 7, 101.0, 0.0);
  IngestResult out;
  b.run(e, out);
  CHECK(out.rejected == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(out.reject_reason == std::vector<std::uint8_t>{2, 2, 3, 1, 3});
  CHECK(e.ring(0).size() == 2);
  CHECK(e.counters().trades == 2);
  CHECK(e.counters().trades_rejected == 5);
}

TEST_CASE("engine_accepts_symbols_interned_after_construction_once_synced") {
  SymbolRegistry reg;
  reg.intern("AAPL");
  Engine e(reg, config());
  const SymbolId msft = reg.intern("MSFT");
  IngestResult out;
  CHECK(e.on_trade(msft, 1, 10.0, 1.0, 0, 0, out) == TradeReject::UnknownSymbol);
  e.sync_symbols();
  CHECK(e.on_trade(msft, 1, 10.0, 1.0, 0, 0, out) == TradeReject::Ok);
  CHECK(e.ring(msft).size() == 1);
}

TEST_CASE("engine_emits_bars_indicator_values_and_signals") {
  SymbolRegistry reg;
  reg.intern("AAPL");
  Engine e(reg, config());
  Batch b;
  b.add(0, 10 * S, 10.0, 1.0);
  b.add(0, 20 * S, 11.0, 1.0);
  b.add(0, 30 * S, 12.0, 1.0);  // ema3 seeded = 11, price above
  b.add(0, M + 1, 9.0, 2.0);    // closes minute 0; price crosses below ema -> -1
  b.add(0, 2 * M + 1, 13.0, 1.0);  // closes minute 1; crosses above -> +1
  IngestResult out;
  b.run(e, out);
  REQUIRE(out.bars.size() == 2);
  CHECK(out.bars.ts_event[0] == 0);
  CHECK(out.bars.close[0] == 12.0);
  CHECK(out.bars.volume[0] == 3.0);
  CHECK(out.bars.vwap[0] == 11.0);
  CHECK(out.bars.trades[0] == 3);
  CHECK(out.bars.interval[1] == M);
  // sma2 over bar closes: first value at the second bar (12 + 9) / 2.
  REQUIRE(out.indicators.size() == 1);
  CHECK(out.indicators.ts_event[0] == M);
  CHECK(out.indicators.value[0] == 10.5);
  CHECK(e.indicator_names(M)[out.indicators.output_id[0]] == "sma2");
  REQUIRE(out.signals.size() == 2);
  CHECK(out.signals.direction[0] == -1);
  CHECK(out.signals.ts_event[0] == M + 1);
  CHECK(out.signals.value[0] == 9.0);
  CHECK(out.signals.direction[1] == 1);
  // The forming bar (close 13) gives a provisional sma2 of (9 + 13) / 2.
  CHECK(e.indicator_values(0, M, true)[0] == 11.0);
  CHECK(e.indicator_values(0, M, false)[0] == 10.5);
}

TEST_CASE("engine_advance_closes_bars_on_the_clock_and_marks_older_trades_late") {
  SymbolRegistry reg;
  reg.intern("AAPL");
  Engine e(reg, config());
  IngestResult out;
  CHECK(e.on_trade(0, 10 * S, 10.0, 1.0, 0, 0, out) == TradeReject::Ok);
  e.advance(M - 1, out);
  CHECK(out.bars.size() == 0);
  e.advance(M + 30 * S, out);
  CHECK(out.bars.size() == 1);
  CHECK(e.on_trade(0, 50 * S, 10.0, 1.0, 0, 0, out) == TradeReject::Ok);
  CHECK(out.late == 1);
  CHECK(e.bars(0, M).late() == 1);
  CHECK(e.ring(0).size() == 2);  // late trades are kept in the ring
  CHECK(e.counters().late == 1);
}

TEST_CASE("engine_book_deltas_report_changed_tops_once_and_unknown_symbols") {
  SymbolRegistry reg;
  reg.intern("A");
  reg.intern("B");
  Engine e(reg, config());
  const std::vector<SymbolId> sym = {0, 0, 1, 9, 0};
  const std::vector<std::uint8_t> side = {0, 1, 0, 0, 0};
  const std::vector<double> px = {10.0, 10.5, 20.0, 1.0, 9.0};
  const std::vector<double> sz = {1.0, 2.0, 3.0, 1.0, 5.0};
  const std::vector<std::uint64_t> seq = {0, 0, 0, 0, 0};
  BookResult out;
  e.on_book_deltas(sym, side, px, sz, seq, true, out);
  CHECK(out.rejected == std::vector<std::int64_t>{3});
  CHECK(out.reasons == std::vector<std::uint8_t>{kBookUnknownSymbol});
  CHECK(out.changed == std::vector<std::uint32_t>{0, 1});
  CHECK(e.book(0).best_bid_px() == 10.0);
  CHECK(e.book(0).depth(Side::Bid) == 2);
  BookResult again;
  e.on_book_deltas(std::vector<SymbolId>{0}, std::vector<std::uint8_t>{0},
                   std::vector<double>{9.0}, std::vector<double>{6.0},
                   std::vector<std::uint64_t>{0}, true, again);
  CHECK(again.changed.empty());  // a level below the best bid does not change the top
}

TEST_CASE("engine_quotes_replace_the_book_with_one_level_per_side") {
  SymbolRegistry reg;
  reg.intern("A");
  Engine e(reg, config());
  BookResult out;
  e.on_quotes(std::vector<SymbolId>{0, 0}, std::vector<double>{10.0, 10.1},
              std::vector<double>{1.0, 2.0}, std::vector<double>{10.2, 10.0},
              std::vector<double>{3.0, 4.0}, std::vector<std::uint64_t>{0, 0}, out);
  CHECK(out.rejected == std::vector<std::int64_t>{1});  // crossed quote rejected
  CHECK(out.reasons == std::vector<std::uint8_t>{static_cast<std::uint8_t>(BookStatus::Crossed)});
  CHECK(e.book(0).best_bid_px() == 10.0);
  CHECK(e.book(0).best_ask_sz() == 3.0);
  CHECK(out.changed == std::vector<std::uint32_t>{0});
}

TEST_CASE("engine_rejects_bad_configuration") {
  SymbolRegistry reg;
  EngineConfig c = config();
  c.intervals = {M, M};
  CHECK_THROWS_AS(Engine(reg, c), std::invalid_argument);
  c = config();
  c.indicators.push_back({"x", IndicatorKind::Ema, 5 * M, 3});
  CHECK_THROWS_AS(Engine(reg, c), std::invalid_argument);
  c = config();
  c.rules.push_back({"r", RuleKind::Crossover, 0, "close", "nope"});
  CHECK_THROWS_AS(Engine(reg, c), std::invalid_argument);
  c = config();
  c.rules.push_back({"r", RuleKind::Breakout, 0, "ema3", ""});
  CHECK_THROWS_AS(Engine(reg, c), std::invalid_argument);
  c = config();
  c.ring_capacity = 0;
  CHECK_THROWS_AS(Engine(reg, c), std::invalid_argument);
}

TEST_CASE("engine_snapshots_reject_unknown_symbols_and_intervals") {
  SymbolRegistry reg;
  reg.intern("A");
  Engine e(reg, config());
  CHECK_THROWS_AS((void)e.ring(5), std::out_of_range);
  CHECK_THROWS_AS((void)e.bars(0, 7), std::invalid_argument);
  CHECK_THROWS_AS((void)e.bars(0, 0), std::invalid_argument);
  CHECK(e.indicator_names(0) == std::vector<std::string>{"ema3"});
}

TEST_CASE("engine_batch_and_single_calls_give_identical_state") {
  SymbolRegistry reg;
  reg.intern("A");
  reg.intern("B");
  Engine batch(reg, config());
  Engine single(reg, config());
  Batch b;
  double p = 100.0;
  for (int i = 0; i < 500; ++i) {
    p += (i * 7919 % 13) * 0.01 - 0.06;
    b.add(static_cast<SymbolId>(i % 2), i * 1'700'000'000LL, p, 1.0 + i % 3);
  }
  IngestResult ob, os;
  b.run(batch, ob);
  for (std::size_t i = 0; i < b.sym.size(); ++i) {
    CHECK(single.on_trade(b.sym[i], b.ts[i], b.px[i], b.sz[i], b.seq[i], b.flags[i], os) ==
          TradeReject::Ok);
  }
  CHECK(ob.bars.close == os.bars.close);
  CHECK(ob.bars.ts_event == os.bars.ts_event);
  CHECK(ob.signals.direction == os.signals.direction);
  CHECK(ob.indicators.value == os.indicators.value);
  CHECK(batch.indicator_values(1, 0, true) == single.indicator_values(1, 0, true));
}

TEST_CASE("engine_grouped_batch_keeps_row_order_of_outputs_and_rejects") {
  // Batches of >= 512 rows over several symbols are processed symbol by symbol; outputs must
  // still come out exactly as row-by-row processing produces them.
  SymbolRegistry reg;
  for (const char* s : {"A", "B", "C"}) reg.intern(s);
  Engine batch(reg, config());
  Engine single(reg, config());
  Batch b;
  double p = 50.0;
  for (int i = 0; i < 3000; ++i) {
    p += ((i * 7919) % 17) * 0.01 - 0.08;
    const double px = i % 97 == 5 ? -1.0 : p;  // some invalid rows
    b.add(static_cast<SymbolId>((i * 31) % 3), i * 900'000'000LL, px, 1.0 + i % 4);
  }
  IngestResult ob, os;
  b.run(batch, ob);
  std::vector<std::int64_t> rejected;
  for (std::size_t i = 0; i < b.sym.size(); ++i) {
    if (single.on_trade(b.sym[i], b.ts[i], b.px[i], b.sz[i], b.seq[i], b.flags[i], os) !=
        TradeReject::Ok) {
      rejected.push_back(static_cast<std::int64_t>(i));
    }
  }
  CHECK(ob.rejected == rejected);
  CHECK(ob.bars.symbol_id == os.bars.symbol_id);
  CHECK(ob.bars.ts_event == os.bars.ts_event);
  CHECK(ob.bars.close == os.bars.close);
  CHECK(ob.signals.symbol_id == os.signals.symbol_id);
  CHECK(ob.signals.ts_event == os.signals.ts_event);
  CHECK(ob.signals.rule_id == os.signals.rule_id);
  CHECK(ob.indicators.symbol_id == os.indicators.symbol_id);
  CHECK(ob.indicators.value == os.indicators.value);
  CHECK(ob.signals.size() > 10);
  CHECK(ob.bars.size() > 10);
  for (SymbolId s = 0; s < 3; ++s) {
    CHECK(batch.indicator_values(s, 0, true) == single.indicator_values(s, 0, true));
    CHECK(batch.ring(s).total_pushed() == single.ring(s).total_pushed());
  }
}

TEST_CASE("engine_indicators_sharing_a_window_equal_independent_ones") {
  // SMA, STDDEV, BBANDS and ZSCORE of one period share one rolling-moments state per symbol;
  // each must give exactly what it gives alone (and what the standalone indicator gives), on
  // ticks and on bars, through the block path and the trade-by-trade path.
  SymbolRegistry reg;
  reg.intern("A");
  EngineConfig shared;
  shared.ring_capacity = 64;
  shared.bar_capacity = 64;
  shared.intervals = {10 * S};
  for (const std::int64_t iv : {std::int64_t{0}, 10 * S}) {
    shared.indicators.push_back({"sma", IndicatorKind::Sma, iv, 5});
    shared.indicators.push_back({"sd", IndicatorKind::StdDev, iv, 5});
    shared.indicators.push_back({"bb", IndicatorKind::BBands, iv, 5, 12, 26, 9, 1.5});
    shared.indicators.push_back({"z", IndicatorKind::ZScore, iv, 5});
  }
  shared.rules = {{"x", RuleKind::Crossover, 0, "close", "bb.upper"}};
  Engine together(reg, shared);
  std::vector<std::unique_ptr<Engine>> alone;
  for (std::size_t i = 0; i < 4; ++i) {
    EngineConfig c = shared;
    c.indicators = {shared.indicators[i], shared.indicators[i + 4]};
    c.rules.clear();
    alone.push_back(std::make_unique<Engine>(reg, c));
  }
  Sma sma(5);
  StdDev sd(5);
  BBands bb(5, 1.5);
  ZScore z(5);
  Batch b;
  double p = 20.0;
  for (int i = 0; i < 600; ++i) {
    p += ((i * 7919) % 23) * 0.01 - 0.11;
    b.add(0, i * 700'000'000LL, i % 50 == 7 ? p * 40.0 : p, 1.0);  // outliers force reseeds
  }
  IngestResult out;
  for (std::size_t lo = 0; lo < b.sym.size();) {  // blocks of 1, 3 and 200 trades
    const std::size_t k = std::min<std::size_t>(b.sym.size() - lo, lo % 3 == 0 ? 200 : lo % 2 + 1);
    auto part = [&](const auto& v) { return std::span(v).subspan(lo, k); };
    together.on_trades(part(b.sym), part(b.ts), part(b.px), part(b.sz), part(b.seq),
                       part(b.flags), out);
    for (auto& e : alone) {
      e->on_trades(part(b.sym), part(b.ts), part(b.px), part(b.sz), part(b.seq), part(b.flags),
                   out);
    }
    for (std::size_t i = lo; i < lo + k; ++i) {
      (void)sma.update(b.px[i]);
      (void)sd.update(b.px[i]);
      (void)bb.update(b.px[i]);
      (void)z.update(b.px[i]);
    }
    lo += k;
    const std::vector<double> t = together.indicator_values(0, 0, true);
    REQUIRE(t.size() == 6);
    auto same = [](double a, double x) { return a == x || (std::isnan(a) && std::isnan(x)); };
    CHECK(same(t[0], alone[0]->indicator_values(0, 0, true)[0]));
    CHECK(same(t[1], alone[1]->indicator_values(0, 0, true)[0]));
    CHECK(same(t[2], alone[2]->indicator_values(0, 0, true)[0]));
    CHECK(same(t[4], alone[2]->indicator_values(0, 0, true)[2]));
    CHECK(same(t[5], alone[3]->indicator_values(0, 0, true)[0]));
    CHECK(same(t[0], sma.value()));
    CHECK(same(t[1], sd.value()));
    CHECK(same(t[2], bb.value().upper));
    CHECK(same(t[3], bb.value().middle));
    CHECK(same(t[4], bb.value().lower));
    CHECK(same(t[5], z.value()));
    const std::vector<double> bars = together.indicator_values(0, 10 * S, true);
    for (std::size_t i = 0; i < 4; ++i) {
      const std::vector<double> a = alone[i]->indicator_values(0, 10 * S, true);
      const std::size_t at = i < 3 ? i : 5;  // bb has three outputs
      CHECK(same(bars[at], a[0]));
    }
  }
  CHECK(together.counters().bars > 30);
  CHECK(out.signals.size() > 5);
}
