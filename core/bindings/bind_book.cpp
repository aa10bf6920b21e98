// Python bindings of the standalone L2 order book (single-call and batch paths).
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "bindings.hpp"
#include "tickserver/order_book.hpp"

namespace nb = nanobind;

namespace tickserver::py {

namespace {

struct BookError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void raise_status(BookStatus s) {
  throw BookError(std::string("book update rejected: ") + to_string(s) + " (code " +
                  std::to_string(static_cast<int>(s)) + ")");
}

}  // namespace

void bind_book(nb::module_& m) {
  nb::exception<BookError>(m, "BookError", PyExc_ValueError);

  m.def("book_status_name", [](int code) { return to_string(static_cast<BookStatus>(code)); },
        nb::arg("code"), "Describe a book status code (as returned in rejected-row reasons).");

  nb::class_<OrderBook>(m, "OrderBook", "An L2 order book for one instrument.")
      .def(nb::init<double>(), nb::arg("tick_size") = 0.0001)
      .def(
          "apply",
          [](OrderBook& b, std::uint8_t side, double price, double size, std::uint64_t seq) {
            const BookStatus s = b.apply(side, price, size, seq);
            if (!applied(s)) raise_status(s);
            return static_cast<int>(s);
          },
          nb::arg("side"), nb::arg("price"), nb::arg("size"), nb::arg("seq") = 0,
          "Set the level at ``price`` on ``side`` (0 bid, 1 ask) to ``size``; size 0 deletes it.\n\n"
          "Return 0, or 1 when the sequence number skipped ahead (applied, gap counted). Raise\n"
          "BookError, leaving the book unchanged, for a crossed result, a bad price or size,\n"
          "an off-tick price, a stale sequence number or a delete of an absent level.")
      .def(
          "apply_deltas",
          [](OrderBook& b, const AnyArray& side_a, const AnyArray& price_a,
             const AnyArray& size_a, const AnyArray& seq_a, bool checked) {
            const auto side = column<std::uint8_t>(side_a, "side");
            const auto price = column<double>(price_a, "price");
            const auto size = column<double>(size_a, "size");
            const auto seq = column<std::uint64_t>(seq_a, "seq");
            const std::size_t n = side.size();
            check_len("price", price.size(), n);
            check_len("size", size.size(), n);
            check_len("seq", seq.size(), n);
            std::vector<std::int64_t> rows;
            std::vector<std::uint8_t> reasons;
            {
              nb::gil_scoped_release release;
              const auto* sd = side.data();  // spans stay valid: the arrays are held by Python
              const auto* px = price.data();
              const auto* sz = size.data();
              const auto* sq = seq.data();
              if (checked) {
                for (std::size_t i = 0; i < n; ++i) {
                  const BookStatus s = b.apply(sd[i], px[i], sz[i], sq[i]);
                  if (!applied(s)) {
                    rows.push_back(static_cast<std::int64_t>(i));
                    reasons.push_back(static_cast<std::uint8_t>(s));
                  }
                }
              } else {
                for (std::size_t i = 0; i < n; ++i) b.apply_unchecked(sd[i], px[i], sz[i], sq[i]);
              }
            }
            return std::make_pair(to_numpy(std::move(rows)), to_numpy(std::move(reasons)));
          },
          nb::arg("side").noconvert(), nb::arg("price").noconvert(), nb::arg("size").noconvert(),
          nb::arg("seq").noconvert(), nb::arg("checked") = true,
          "Apply many deltas with the GIL released.\n\n"
          "Return ``(rejected_rows, reasons)``: indices of rows that were rejected (the book is\n"
          "unchanged by them) and their status codes (see ``book_status_name``).")
      .def(
          "snapshot",
          [](OrderBook& b, const AnyArray& bid_px, const AnyArray& bid_sz, const AnyArray& ask_px,
             const AnyArray& ask_sz, std::uint64_t seq) {
            const auto bp = column<double>(bid_px, "bid_px");
            const auto bs = column<double>(bid_sz, "bid_sz");
            const auto ap = column<double>(ask_px, "ask_px");
            const auto as = column<double>(ask_sz, "ask_sz");
            check_len("bid_sz", bs.size(), bp.size());
            check_len("ask_sz", as.size(), ap.size());
            const BookStatus s = b.snapshot(bp, bs, ap, as, seq);
            if (!applied(s)) raise_status(s);
          },
          nb::arg("bid_px").noconvert(), nb::arg("bid_sz").noconvert(),
          nb::arg("ask_px").noconvert(), nb::arg("ask_sz").noconvert(), nb::arg("seq") = 0,
          "Replace the whole book (all-or-nothing; BookError leaves it unchanged).")
      .def(
          "top",
          [](const OrderBook& b, std::size_t depth) {
            std::vector<double> bp(depth), bs(depth), ap(depth), as(depth);
            bp.resize(b.top(Side::Bid, depth, bp.data(), bs.data()));
            bs.resize(bp.size());
            ap.resize(b.top(Side::Ask, depth, ap.data(), as.data()));
            as.resize(ap.size());
            return std::make_tuple(to_numpy(std::move(bp)), to_numpy(std::move(bs)),
                                   to_numpy(std::move(ap)), to_numpy(std::move(as)));
          },
          nb::arg("depth") = 10,
          "Return ``(bid_px, bid_sz, ask_px, ask_sz)`` of the best ``depth`` levels, best first.")
      .def("clear", &OrderBook::clear)
      .def_prop_ro("tick_size", &OrderBook::tick_size)
      .def_prop_ro("last_seq", &OrderBook::last_seq)
      .def_prop_ro("gaps", &OrderBook::gaps)
      .def_prop_ro("best_bid_px", &OrderBook::best_bid_px)
      .def_prop_ro("best_bid_sz", &OrderBook::best_bid_sz)
      .def_prop_ro("best_ask_px", &OrderBook::best_ask_px)
      .def_prop_ro("best_ask_sz", &OrderBook::best_ask_sz)
      .def_prop_ro("mid", &OrderBook::mid)
      .def_prop_ro("spread", &OrderBook::spread)
      .def_prop_ro("microprice", &OrderBook::microprice)
      .def_prop_ro("imbalance", &OrderBook::imbalance)
      .def_prop_ro("bid_depth", [](const OrderBook& b) { return b.depth(Side::Bid); })
      .def_prop_ro("ask_depth", [](const OrderBook& b) { return b.depth(Side::Ask); });
}

}  // namespace tickserver::py
