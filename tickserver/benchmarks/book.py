"""``tickserver bench book``: nanoseconds per L2 delta, tickserver beside peer order books.

Every system applies the same stream (see ``_book_stream``: ~45 levels per side, mostly
near-touch size updates, some inserts and deletes, never crossed) from an empty book. The
stream is cut into segments of ``--check-every`` deltas; each segment is timed on its own and,
between segments (untimed), the top 10 levels of every book are compared with the stream's
own reference book. A mismatch stops the benchmark with an error: the figures are only
reported for books proven to hold the same state.

Timing: each segment's inputs (Python lists, prebuilt nautilus deltas) are built just before
the segment, untimed, so no million-object heap sits around. The garbage collector is
collected once before each run and disabled during it, as ``harness.measure`` does per call;
``measure`` itself times the one-shot case (building nautilus deltas alone), because its
``gc.collect()`` per call would cost 3-150 ms at each of the 100 checkpoints.

Systems: tickserver's batch call (``apply_deltas``, checked and unchecked) and single call
(``apply``, one Python call per delta); nautilus-trader's L2 ``OrderBook`` applying
``OrderBookDelta`` objects built beforehand, and the same including building each delta
(``Price``, ``Quantity``, ``BookOrder``, ``OrderBookDelta``); order-book's C ``OrderBook``
(dict-style set/delete); a plain-Python book on two ``sortedcontainers.SortedDict``.

A second case, ``l2_delta+bbo``, applies each delta and then reads the best bid and ask
prices, as a consumer reacting to every update would, for the per-delta Python APIs. It shows
costs a write-only loop hides: order-book sorts a side lazily, on the first read after a
level was added or removed.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tickserver.benchmarks._book_stream import (
    ADD,
    DELETE,
    UPDATE,
    BookStream,
    TopLevels,
    make_stream,
)
from tickserver.benchmarks.harness import Report, measure

NAME = "book"
HELP = "ns per L2 delta: tickserver batch/single call vs nautilus-trader, order-book, SortedDict"

CASE = "l2_delta"
CASE_BBO = "l2_delta+bbo"
BASELINE = "tickserver-batch"
PRICE_PRECISION = 2  # the stream's tick is 0.01
SIZE_PRECISION = 0


class BookMismatchError(RuntimeError):
    """A system's book differs from the reference book at a checkpoint."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--deltas", type=int, default=1_000_000, help="deltas in the stream")
    p.add_argument("--levels", type=int, default=45, help="levels per side the stream keeps")
    p.add_argument("--repeat", type=int, default=5, help="runs per system (median reported)")
    p.add_argument("--check-every", type=int, default=10_000, help="deltas between checkpoints")
    p.add_argument("--seed", type=int, default=20240601, help="stream seed")
    p.add_argument(
        "--systems", default="", help="comma-separated subset of systems to run (default: all)"
    )
    p.add_argument(
        "--quick", action="store_true", help="100k deltas, 1 run (smoke test; figures are noisy)"
    )


@dataclass
class System:
    """One book implementation driven segment by segment."""

    name: str
    new: Callable[[], Any]
    """Build an empty book (state passed to the other callables)."""
    segment: Callable[[Any, int, int], Callable[[], Any]]
    """``segment(state, lo, hi)`` -> the timed call applying deltas ``lo:hi`` (built untimed)."""
    top: Callable[[Any], TopLevels]
    """Top levels (ticks, size), best first, untimed."""
    note: str = ""
    case: str = CASE
    one_shot: dict[str, Callable[[int], float]] = field(default_factory=dict)
    """Further cases: ``name -> fn(repeat)`` returning ns per op (timed with ``measure``)."""


def _ticks(price: float, tick: float) -> int:
    return round(price / tick)


def _rows(stream: BookStream, lo: int, hi: int, *cols: str) -> list[tuple[Any, ...]]:
    """Rows ``lo:hi`` of the named stream columns as tuples of Python scalars."""
    return list(zip(*(getattr(stream, c)[lo:hi].tolist() for c in cols), strict=True))


