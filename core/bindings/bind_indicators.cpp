// Python bindings of the incremental indicators (standalone classes for parity tests and benches).
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <memory>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "busy.hpp"
#include "tickserver/indicators.hpp"

namespace nb = nanobind;

namespace tickserver::py {

namespace {

constexpr const char* kWhat = "this indicator";

/// An indicator plus the flag that keeps a GIL-released update_many from overlapping other calls.
template <typename T>
struct Py : T {
  using T::T;
  bool busy = false;
};

using Triple = std::tuple<double, double, double>;
using ArrayTriple = std::tuple<Out1D<double>, Out1D<double>, Out1D<double>>;

/// An output column allocated without zero-filling (every element is written by the kernel),
/// handed to numpy without a copy.
class Output {
 public:
  explicit Output(std::size_t n) : data_(new double[n]), n_(n) {}
  operator std::span<double>() noexcept { return {data_.get(), n_}; }
  Out1D<double> to_numpy() && {
    double* raw = data_.release();
    nb::capsule owner(raw, [](void* p) noexcept { delete[] static_cast<double*>(p); });
    return Out1D<double>(raw, {n_}, owner);
  }

 private:
  std::unique_ptr<double[]> data_;
  std::size_t n_;
};

Output output_for(std::span<const double> x) { return Output(x.size()); }

template <typename T>
void bind_single_input(nb::module_& m, const char* name, const char* doc) {
  nb::class_<Py<T>>(m, name, doc)
      .def(nb::init<int>(), nb::arg("period"))
      .def(
          "update",
          [](Py<T>& s, double x) {
            check_idle(s.busy, kWhat);
            return s.update(x);
          },
          nb::arg("x"), "Commit one input and return the output (NaN during warm-up).")
      .def(
          "peek",
          [](const Py<T>& s, double x) {
            check_idle(s.busy, kWhat);
            return s.peek(x);
          },
          nb::arg("x"), "Return what ``update(x)`` would return, without changing state.")
      .def(
          "update_many",
          [](Py<T>& s, const AnyArray& xa) {
            const auto x = column<double>(xa, "x");
            Output out = output_for(x);
            {
              BusyGuard guard(s.busy, kWhat);
              nb::gil_scoped_release release;
              update_many(static_cast<T&>(s), x, out);
            }
            return std::move(out).to_numpy();
          },
          nb::arg("x").noconvert(),
          "Commit every input in order (GIL released); return the outputs, one per input.")
      .def_prop_ro("value", [](const Py<T>& s) { return s.value(); },
                   "The last committed output (NaN during warm-up).")
      .def_prop_ro("period", [](const Py<T>& s) { return s.period(); })
      .def_prop_ro("lookback", [](const Py<T>& s) { return s.lookback(); },
                   "Number of leading NaN outputs (TA-Lib's lookback).")
      .def_prop_ro("count", [](const Py<T>& s) { return s.count(); }, "Inputs committed so far.")
      .def(
          "reset",
          [](Py<T>& s) {
            check_idle(s.busy, kWhat);
            s.reset();
          },
          "Forget every input.");
}

}  // namespace

void bind_indicators(nb::module_& m) {
  bind_single_input<Sma>(m, "Sma", "Simple moving average, equal to TA-Lib's SMA.");
  bind_single_input<Ema>(
      m, "Ema", "Exponential moving average seeded by the SMA of the first ``period`` inputs, "
                "equal to TA-Lib's EMA.");
  bind_single_input<Rsi>(m, "Rsi", "Relative strength index (Wilder), equal to TA-Lib's RSI.");
  bind_single_input<StdDev>(
      m, "StdDev", "Rolling population standard deviation, equal to TA-Lib's STDDEV (nbdev 1).");
  bind_single_input<ZScore>(
      m, "ZScore",
      "Rolling z-score (x - SMA) / STDDEV over ``period`` inputs; NaN when the window is flat.");

  nb::class_<Py<Macd>>(m, "Macd", "MACD line, signal and histogram, equal to TA-Lib's MACD.")
      .def(nb::init<int, int, int>(), nb::arg("fast") = 12, nb::arg("slow") = 26,
           nb::arg("signal") = 9)
      .def(
          "update",
          [](Py<Macd>& s, double x) {
            check_idle(s.busy, kWhat);
            const MacdValue v = s.update(x);
            return Triple{v.macd, v.signal, v.hist};
          },
          nb::arg("x"), "Commit one input; return ``(macd, signal, hist)``.")
      .def(
          "peek",
          [](const Py<Macd>& s, double x) {
            check_idle(s.busy, kWhat);
            const MacdValue v = s.peek(x);
            return Triple{v.macd, v.signal, v.hist};
          },
          nb::arg("x"), "Return what ``update(x)`` would return, without changing state.")
      .def(
          "update_many",
          [](Py<Macd>& s, const AnyArray& xa) {
            const auto x = column<double>(xa, "x");
            Output a = output_for(x), b = output_for(x), c = output_for(x);
            {
              BusyGuard guard(s.busy, kWhat);
              nb::gil_scoped_release release;
              update_many(static_cast<Macd&>(s), x, a, b, c);
            }
            return ArrayTriple{std::move(a).to_numpy(), std::move(b).to_numpy(),
                               std::move(c).to_numpy()};
          },
          nb::arg("x").noconvert(),
          "Commit every input (GIL released); return ``(macd, signal, hist)`` arrays.")
      .def_prop_ro("value",
                   [](const Py<Macd>& s) {
                     const MacdValue v = s.value();
                     return Triple{v.macd, v.signal, v.hist};
                   })
      .def_prop_ro("fast", [](const Py<Macd>& s) { return s.fast(); })
      .def_prop_ro("slow", [](const Py<Macd>& s) { return s.slow(); })
      .def_prop_ro("signal", [](const Py<Macd>& s) { return s.signal_period(); })
      .def_prop_ro("lookback", [](const Py<Macd>& s) { return s.lookback(); })
      .def_prop_ro("count", [](const Py<Macd>& s) { return s.count(); })
      .def("reset", [](Py<Macd>& s) {
        check_idle(s.busy, kWhat);
        s.reset();
      });

  nb::class_<Py<BBands>>(m, "BBands",
                         "Bollinger bands around the SMA at ``k`` population standard deviations, "
                         "equal to TA-Lib's BBANDS.")
      .def(nb::init<int, double>(), nb::arg("period") = 20, nb::arg("k") = 2.0)
      .def(
          "update",
          [](Py<BBands>& s, double x) {
            check_idle(s.busy, kWhat);
            const Bands v = s.update(x);
            return Triple{v.upper, v.middle, v.lower};
          },
          nb::arg("x"), "Commit one input; return ``(upper, middle, lower)``.")
      .def(
          "peek",
          [](const Py<BBands>& s, double x) {
            check_idle(s.busy, kWhat);
            const Bands v = s.peek(x);
            return Triple{v.upper, v.middle, v.lower};
          },
          nb::arg("x"), "Return what ``update(x)`` would return, without changing state.")
      .def(
          "update_many",
          [](Py<BBands>& s, const AnyArray& xa) {
            const auto x = column<double>(xa, "x");
            Output a = output_for(x), b = output_for(x), c = output_for(x);
            {
              BusyGuard guard(s.busy, kWhat);
              nb::gil_scoped_release release;
              update_many(static_cast<BBands&>(s), x, a, b, c);
            }
            return ArrayTriple{std::move(a).to_numpy(), std::move(b).to_numpy(),
                               std::move(c).to_numpy()};
          },
          nb::arg("x").noconvert(),
          "Commit every input (GIL released); return ``(upper, middle, lower)`` arrays.")
      .def_prop_ro("value",
                   [](const Py<BBands>& s) {
                     const Bands v = s.value();
                     return Triple{v.upper, v.middle, v.lower};
                   })
      .def_prop_ro("period", [](const Py<BBands>& s) { return s.period(); })
      .def_prop_ro("k", [](const Py<BBands>& s) { return s.k(); })
      .def_prop_ro("lookback", [](const Py<BBands>& s) { return s.lookback(); })
      .def_prop_ro("count", [](const Py<BBands>& s) { return s.count(); })
      .def("reset", [](Py<BBands>& s) {
        check_idle(s.busy, kWhat);
        s.reset();
      });

  nb::class_<Py<Atr>>(m, "Atr", "Average true range (Wilder), equal to TA-Lib's ATR.")
      .def(nb::init<int>(), nb::arg("period") = 14)
      .def(
          "update",
          [](Py<Atr>& s, double high, double low, double close) {
            check_idle(s.busy, kWhat);
            return s.update(high, low, close);
          },
          nb::arg("high"), nb::arg("low"), nb::arg("close"),
          "Commit one bar; return the ATR (NaN during warm-up).")
      .def(
          "peek",
          [](const Py<Atr>& s, double high, double low, double close) {
            check_idle(s.busy, kWhat);
            return s.peek(high, low, close);
          },
          nb::arg("high"), nb::arg("low"), nb::arg("close"),
          "Return what ``update(high, low, close)`` would return, without changing state.")
      .def(
          "update_many",
          [](Py<Atr>& s, const AnyArray& ha, const AnyArray& la, const AnyArray& ca) {
            const auto h = column<double>(ha, "high");
            const auto l = column<double>(la, "low");
            const auto c = column<double>(ca, "close");
            check_len("low", l.size(), h.size());
            check_len("close", c.size(), h.size());
            Output out = output_for(h);
            {
              BusyGuard guard(s.busy, kWhat);
              nb::gil_scoped_release release;
              update_many(static_cast<Atr&>(s), h, l, c, out);
            }
            return std::move(out).to_numpy();
          },
          nb::arg("high").noconvert(), nb::arg("low").noconvert(), nb::arg("close").noconvert(),
          "Commit every bar (GIL released); return the outputs.")
      .def_prop_ro("value", [](const Py<Atr>& s) { return s.value(); })
      .def_prop_ro("period", [](const Py<Atr>& s) { return s.period(); })
      .def_prop_ro("lookback", [](const Py<Atr>& s) { return s.lookback(); })
      .def_prop_ro("count", [](const Py<Atr>& s) { return s.count(); })
      .def("reset", [](Py<Atr>& s) {
        check_idle(s.busy, kWhat);
        s.reset();
      });

  nb::class_<Py<Vwap>>(m, "Vwap",
                       "Session VWAP: sum(price*size)/sum(size) since the session start (UTC "
                       "midnight unless ``set_day_boundaries``). Trades stamped before the current "
                       "session are ignored.")
      .def(nb::init<>())
      .def(
          "update",
          [](Py<Vwap>& s, double price, double size, std::int64_t ts_event) {
            check_idle(s.busy, kWhat);
            return s.update(price, size, ts_event);
          },
          nb::arg("price"), nb::arg("size"), nb::arg("ts_event"),
          "Commit one trade; return the session VWAP (NaN until the session has volume).")
      .def(
          "peek",
          [](const Py<Vwap>& s, double price, double size, std::int64_t ts_event) {
            check_idle(s.busy, kWhat);
            return s.peek(price, size, ts_event);
          },
          nb::arg("price"), nb::arg("size"), nb::arg("ts_event"),
          "Return what ``update`` would return, without changing state.")
      .def(
          "update_many",
          [](Py<Vwap>& s, const AnyArray& pa, const AnyArray& sa, const AnyArray& ta) {
            const auto p = column<double>(pa, "price");
            const auto q = column<double>(sa, "size");
            const auto t = column<std::int64_t>(ta, "ts_event");
            check_len("size", q.size(), p.size());
            check_len("ts_event", t.size(), p.size());
            Output out = output_for(p);
            {
              BusyGuard guard(s.busy, kWhat);
              nb::gil_scoped_release release;
              update_many(static_cast<Vwap&>(s), p, q, t, out);
            }
            return std::move(out).to_numpy();
          },
          nb::arg("price").noconvert(), nb::arg("size").noconvert(),
          nb::arg("ts_event").noconvert(), "Commit every trade (GIL released); return the outputs.")
      .def(
          "set_day_boundaries",
          [](Py<Vwap>& s, const AnyArray& starts) {
            check_idle(s.busy, kWhat);
            const auto st = column<std::int64_t>(starts, "starts");
            s.set_day_boundaries(std::vector<std::int64_t>(st.begin(), st.end()));
          },
          nb::arg("starts").noconvert(),
          "Start sessions at these times (UTC ns, strictly increasing) instead of UTC midnight.")
      .def_prop_ro("value", [](const Py<Vwap>& s) { return s.value(); })
      .def_prop_ro("lookback", [](const Py<Vwap>& s) { return s.lookback(); })
      .def("reset", [](Py<Vwap>& s) {
        check_idle(s.busy, kWhat);
        s.reset();
      });
}

}  // namespace tickserver::py
