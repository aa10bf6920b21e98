// Python bindings of the standalone L2 order book (single-call and batch paths).
#include <nanobind/stl/pair.h>
#include <nanobind/stl/tuple.h>

#include <algorithm>
#include <atomic>
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

// The Python OrderBook: the C++ book plus a flag set while apply_deltas runs without the GIL.
// Every other method holds the GIL and checks the flag first, so a book shared with a worker
// thread (asyncio.to_thread) raises instead of racing a batch that is resizing its vectors.
struct PyBook {
  explicit PyBook(double tick_size) : book(tick_size) {}
  OrderBook book;
  std::atomic<bool> busy{false};

  OrderBook& get() {
    if (busy.load(std::memory_order_acquire)) [[unlikely]] {
      throw std::runtime_error("OrderBook is in use by apply_deltas in another thread");
    }
    return book;
  }
};

// Marks a PyBook busy for its lifetime; acquired and released while holding the GIL.
class BatchGuard {
 public:
  explicit BatchGuard(PyBook& b) : b_(b) {
    if (b_.busy.exchange(true, std::memory_order_acq_rel)) {
      throw std::runtime_error("OrderBook is in use by apply_deltas in another thread");
    }
  }
  ~BatchGuard() { b_.busy.store(false, std::memory_order_release); }
  BatchGuard(const BatchGuard&) = delete;
  BatchGuard& operator=(const BatchGuard&) = delete;

 private:
  PyBook& b_;
};

template <typename T>
auto getter(T (OrderBook::*fn)() const noexcept) {
  return [fn](PyBook& b) { return (b.get().*fn)(); };
}

}  // namespace

void bind_book(nb::module_& m) {
  nb::exception<BookError>(m, "BookError", PyExc_ValueError);

  m.def("book_status_name", [](int code) { return to_string(static_cast<BookStatus>(code)); },
        nb::arg("code"), "Describe a book status code (as returned in rejected-row reasons).");

  nb::class_<PyBook>(m, "OrderBook",
                    "An L2 order book for one instrument.\n\n"
                    "Prices are kept on the tick grid: a price must be a positive multiple of\n"
                    "``tick_size`` (within floating-point noise). A locked result (bid == ask) is\n"
                    "rejected as crossed. ``seq`` 0 means unsequenced. Raise ValueError for a\n"
                    "``tick_size`` that is not finite and positive.")
      .def(nb::init<double>(), nb::arg("tick_size") = 0.0001)
      .def(
          "apply",
          [](PyBook& pb, std::uint8_t side, double price, double size, std::uint64_t seq) {
            const BookStatus s = pb.get().apply(side, price, size, seq);
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
          [](PyBook& pb, const AnyArray& side_a, const AnyArray& price_a,
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
              const BatchGuard guard(pb);
              nb::gil_scoped_release release;  // the arrays are held by the caller meanwhile
              pb.book.apply_batch(side, price, size, seq, checked, rows, reasons);
            }
            return std::make_pair(to_numpy(std::move(rows)), to_numpy(std::move(reasons)));
          },
          nb::arg("side").noconvert(), nb::arg("price").noconvert(), nb::arg("size").noconvert(),
          nb::arg("seq").noconvert(), nb::arg("checked") = true,
          "Apply many deltas with the GIL released.\n\n"
          "With ``checked`` each row is validated like ``apply``. Return ``(rejected_rows,\n"
          "reasons)``: indices of the rows that were rejected (the book is unchanged by them)\n"
          "and their status codes (see ``book_status_name``); the other rows are applied in\n"
          "order. ``checked=False`` skips validation and the cross check (for pre-validated\n"
          "data: garbage makes a meaningless book) and returns empty arrays. Raise TypeError\n"
          "or ValueError naming the argument for a wrong dtype, shape or length, and\n"
          "RuntimeError if another thread is applying a batch to this book.")
      .def(
          "snapshot",
          [](PyBook& pb, const AnyArray& bid_px, const AnyArray& bid_sz, const AnyArray& ask_px,
             const AnyArray& ask_sz, std::uint64_t seq) {
            const auto bp = column<double>(bid_px, "bid_px");
            const auto bs = column<double>(bid_sz, "bid_sz");
            const auto ap = column<double>(ask_px, "ask_px");
            const auto as = column<double>(ask_sz, "ask_sz");
            check_len("bid_sz", bs.size(), bp.size());
            check_len("ask_sz", as.size(), ap.size());
            const BookStatus s = pb.get().snapshot(bp, bs, ap, as, seq);
            if (!applied(s)) raise_status(s);
          },
          nb::arg("bid_px").noconvert(), nb::arg("bid_sz").noconvert(),
          nb::arg("ask_px").noconvert(), nb::arg("ask_sz").noconvert(), nb::arg("seq") = 0,
          "Replace the whole book, levels in any order (all-or-nothing: BookError leaves it\n"
          "unchanged). Zero-size levels are skipped; a price listed twice on a side, a crossed\n"
          "or locked result, a bad or off-tick price, a bad size or a stale ``seq`` raise.")
      .def(
          "top",
          [](PyBook& pb, std::size_t depth) {
            const OrderBook& b = pb.get();
            const std::size_t nb = std::min(depth, b.depth(Side::Bid));
            const std::size_t na = std::min(depth, b.depth(Side::Ask));
            std::vector<double> bp(nb), bs(nb), ap(na), as(na);
            b.top(Side::Bid, nb, bp.data(), bs.data());
            b.top(Side::Ask, na, ap.data(), as.data());
            return std::make_tuple(to_numpy(std::move(bp)), to_numpy(std::move(bs)),
                                   to_numpy(std::move(ap)), to_numpy(std::move(as)));
          },
          nb::arg("depth") = 10,
          "Return ``(bid_px, bid_sz, ask_px, ask_sz)`` of the best ``depth`` levels, best first.")
      .def(
          "clear", [](PyBook& pb) { pb.get().clear(); },
          "Remove every level (``last_seq``, ``gaps`` and ``snapshots`` are kept).")
      .def_prop_ro("tick_size", getter(&OrderBook::tick_size))
      .def_prop_ro("last_seq", getter(&OrderBook::last_seq))
      .def_prop_ro("gaps", getter(&OrderBook::gaps))
      .def_prop_ro("snapshots", getter(&OrderBook::snapshots))
      .def_prop_ro("best_bid_px", getter(&OrderBook::best_bid_px))
      .def_prop_ro("best_bid_sz", getter(&OrderBook::best_bid_sz))
      .def_prop_ro("best_ask_px", getter(&OrderBook::best_ask_px))
      .def_prop_ro("best_ask_sz", getter(&OrderBook::best_ask_sz))
      .def_prop_ro("mid", getter(&OrderBook::mid))
      .def_prop_ro("spread", getter(&OrderBook::spread))
      .def_prop_ro("microprice", getter(&OrderBook::microprice))
      .def_prop_ro("imbalance", getter(&OrderBook::imbalance))
      .def_prop_ro("bid_depth", [](PyBook& pb) { return pb.get().depth(Side::Bid); })
      .def_prop_ro("ask_depth", [](PyBook& pb) { return pb.get().depth(Side::Ask); });
}

}  // namespace tickserver::py