def _tickserver(stream: BookStream, core: Any) -> list[System]:
    side, price, size, seq = stream.side, stream.price, stream.size, stream.seq
    tick, n = stream.tick_size, stream.top_n

    def new() -> Any:
        return core.OrderBook(tick)

    def top(book: Any) -> TopLevels:
        bp, bs, ap, as_ = book.top(n)
        return (
            tuple((_ticks(p, tick), s) for p, s in zip(bp.tolist(), bs.tolist(), strict=True)),
            tuple((_ticks(p, tick), s) for p, s in zip(ap.tolist(), as_.tolist(), strict=True)),
        )

    def batch(checked: bool) -> Callable[[Any, int, int], Callable[[], Any]]:
        def segment(book: Any, lo: int, hi: int) -> Callable[[], Any]:
            cols = (side[lo:hi], price[lo:hi], size[lo:hi], seq[lo:hi])

            def call() -> None:
                rejected, _ = book.apply_deltas(*cols, checked)
                if len(rejected):
                    raise BookMismatchError(f"tickserver rejected rows {rejected[:5] + lo}")

            return call

        return segment

    def single(book: Any, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size", "seq")
        apply = book.apply

        def call() -> None:
            for s, p, z, q in seg:
                apply(s, p, z, q)

        return call

    def single_bbo(book: Any, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size", "seq")
        apply = book.apply

        def call() -> None:
            for s, p, z, q in seg:
                apply(s, p, z, q)
                book.best_bid_px  # noqa: B018
                book.best_ask_px  # noqa: B018

        return call

    return [
        System(BASELINE, new, batch(True), top, "apply_deltas(checked=True), GIL released"),
        System("tickserver-batch-unchecked", new, batch(False), top, "apply_deltas(checked=False)"),
        System("tickserver-apply", new, single, top, "one apply() call per delta"),
        System("tickserver-apply", new, single_bbo, top, case=CASE_BBO),
    ]


def _nautilus(stream: BookStream) -> list[System]:
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.data import BookOrder, OrderBookDelta
    from nautilus_trader.model.enums import BookAction, BookType, OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity

    iid = InstrumentId.from_str("AAPL.XNAS")
    actions = {ADD: BookAction.ADD, UPDATE: BookAction.UPDATE, DELETE: BookAction.DELETE}
    sides = (OrderSide.BUY, OrderSide.SELL)
    tick, n = stream.tick_size, stream.top_n

    def rows(lo: int, hi: int) -> list[tuple[Any, ...]]:
        # The feed handler's decoding (venue codes -> nautilus enums) is not counted.
        return [
            (actions[a], sides[s], p, z, q)
            for a, s, p, z, q in _rows(stream, lo, hi, "action", "side", "price", "size", "seq")
        ]

    def new() -> Any:
        return OrderBook(iid, BookType.L2_MBP)

    def top(book: Any) -> TopLevels:
        def levels(ls: list[Any]) -> tuple[tuple[int, float], ...]:
            return tuple((_ticks(lv.price.as_double(), tick), lv.size()) for lv in ls[:n])

        return levels(book.bids()), levels(book.asks())

    def build(a: Any, s: Any, p: float, z: float, q: int) -> Any:
        order = BookOrder(s, Price(p, PRICE_PRECISION), Quantity(z, SIZE_PRECISION), 0)
        return OrderBookDelta(iid, a, order, 0, q, 0, 0)

    def prebuilt(book: Any, lo: int, hi: int) -> Callable[[], Any]:
        deltas = [build(*r) for r in rows(lo, hi)]
        apply = book.apply_delta

        def call() -> None:
            for d in deltas:
                apply(d)

        return call

    def prebuilt_bbo(book: Any, lo: int, hi: int) -> Callable[[], Any]:
        deltas = [build(*r) for r in rows(lo, hi)]
        apply, best_bid, best_ask = book.apply_delta, book.best_bid_price, book.best_ask_price

        def call() -> None:
            for d in deltas:
                apply(d)
                best_bid()
                best_ask()

        return call

    def with_build(book: Any, lo: int, hi: int) -> Callable[[], Any]:
        seg = rows(lo, hi)
        apply = book.apply_delta
        prec_p, prec_z = PRICE_PRECISION, SIZE_PRECISION

        def call() -> None:
            for a, s, p, z, q in seg:
                order = BookOrder(s, Price(p, prec_p), Quantity(z, prec_z), 0)
                apply(OrderBookDelta(iid, a, order, 0, q, 0, 0))

        return call

    def build_cost(repeat: int) -> float:
        # The loop of with_build without apply_delta.
        seg = rows(0, min(len(stream), 100_000))
        prec_p, prec_z = PRICE_PRECISION, SIZE_PRECISION

        def call() -> None:
            for a, s, p, z, q in seg:
                order = BookOrder(s, Price(p, prec_p), Quantity(z, prec_z), 0)
                OrderBookDelta(iid, a, order, 0, q, 0, 0)

        return measure(call, ops=len(seg), repeat=repeat, warmup=1)

    return [
        System(
            "nautilus",
            new,
            prebuilt,
            top,
            "apply_delta() of OrderBookDelta built untimed",
            one_shot={"delta_build": build_cost},
        ),
        System("nautilus+build", new, with_build, top, "building the OrderBookDelta + apply_delta"),
        System("nautilus", new, prebuilt_bbo, top, case=CASE_BBO),
    ]


def _order_book(stream: BookStream) -> list[System]:
    import order_book

    tick, n = stream.tick_size, stream.top_n

    def top(ob: Any) -> TopLevels:
        def levels(side: Any) -> tuple[tuple[int, float], ...]:
            return tuple((_ticks(p, tick), s) for p, s in side.to_list()[:n])

        return levels(ob.bids), levels(ob.asks)

    def segment(ob: Any, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size")
        bids, asks = ob.bids, ob.asks

        def call() -> None:
            for s, p, z in seg:
                levels = bids if s == 0 else asks
                if z:
                    levels[p] = z
                else:
                    del levels[p]

        return call

    def segment_bbo(ob: Any, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size")
        bids, asks = ob.bids, ob.asks
        bid_at, ask_at = bids.index, asks.index

        def call() -> None:
            for s, p, z in seg:
                levels = bids if s == 0 else asks
                if z:
                    levels[p] = z
                else:
                    del levels[p]
                if bids:  # an empty side raises IndexError
                    bid_at(0)
                if asks:
                    ask_at(0)

        return call

    return [
        System(
            "order-book",
            order_book.OrderBook,
            segment,
            top,
            "bids[price] = size / del; sorts a side lazily at the next read (see l2_delta+bbo)",
        ),
        System("order-book", order_book.OrderBook, segment_bbo, top, case=CASE_BBO),
    ]


class SortedDictBook:
    """An L2 book in plain Python on two ``sortedcontainers.SortedDict`` (price -> size)."""

    def __init__(self) -> None:
        from sortedcontainers import SortedDict

        self.bids: Any = SortedDict()
        self.asks: Any = SortedDict()

    def apply(self, side: int, price: float, size: float) -> None:
        """Set the level at ``price`` to ``size``; size 0 deletes it."""
        levels = self.bids if side == 0 else self.asks
        if size:
            levels[price] = size
        else:
            del levels[price]

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """Best ``n`` levels per side, best first."""
        bids = self.bids.items()
        return [bids[-1 - i] for i in range(min(n, len(bids)))], list(self.asks.items()[:n])


def _sorted_dict(stream: BookStream) -> list[System]:
    importlib.import_module("sortedcontainers")
    tick, n = stream.tick_size, stream.top_n

    def top(book: SortedDictBook) -> TopLevels:
        bids, asks = book.top(n)
        return (
            tuple((_ticks(p, tick), s) for p, s in bids),
            tuple((_ticks(p, tick), s) for p, s in asks),
        )

    def segment(book: SortedDictBook, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size")
        apply = book.apply

        def call() -> None:
            for s, p, z in seg:
                apply(s, p, z)

        return call

    def segment_bbo(book: SortedDictBook, lo: int, hi: int) -> Callable[[], Any]:
        seg = _rows(stream, lo, hi, "side", "price", "size")
        apply, bids, asks = book.apply, book.bids, book.asks
        best_bid, best_ask = bids.peekitem, asks.peekitem

        def call() -> None:
            for s, p, z in seg:
                apply(s, p, z)
                if bids:  # an empty side raises IndexError
                    best_bid(-1)
                if asks:
                    best_ask(0)

        return call

    return [
        System("sortedcontainers", SortedDictBook, segment, top, "plain-Python apply()"),
        System("sortedcontainers", SortedDictBook, segment_bbo, top, case=CASE_BBO),
    ]


def check_top(system: str, got: TopLevels, want: TopLevels, after: int) -> None:
    """Raise BookMismatchError unless ``got`` equals the reference ``want``."""
    if got != want:
        side = "bids" if got[0] != want[0] else "asks"
        i = 0 if side == "bids" else 1
        raise BookMismatchError(
            f"{system}: top {len(want[i])} {side} differ from the reference after {after:,} "
            f"deltas:\n  got  {got[i]}\n  want {want[i]}"
        )


def run_system(system: System, stream: BookStream) -> tuple[float, int]:
    """Apply the whole stream once; return (ns per delta, checkpoints verified)."""
    book = system.new()
    step, n = stream.checkpoint_every, len(stream)
    total_ns = 0
    checks = 0
    gc.collect()
    gc.disable()
    try:
        for k, lo in enumerate(range(0, n, step)):
            hi = min(n, lo + step)
            call = system.segment(book, lo, hi)
            t0 = time.perf_counter_ns()
            call()
            total_ns += time.perf_counter_ns() - t0
            if hi - lo == step:
                check_top(f"{system.name}/{system.case}", system.top(book), stream.expected[k], hi)
                checks += 1
    finally:
        gc.enable()
    return total_ns / n, checks


def _systems(stream: BookStream, wanted: set[str], report: Report) -> list[System]:
    core = importlib.import_module("tickserver._core")
    systems = _tickserver(stream, core)
    for loader, label in (
        (_nautilus, "nautilus-trader"),
        (_order_book, "order-book"),
        (_sorted_dict, "sortedcontainers"),
    ):
        try:
            systems.extend(loader(stream))
        except ImportError as exc:
            report.notes.append(f"{label} skipped: {exc} (install tickserver[bench])")
    if wanted:
        unknown = wanted - {s.name for s in systems}
        if unknown:
            raise SystemExit(f"unknown system(s): {', '.join(sorted(unknown))}")
        systems = [s for s in systems if s.name in wanted]
    return systems


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("nautilus_trader", "order-book", "sortedcontainers", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def run(args: argparse.Namespace) -> Report:
    """Generate the stream, run every system ``--repeat`` times (interleaved), report medians."""
    n_deltas, repeat = (100_000, 1) if args.quick else (args.deltas, args.repeat)
    stream = make_stream(
        n_deltas, seed=args.seed, levels=args.levels, checkpoint_every=args.check_every
    )
    report = Report(bench=NAME, unit="ns", baseline=BASELINE)
    wanted = {s.strip() for s in args.systems.split(",") if s.strip()}
    systems = _systems(stream, wanted, report)
    samples: dict[tuple[str, str], list[float]] = {(s.name, s.case): [] for s in systems}
    checks: dict[str, int] = {f"{s.name}/{s.case}": 0 for s in systems}
    # Round-robin over systems so that load from other processes spreads over all of them.
    for _ in range(repeat):
        for system in systems:
            ns, verified = run_system(system, stream)
            samples[system.name, system.case].append(ns)
            checks[f"{system.name}/{system.case}"] += verified
    for system in systems:
        report.add(system.name, system.case, statistics.median(samples[system.name, system.case]))
    for system in systems:
        for case, fn in system.one_shot.items():
            report.add(system.name, case, fn(repeat))
    counts = np.bincount(stream.action, minlength=3)
    report.extra = {
        "deltas": len(stream),
        "repeats": repeat,
        "stream": (
            f"tick {stream.tick_size}, mean {stream.mean_depth:.1f} levels/side, "
            f"{counts[UPDATE] / len(stream):.0%} updates, {counts[ADD] / len(stream):.0%} inserts, "
            f"{counts[DELETE] / len(stream):.0%} deletes"
        ),
        "checkpoints": {
            "every": stream.checkpoint_every,
            "levels": stream.top_n,
            "verified": checks,
            "expected_per_system": len(stream.expected) * repeat,
        },
        "versions": _versions(),
    }
    report.notes.extend(f"{s.name}: {s.note}" for s in systems if s.note)
    return report
