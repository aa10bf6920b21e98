// Python bindings of the engine: batch ingest with the GIL released, results as zero-copy numpy
// views owned by the result object, snapshots as numpy arrays.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "busy.hpp"
#include "tickserver/engine.hpp"

namespace nb = nanobind;

namespace tickserver::py {

namespace {

constexpr const char* kEngine = "this Engine";

/// The engine plus what the binding layer needs: a reusable result for single-trade calls and
/// the flag that keeps GIL-released batch calls from overlapping other calls.
struct PyEngine {
  PyEngine(const SymbolRegistry& registry, EngineConfig config)
      : engine(registry, std::move(config)) {}
  Engine engine;
  IngestResult scratch;
  bool busy = false;

  /// The engine, for a call made with the GIL held: refuses while a batch runs and picks up
  /// symbols interned since the last call.
  Engine& ready() {
    check_idle(busy, kEngine);
    engine.sync_symbols();
    return engine;
  }
};

template <typename T>
using View1D = nb::ndarray<nb::numpy, const T, nb::ndim<1>>;

/// A read-only numpy view of `v`, keeping `owner` (the Python object that owns `v`) alive.
template <typename T>
View1D<T> view(const std::vector<T>& v, nb::handle owner) {
  static const T kEmpty{};
  const T* data = v.empty() ? &kEmpty : v.data();
  return View1D<T>(data, {v.size()}, owner);
}

using Columns = nb::typed<nb::dict, nb::str, nb::ndarray<nb::numpy>>;

Columns bar_columns(const BarColumns& b, nb::handle owner) {
  Columns d;
  d["interval"] = view(b.interval, owner);
  d["symbol_id"] = view(b.symbol_id, owner);
  d["ts_event"] = view(b.ts_event, owner);
  d["open"] = view(b.open, owner);
  d["high"] = view(b.high, owner);
  d["low"] = view(b.low, owner);
  d["close"] = view(b.close, owner);
  d["volume"] = view(b.volume, owner);
  d["vwap"] = view(b.vwap, owner);
  d["trades"] = view(b.trades, owner);
  return d;
}

Columns signal_columns(const SignalColumns& s, nb::handle owner) {
  Columns d;
  d["rule_id"] = view(s.rule_id, owner);
  d["symbol_id"] = view(s.symbol_id, owner);
  d["ts_event"] = view(s.ts_event, owner);
  d["direction"] = view(s.direction, owner);
  d["value"] = view(s.value, owner);
  return d;
}

Columns indicator_columns(const IndicatorColumns& c, nb::handle owner) {
  Columns d;
  d["interval"] = view(c.interval, owner);
  d["symbol_id"] = view(c.symbol_id, owner);
  d["ts_event"] = view(c.ts_event, owner);
  d["output_id"] = view(c.output_id, owner);
  d["value"] = view(c.value, owner);
  return d;
}

/// Closed bars as freshly allocated columns (snapshot, not a view).
Columns copy_bars(const Ring<Bar>& ring, std::size_t n) {
  std::vector<Bar> bars(std::min(n, ring.size()));
  bars.resize(ring.copy_last(bars.size(), bars.data()));
  std::vector<std::int64_t> ts(bars.size());
  std::vector<double> o(bars.size()), h(bars.size()), l(bars.size()), c(bars.size()),
      v(bars.size()), w(bars.size());
  std::vector<std::uint64_t> t(bars.size());
  for (std::size_t i = 0; i < bars.size(); ++i) {
    ts[i] = bars[i].ts_open;
    o[i] = bars[i].open;
    h[i] = bars[i].high;
    l[i] = bars[i].low;
    c[i] = bars[i].close;
    v[i] = bars[i].volume;
    w[i] = bars[i].vwap();
    t[i] = bars[i].trades;
  }
  Columns d;
  d["ts_event"] = to_numpy(std::move(ts));
  d["open"] = to_numpy(std::move(o));
  d["high"] = to_numpy(std::move(h));
  d["low"] = to_numpy(std::move(l));
  d["close"] = to_numpy(std::move(c));
  d["volume"] = to_numpy(std::move(v));
  d["vwap"] = to_numpy(std::move(w));
  d["trades"] = to_numpy(std::move(t));
  return d;
}

[[noreturn]] void raise_book_error(nb::handle book_error, BookStatus s) {
  const std::string msg = std::string("book snapshot rejected: ") + to_string(s) + " (code " +
                          std::to_string(static_cast<int>(s)) + ")";
  PyErr_SetString(book_error.ptr(), msg.c_str());
  throw nb::python_error();
}

const IngestResult& result_of(nb::handle_t<IngestResult> self) {
  return *nb::inst_ptr<IngestResult>(self);
}
const BookResult& book_result_of(nb::handle_t<BookResult> self) {
  return *nb::inst_ptr<BookResult>(self);
}

}  // namespace

void bind_engine(nb::module_& m) {
  // BookError is defined by the book bindings; fall back to ValueError if it is absent.
  static nb::handle book_error =
      nb::hasattr(m, "BookError") ? nb::handle(m.attr("BookError")) : nb::handle(PyExc_ValueError);

  m.def("reject_reason_name",
        [](int code) { return std::string(to_string(static_cast<TradeReject>(code))); },
        nb::arg("code"), "Describe a trade reject code (``IngestResult.reject_reason``).");
  m.def(
      "book_reject_reason_name",
      [](int code) {
        if (code == kBookUnknownSymbol) return std::string("unknown symbol id");
        return std::string(to_string(static_cast<BookStatus>(code)));
      },
      nb::arg("code"),
      "Describe a ``BookResult.reasons`` code: a book status code, or 255 for an unknown symbol.");

  nb::class_<IndicatorSpec>(m, "IndicatorSpec", "One indicator of an Engine.")
      .def(
          "__init__",
          [](IndicatorSpec* s, std::string name, std::string_view kind, std::int64_t interval,
             int period, int fast, int slow, int signal, double k) {
            new (s) IndicatorSpec{std::move(name), indicator_kind_from_string(kind), interval,
                                  period,          fast,  slow, signal, k};
          },
          nb::arg("name"), nb::arg("kind"), nb::arg("interval"), nb::arg("period") = 14,
          nb::arg("fast") = 12, nb::arg("slow") = 26, nb::arg("signal") = 9, nb::arg("k") = 2.0,
          "``kind``: sma, ema, rsi, macd, bbands, atr, vwap, stddev or zscore; ``interval`` in ns "
          "(0 = every trade).")
      .def_ro("name", &IndicatorSpec::name)
      .def_prop_ro("kind", [](const IndicatorSpec& s) { return std::string(to_string(s.kind)); })
      .def_ro("interval", &IndicatorSpec::interval)
      .def_ro("period", &IndicatorSpec::period)
      .def_ro("fast", &IndicatorSpec::fast)
      .def_ro("slow", &IndicatorSpec::slow)
      .def_ro("signal", &IndicatorSpec::signal)
      .def_ro("k", &IndicatorSpec::k)
      .def("__repr__", [](const IndicatorSpec& s) {
        return "IndicatorSpec(name='" + s.name + "', kind='" + to_string(s.kind) +
               "', interval=" + std::to_string(s.interval) + ", period=" +
               std::to_string(s.period) + ")";
      });

  nb::class_<RuleSpec>(m, "RuleSpec", "One signal rule of an Engine.")
      .def(
          "__init__",
          [](RuleSpec* r, std::string name, std::string_view kind, std::int64_t interval,
             std::string a, std::string b, double above, double below) {
            new (r) RuleSpec{std::move(name), rule_kind_from_string(kind), interval,
                             std::move(a),    std::move(b),                above, below};
          },
          nb::arg("name"), nb::arg("kind"), nb::arg("interval"), nb::arg("a") = "",
          nb::arg("b") = "", nb::arg("above") = std::nan(""), nb::arg("below") = std::nan(""),
          "``kind``: crossover (outputs a, b), threshold (output a; levels above/below) or "
          "breakout (a = a bbands indicator). Outputs are indicator output names of the same "
          "interval, or 'close'.")
      .def_ro("name", &RuleSpec::name)
      .def_prop_ro("kind", [](const RuleSpec& r) { return std::string(to_string(r.kind)); })
      .def_ro("interval", &RuleSpec::interval)
      .def_ro("a", &RuleSpec::a)
      .def_ro("b", &RuleSpec::b)
      .def_ro("above", &RuleSpec::above)
      .def_ro("below", &RuleSpec::below)
      .def("__repr__", [](const RuleSpec& r) {
        return "RuleSpec(name='" + r.name + "', kind='" + to_string(r.kind) +
               "', interval=" + std::to_string(r.interval) + ", a='" + r.a + "', b='" + r.b +
               "')";
      });

  nb::class_<IngestResult>(m, "IngestResult",
                           "What one ingest call produced. Array properties are read-only views "
                           "into memory owned by this object.")
      .def_prop_ro("rejected",
                   [](nb::handle_t<IngestResult> self) {
                     return view(result_of(self).rejected, self);
                   },
                   "Indices of rejected rows (int64).")
      .def_prop_ro("reject_reason",
                   [](nb::handle_t<IngestResult> self) {
                     return view(result_of(self).reject_reason, self);
                   },
                   "Reject codes of those rows (uint8, see ``reject_reason_name``).")
      .def_prop_ro("late", [](const IngestResult& r) { return r.late; },
                   "Trades older than the forming bar of at least one interval (kept in the "
                   "ring and tick indicators, never in a bar).")
      .def_prop_ro("bars",
                   [](nb::handle_t<IngestResult> self) {
                     return bar_columns(result_of(self).bars, self);
                   },
                   "Closed bars: interval, symbol_id, ts_event (bar open), open, high, low, "
                   "close, volume, vwap, trades.")
      .def_prop_ro("signals",
                   [](nb::handle_t<IngestResult> self) {
                     return signal_columns(result_of(self).signals, self);
                   },
                   "Signals: rule_id, symbol_id, ts_event, direction, value.")
      .def_prop_ro("indicators",
                   [](nb::handle_t<IngestResult> self) {
                     return indicator_columns(result_of(self).indicators, self);
                   },
                   "Indicator values at bar close: interval, symbol_id, ts_event (bar open), "
                   "output_id (index into Engine.indicator_names(interval)), value.")
      .def_prop_ro("n_bars", [](const IngestResult& r) { return r.bars.size(); })
      .def_prop_ro("n_signals", [](const IngestResult& r) { return r.signals.size(); })
      .def_prop_ro("n_indicators", [](const IngestResult& r) { return r.indicators.size(); })
      .def_prop_ro("n_rejected", [](const IngestResult& r) { return r.rejected.size(); })
      .def("__repr__", [](const IngestResult& r) {
        return "IngestResult(n_rejected=" + std::to_string(r.rejected.size()) +
               ", late=" + std::to_string(r.late) + ", n_bars=" + std::to_string(r.bars.size()) +
               ", n_signals=" + std::to_string(r.signals.size()) +
               ", n_indicators=" + std::to_string(r.indicators.size()) + ")";
      });

  nb::class_<BookResult>(m, "BookResult", "What one book call produced (read-only views).")
      .def_prop_ro("rejected",
                   [](nb::handle_t<BookResult> self) {
                     return view(book_result_of(self).rejected, self);
                   },
                   "Indices of rejected rows (int64); the book is unchanged by them.")
      .def_prop_ro("reasons",
                   [](nb::handle_t<BookResult> self) {
                     return view(book_result_of(self).reasons, self);
                   },
                   "Their codes (uint8, see ``book_reject_reason_name``).")
      .def_prop_ro("changed",
                   [](nb::handle_t<BookResult> self) {
                     return view(book_result_of(self).changed, self);
                   },
                   "Symbol ids (uint32) whose top of book changed, each once.")
      .def("__repr__", [](const BookResult& r) {
        return "BookResult(n_rejected=" + std::to_string(r.rejected.size()) +
               ", n_changed=" + std::to_string(r.changed.size()) + ")";
      });

  nb::class_<PyEngine>(m, "Engine",
                       "Per-symbol trade rings, L2 books, bars, indicators and signal rules, fed "
                       "by columnar batches. Not for concurrent use: a call that overlaps a "
                       "running batch call raises RuntimeError.")
      .def(
          "__init__",
          [](PyEngine* self, const SymbolRegistry& registry, std::size_t ring_capacity,
             std::size_t bar_capacity, std::vector<std::int64_t> intervals,
             std::vector<IndicatorSpec> indicators, std::vector<RuleSpec> rules,
             double tick_size) {
            EngineConfig c;
            c.ring_capacity = ring_capacity;
            c.bar_capacity = bar_capacity;
            c.intervals = std::move(intervals);
            c.indicators = std::move(indicators);
            c.rules = std::move(rules);
            c.tick_size = tick_size;
            new (self) PyEngine(registry, std::move(c));
          },
          nb::arg("registry"), nb::kw_only(), nb::arg("ring_capacity"), nb::arg("bar_capacity"),
          nb::arg("intervals"), nb::arg("indicators"), nb::arg("rules"),
          nb::arg("tick_size") = 1e-4, nb::keep_alive<1, 2>(),
          "``intervals``: bar intervals in ns; indicators and rules of interval 0 run on every "
          "trade.")
      .def(
          "on_trades",
          [](PyEngine& pe, const AnyArray& sym_a, const AnyArray& ts_a, const AnyArray& px_a,
             const AnyArray& sz_a, const AnyArray& seq_a, const AnyArray& fl_a) {
            const auto sym = column<std::uint32_t>(sym_a, "symbol_id");
            const auto ts = column<std::int64_t>(ts_a, "ts_event");
            const auto px = column<double>(px_a, "price");
            const auto sz = column<double>(sz_a, "size");
            const auto seq = column<std::uint64_t>(seq_a, "seq");
            const auto fl = column<std::uint8_t>(fl_a, "flags");
            check_len("ts_event", ts.size(), sym.size());
            check_len("price", px.size(), sym.size());
            check_len("size", sz.size(), sym.size());
            check_len("seq", seq.size(), sym.size());
            check_len("flags", fl.size(), sym.size());
            Engine& e = pe.ready();
            auto out = std::make_unique<IngestResult>();
            {
              BusyGuard guard(pe.busy, kEngine);
              nb::gil_scoped_release release;
              e.on_trades(sym, ts, px, sz, seq, fl, *out);
            }
            return out.release();
          },
          nb::arg("symbol_id").noconvert(), nb::arg("ts_event").noconvert(),
          nb::arg("price").noconvert(), nb::arg("size").noconvert(), nb::arg("seq").noconvert(),
          nb::arg("flags").noconvert(), nb::rv_policy::take_ownership,
          "Ingest a batch of trades (GIL released). Invalid rows (unknown symbol id, "
          "non-finite or non-positive price, negative or non-finite size) are rejected and "
          "reported; the others are processed.")
      .def(
          "on_trade",
          [](PyEngine& pe, std::uint32_t sym, std::int64_t ts, double px, double sz,
             std::uint64_t seq, std::uint8_t flags) -> nb::object {
            check_idle(pe.busy, kEngine);
            if (sym >= pe.engine.symbol_count()) pe.engine.sync_symbols();
            const TradeReject r = pe.engine.on_trade(sym, ts, px, sz, seq, flags, pe.scratch);
            if (r != TradeReject::Ok) {
              throw nb::value_error((std::string("trade rejected: ") + to_string(r)).c_str());
            }
            if (pe.scratch.empty()) return nb::none();
            auto* out = new IngestResult(std::move(pe.scratch));
            pe.scratch.clear();
            return nb::cast(out, nb::rv_policy::take_ownership);
          },
          nb::arg("symbol_id"), nb::arg("ts_event"), nb::arg("price"), nb::arg("size"),
          nb::arg("seq") = 0, nb::arg("flags") = 0,
          nb::sig("def on_trade(self, symbol_id: int, ts_event: int, price: float, size: float, "
                  "seq: int = 0, flags: int = 0) -> IngestResult | None"),
          "Ingest one trade. Return None when it produced nothing (no bar, signal or late "
          "trade); raise ValueError for an invalid trade.")
      .def(
          "advance",
          [](PyEngine& pe, std::int64_t now) {
            Engine& e = pe.ready();
            auto out = std::make_unique<IngestResult>();
            {
              BusyGuard guard(pe.busy, kEngine);
              nb::gil_scoped_release release;
              e.advance(now, *out);
            }
            return out.release();
          },
          nb::arg("now_ns"), nb::rv_policy::take_ownership,
          "Close every forming bar whose end is at or before ``now_ns``; trades later stamped "
          "in an interval closed this way are late.")
      .def(
          "on_book_deltas",
          [](PyEngine& pe, const AnyArray& sym_a, const AnyArray& side_a, const AnyArray& px_a,
             const AnyArray& sz_a, const AnyArray& seq_a, bool checked) {
            const auto sym = column<std::uint32_t>(sym_a, "symbol_id");
            const auto side = column<std::uint8_t>(side_a, "side");
            const auto px = column<double>(px_a, "price");
            const auto sz = column<double>(sz_a, "size");
            const auto seq = column<std::uint64_t>(seq_a, "seq");
            check_len("side", side.size(), sym.size());
            check_len("price", px.size(), sym.size());
            check_len("size", sz.size(), sym.size());
            check_len("seq", seq.size(), sym.size());
            Engine& e = pe.ready();
            auto out = std::make_unique<BookResult>();
            {
              BusyGuard guard(pe.busy, kEngine);
              nb::gil_scoped_release release;
              e.on_book_deltas(sym, side, px, sz, seq, checked, *out);
            }
            return out.release();
          },
          nb::arg("symbol_id").noconvert(), nb::arg("side").noconvert(),
          nb::arg("price").noconvert(), nb::arg("size").noconvert(), nb::arg("seq").noconvert(),
          nb::arg("checked") = true, nb::rv_policy::take_ownership,
          "Apply L2 deltas (side 0 bid, 1 ask; size 0 deletes a level) with the GIL released.")
      .def(
          "on_quotes",
          [](PyEngine& pe, const AnyArray& sym_a, const AnyArray& bp_a, const AnyArray& bs_a,
             const AnyArray& ap_a, const AnyArray& as_a, const AnyArray& seq_a) {
            const auto sym = column<std::uint32_t>(sym_a, "symbol_id");
            const auto bp = column<double>(bp_a, "bid_px");
            const auto bs = column<double>(bs_a, "bid_sz");
            const auto ap = column<double>(ap_a, "ask_px");
            const auto as = column<double>(as_a, "ask_sz");
            const auto seq = column<std::uint64_t>(seq_a, "seq");
            check_len("bid_px", bp.size(), sym.size());
            check_len("bid_sz", bs.size(), sym.size());
            check_len("ask_px", ap.size(), sym.size());
            check_len("ask_sz", as.size(), sym.size());
            check_len("seq", seq.size(), sym.size());
            Engine& e = pe.ready();
            auto out = std::make_unique<BookResult>();
            {
              BusyGuard guard(pe.busy, kEngine);
              nb::gil_scoped_release release;
              e.on_quotes(sym, bp, bs, ap, as, seq, *out);
            }
            return out.release();
          },
          nb::arg("symbol_id").noconvert(), nb::arg("bid_px").noconvert(),
          nb::arg("bid_sz").noconvert(), nb::arg("ask_px").noconvert(),
          nb::arg("ask_sz").noconvert(), nb::arg("seq").noconvert(), nb::rv_policy::take_ownership,
          "Top-of-book quotes: each row replaces the symbol's book with one level per side (a "
          "side with size 0 is empty).")
      .def(
          "book_snapshot",
          [](PyEngine& pe, std::uint32_t sym, const AnyArray& bp_a, const AnyArray& bs_a,
             const AnyArray& ap_a, const AnyArray& as_a, std::uint64_t seq) {
            const auto bp = column<double>(bp_a, "bid_px");
            const auto bs = column<double>(bs_a, "bid_sz");
            const auto ap = column<double>(ap_a, "ask_px");
            const auto as = column<double>(as_a, "ask_sz");
            check_len("bid_sz", bs.size(), bp.size());
            check_len("ask_sz", as.size(), ap.size());
            const BookStatus s = pe.ready().book_snapshot(sym, bp, bs, ap, as, seq);
            if (!applied(s)) raise_book_error(book_error, s);
          },
          nb::arg("symbol_id"), nb::arg("bid_px").noconvert(), nb::arg("bid_sz").noconvert(),
          nb::arg("ask_px").noconvert(), nb::arg("ask_sz").noconvert(), nb::arg("seq") = 0,
          "Replace a symbol's book (all-or-nothing; BookError leaves it unchanged).")
      .def(
          "last_trades",
          [](PyEngine& pe, std::uint32_t sym, std::size_t n) {
            const TradeRing& r = pe.ready().ring(sym);
            const std::size_t k = std::min(n, r.size());
            std::vector<std::int64_t> ts(k);
            std::vector<double> px(k), sz(k);
            std::vector<std::uint64_t> seq(k);
            std::vector<std::uint8_t> fl(k);
            (void)r.copy_last(k, ts.data(), px.data(), sz.data(), seq.data(), fl.data());
            Columns d;
            d["ts_event"] = to_numpy(std::move(ts));
            d["price"] = to_numpy(std::move(px));
            d["size"] = to_numpy(std::move(sz));
            d["seq"] = to_numpy(std::move(seq));
            d["flags"] = to_numpy(std::move(fl));
            return d;
          },
          nb::arg("symbol_id"), nb::arg("n"),
          "The last ``n`` trades in the ring, oldest first (copies).")
      .def(
          "last_trade",
          [](PyEngine& pe, std::uint32_t sym) -> std::optional<std::tuple<std::int64_t, double, double>> {
            const TradeRing& r = pe.ready().ring(sym);
            if (r.empty()) return std::nullopt;
            const TradeRecord t = r.back();
            return std::make_tuple(t.ts_event, t.price, t.size);
          },
          nb::arg("symbol_id"), "``(ts_event, price, size)`` of the newest trade, or None.")
      .def(
          "trade_count",
          [](PyEngine& pe, std::uint32_t sym) { return pe.ready().ring(sym).total_pushed(); },
          nb::arg("symbol_id"), "Trades ever stored for the symbol (including overwritten ones).")
      .def(
          "ring_overwritten",
          [](PyEngine& pe, std::uint32_t sym) { return pe.ready().ring(sym).overwritten(); },
          nb::arg("symbol_id"), "Trades lost from the symbol's ring to overwriting.")
      .def(
          "bars",
          [](PyEngine& pe, std::uint32_t sym, std::int64_t interval, std::size_t n) {
            return copy_bars(pe.ready().bars(sym, interval).closed(), n);
          },
          nb::arg("symbol_id"), nb::arg("interval"), nb::arg("n"),
          "The last ``n`` closed bars, oldest first: ts_event (bar open), open, high, low, "
          "close, volume, vwap, trades.")
      .def(
          "forming_bar",
          [](PyEngine& pe, std::uint32_t sym, std::int64_t interval) -> std::optional<nb::dict> {
            const BarSeries& s = pe.ready().bars(sym, interval);
            if (!s.has_forming()) return std::nullopt;
            const Bar& b = s.forming();
            nb::dict d;
            d["ts_event"] = b.ts_open;
            d["ts_end"] = s.forming_end();
            d["open"] = b.open;
            d["high"] = b.high;
            d["low"] = b.low;
            d["close"] = b.close;
            d["volume"] = b.volume;
            d["vwap"] = b.vwap();
            d["trades"] = b.trades;
            return d;
          },
          nb::arg("symbol_id"), nb::arg("interval"),
          nb::sig("def forming_bar(self, symbol_id: int, interval: int) -> "
                  "dict[str, int | float] | None"),
          "The bar still forming (ts_event = open, ts_end = end), or None.")
      .def(
          "indicator_names",
          [](PyEngine& pe, std::int64_t interval) { return pe.ready().indicator_names(interval); },
          nb::arg("interval"), "Output names at an interval, indexed by ``output_id``.")
      .def(
          "indicator_values",
          [](PyEngine& pe, std::uint32_t sym, std::int64_t interval, bool forming) {
            return to_numpy(pe.ready().indicator_values(sym, interval, forming));
          },
          nb::arg("symbol_id"), nb::arg("interval"), nb::arg("forming") = true,
          "Current output values (NaN during warm-up). For a bar interval with ``forming``, "
          "values include the forming bar provisionally.")
      .def(
          "book_top",
          [](PyEngine& pe, std::uint32_t sym, std::size_t depth) {
            const OrderBook& b = pe.ready().book(sym);
            std::vector<double> bp(depth), bs(depth), ap(depth), as(depth);
            bp.resize(b.top(Side::Bid, depth, bp.data(), bs.data()));
            bs.resize(bp.size());
            ap.resize(b.top(Side::Ask, depth, ap.data(), as.data()));
            as.resize(ap.size());
            return std::make_tuple(to_numpy(std::move(bp)), to_numpy(std::move(bs)),
                                   to_numpy(std::move(ap)), to_numpy(std::move(as)));
          },
          nb::arg("symbol_id"), nb::arg("depth") = 10,
          "``(bid_px, bid_sz, ask_px, ask_sz)`` of the best ``depth`` levels, best first.")
      .def(
          "book_stats",
          [](PyEngine& pe, std::uint32_t sym) {
            const OrderBook& b = pe.ready().book(sym);
            nb::dict d;
            d["bid_px"] = b.best_bid_px();
            d["bid_sz"] = b.best_bid_sz();
            d["ask_px"] = b.best_ask_px();
            d["ask_sz"] = b.best_ask_sz();
            d["mid"] = b.mid();
            d["spread"] = b.spread();
            d["microprice"] = b.microprice();
            d["imbalance"] = b.imbalance();
            d["bid_depth"] = b.depth(Side::Bid);
            d["ask_depth"] = b.depth(Side::Ask);
            d["last_seq"] = b.last_seq();
            d["gaps"] = b.gaps();
            d["tick_size"] = b.tick_size();
            return d;
          },
          nb::arg("symbol_id"),
          nb::sig("def book_stats(self, symbol_id: int) -> dict[str, int | float]"),
          "Best bid_px/bid_sz/ask_px/ask_sz, mid, spread, microprice, imbalance (NaN where a "
          "side is empty), bid_depth, ask_depth, last_seq, gaps, tick_size.")
      .def(
          "set_tick_size",
          [](PyEngine& pe, std::uint32_t sym, double tick_size) {
            pe.ready().set_tick_size(sym, tick_size);
          },
          nb::arg("symbol_id"), nb::arg("tick_size"),
          "Replace the symbol's book by an empty one with this tick size.")
      .def(
          "set_day_boundaries",
          [](PyEngine& pe, const AnyArray& starts_a) {
            const auto starts = column<std::int64_t>(starts_a, "starts");
            pe.ready().set_day_boundaries(std::vector<std::int64_t>(starts.begin(), starts.end()));
          },
          nb::arg("starts").noconvert(),
          "Session starts (UTC ns, strictly increasing) for 1-day bars and session VWAP, "
          "instead of UTC midnight. Applies to bars opened and sessions entered afterwards.")
      .def(
          "counters",
          [](PyEngine& pe) {
            const EngineCounters& c = pe.ready().counters();
            nb::dict d;
            d["trades"] = c.trades;
            d["trades_rejected"] = c.trades_rejected;
            d["late"] = c.late;
            d["bars"] = c.bars;
            d["signals"] = c.signals;
            d["indicator_values"] = c.indicator_values;
            d["book_updates"] = c.book_updates;
            d["book_rejected"] = c.book_rejected;
            d["quotes"] = c.quotes;
            d["book_snapshots"] = c.book_snapshots;
            return d;
          },
          nb::sig("def counters(self) -> dict[str, int]"), "Running totals since construction.")
      .def(
          "memory_bytes", [](PyEngine& pe) { return pe.ready().memory_bytes(); },
          "Bytes held by rings, bars, indicator state and books (allocated, not necessarily "
          "resident).")
      .def(
          "rule_names", [](PyEngine& pe) { return pe.ready().rule_names(); },
          "Rule names, indexed by ``rule_id``.")
      .def(
          "intervals", [](PyEngine& pe) { return pe.ready().intervals(); },
          "The bar intervals (ns), in configuration order.")
      .def_prop_ro(
          "symbol_count", [](PyEngine& pe) { return pe.ready().symbol_count(); },
          "Symbols the engine holds state for.");
}

}  // namespace tickserver::py
