// Python bindings of the simulated market generator.
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <tuple>
#include <vector>

#include "bindings.hpp"
#include "tickserver/sim.hpp"

namespace nb = nanobind;

namespace tickserver::py {

void bind_sim(nb::module_& m) {
  nb::class_<MarketSim>(m, "MarketSim",
                        "Deterministic simulated market: trades and consistent L2 deltas.")
      .def(
          "__init__",
          [](MarketSim* self, std::uint64_t seed, std::vector<std::uint32_t> symbol_ids,
             std::vector<double> prices, std::vector<double> tick_sizes, double trade_prob,
             double move_prob, double tick_vol, double vol_persistence, double vol_of_vol,
             double jump_prob, double jump_ticks, std::size_t levels, double lot) {
            SimParams p;
            p.trade_prob = trade_prob;
            p.move_prob = move_prob;
            p.tick_vol = tick_vol;
            p.vol_persistence = vol_persistence;
            p.vol_of_vol = vol_of_vol;
            p.jump_prob = jump_prob;
            p.jump_ticks = jump_ticks;
            p.levels = levels;
            p.lot = lot;
            new (self) MarketSim(seed, std::move(symbol_ids), std::move(prices),
                                 std::move(tick_sizes), p);
          },
          nb::arg("seed"), nb::arg("symbol_ids"), nb::arg("prices"), nb::arg("tick_sizes"),
          nb::arg("trade_prob") = 0.25, nb::arg("move_prob") = 0.10, nb::arg("tick_vol") = 1.0,
          nb::arg("vol_persistence") = 0.995, nb::arg("vol_of_vol") = 0.08,
          nb::arg("jump_prob") = 0.0005, nb::arg("jump_ticks") = 12.0, nb::arg("levels") = 10,
          nb::arg("lot") = 100.0)
      .def(
          "generate",
          [](MarketSim& sim, std::size_t n, std::int64_t ts_start, std::int64_t ts_step) {
            SimOutput o;
            {
              nb::gil_scoped_release release;
              sim.generate(n, ts_start, ts_step, o);
            }
            nb::dict trades;
            trades["symbol_id"] = to_numpy(std::move(o.t_symbol));
            trades["ts_event"] = to_numpy(std::move(o.t_ts));
            trades["price"] = to_numpy(std::move(o.t_price));
            trades["size"] = to_numpy(std::move(o.t_size));
            trades["flags"] = to_numpy(std::move(o.t_flags));
            nb::dict deltas;
            deltas["symbol_id"] = to_numpy(std::move(o.d_symbol));
            deltas["ts_event"] = to_numpy(std::move(o.d_ts));
            deltas["side"] = to_numpy(std::move(o.d_side));
            deltas["price"] = to_numpy(std::move(o.d_price));
            deltas["size"] = to_numpy(std::move(o.d_size));
            deltas["seq"] = to_numpy(std::move(o.d_seq));
            return std::make_tuple(trades, deltas);
          },
          nb::arg("n"), nb::arg("ts_start"), nb::arg("ts_step"),
          "Generate ``n`` events stamped ``ts_start + j * ts_step``; return ``(trades, deltas)``\n"
          "as dicts of numpy columns. Deltas carry per-symbol book sequence numbers.")
      .def(
          "book",
          [](const MarketSim& sim, std::size_t i) {
            std::vector<double> bp, bs, ap, as;
            sim.book(i, bp, bs, ap, as);
            return std::make_tuple(to_numpy(std::move(bp)), to_numpy(std::move(bs)),
                                   to_numpy(std::move(ap)), to_numpy(std::move(as)));
          },
          nb::arg("index"),
          "Current book of the ``index``-th symbol as ``(bid_px, bid_sz, ask_px, ask_sz)``,\n"
          "best first (a snapshot the following deltas build on).")
      .def("book_seq", &MarketSim::book_seq, nb::arg("index"),
           "Book sequence number of the last delta generated for the ``index``-th symbol.")
      .def("__len__", &MarketSim::size);
}

}  // namespace tickserver::py
