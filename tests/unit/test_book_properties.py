"""Property tests: the C++ book equals a plain-dict reference model on random operation streams.

Each generated price knows what it is (on the grid at n ticks, off the grid, not finite, …), so
the model's expectations come from how the input was made, not from re-implementing the
book's tick rounding. Operations go through the single-call path, the checked batch, the
unchecked batch (rows the model accepts), snapshots and clear; after every operation the
whole observable state is compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickserver._core import BookError, OrderBook, book_status_name

OK, GAP, STALE, CROSSED, BAD_PRICE, BAD_SIZE, BAD_SIDE, OFF_TICK, NO_LEVEL, DUPLICATE = range(10)
TICKS = (0.01, 0.0001, 0.25)
BASES = (100, 10_000, 1_000_000)  # tick counts near the touch: small, $100 at 0.01, $100 at 1e-4


@dataclass(frozen=True)
class PriceCase:
    """A price and what it is: on the grid at ``ticks``, or invalid with ``status``."""

    price: float
    ticks: int | None
    status: int = OK


@dataclass(frozen=True)
class Delta:
    side: int
    price: PriceCase
    size: float
    seq_mode: str  # "none", "next", "skip", "stale"
    seq_arg: int


@dataclass
class Model:
    """The book as two dicts ticks -> [price, size], with the documented rules."""

    bids: dict[int, list[float]] = field(default_factory=dict)
    asks: dict[int, list[float]] = field(default_factory=dict)
    last_seq: int = 0
    gaps: int = 0
    snapshots: int = 0

    def apply(self, side: int, pc: PriceCase, size: float, seq: int) -> int:
        if side not in (0, 1):
            return BAD_SIDE
        if pc.status == BAD_PRICE:
            return BAD_PRICE
        if not (math.isfinite(size) and size >= 0):
            return BAD_SIZE
        if seq != 0 and seq <= self.last_seq:
            return STALE
        if pc.status == OFF_TICK:
            return OFF_TICK
        assert pc.ticks is not None
        me = self.bids if side == 0 else self.asks
        if size == 0:
            if pc.ticks not in me:
                return NO_LEVEL
            del me[pc.ticks]
        elif pc.ticks in me:
            me[pc.ticks][1] = size
        else:
            if side == 0 and self.asks and pc.ticks >= min(self.asks):
                return CROSSED
            if side == 1 and self.bids and pc.ticks <= max(self.bids):
                return CROSSED
            me[pc.ticks] = [pc.price, size]
        if seq == 0:
            return OK
        gap = self.last_seq != 0 and seq != self.last_seq + 1
        self.last_seq = seq
        self.gaps += gap
        return GAP if gap else OK

    def snapshot(
        self, bids: list[tuple[PriceCase, float]], asks: list[tuple[PriceCase, float]], seq: int
    ) -> int:
        if seq != 0 and seq <= self.last_seq:
            return STALE
        new: list[dict[int, list[float]]] = []
        for levels in (bids, asks):
            for pc, size in levels:
                if pc.status == BAD_PRICE:
                    return BAD_PRICE
                if not (math.isfinite(size) and size >= 0):
                    return BAD_SIZE
                if pc.status == OFF_TICK:
                    return OFF_TICK
            ticks = [pc.ticks for pc, _ in levels]
            if len(set(ticks)) != len(ticks):
                return DUPLICATE
            new.append({pc.ticks: [pc.price, s] for pc, s in levels if s > 0 and pc.ticks})
        if new[0] and new[1] and max(new[0]) >= min(new[1]):
            return CROSSED
        self.bids, self.asks = new
        if seq != 0:
            self.last_seq = seq
        self.snapshots += 1
        return OK

    def top(self, n: int) -> tuple[list[float], list[float], list[float], list[float]]:
        b = sorted(self.bids.items(), reverse=True)[:n]
        a = sorted(self.asks.items())[:n]
        return (
            [v[0] for _, v in b],
            [v[1] for _, v in b],
            [v[0] for _, v in a],
            [v[1] for _, v in a],
        )

    def resolve_seq(self, mode: str, arg: int) -> int:
        if mode == "next":
            return self.last_seq + 1
        if mode == "skip":
            return self.last_seq + 2 + arg
        if mode == "stale":
            return max(0, self.last_seq - arg) if self.last_seq else 0
        return 0


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def assert_book_equals_model(book: OrderBook, model: Model) -> None:
    """Compare everything observable: all levels, best prices, stats, seq and counters."""
    got = tuple(arr.tolist() for arr in book.top(10_000))
    want = model.top(10_000)
    assert got == want
    assert tuple(a.tolist() for a in book.top(3)) == model.top(3)
    nan = math.nan
    bb, bs = (want[0][0], want[1][0]) if want[0] else (nan, nan)
    ba, as_ = (want[2][0], want[3][0]) if want[2] else (nan, nan)
    assert _same(book.best_bid_px, bb)
    assert _same(book.best_bid_sz, bs)
    assert _same(book.best_ask_px, ba)
    assert _same(book.best_ask_sz, as_)
    assert _same(book.mid, 0.5 * (bb + ba))
    assert _same(book.spread, ba - bb)
    assert _same(book.microprice, (bb * as_ + ba * bs) / (bs + as_))
    assert _same(book.imbalance, (bs - as_) / (bs + as_))
    assert (book.bid_depth, book.ask_depth) == (len(model.bids), len(model.asks))
    assert (book.last_seq, book.gaps, book.snapshots) == (
        model.last_seq,
        model.gaps,
        model.snapshots,
    )


# Mostly near the touch, sometimes deep enough to reach past the book's scanned levels.
offsets = st.one_of(st.integers(-6, 6), st.integers(-45, 45))


@st.composite
def deep_snapshot(draw: st.DrawFn, tick: float, base: int) -> tuple[object, ...]:
    """A valid snapshot of up to 40 levels per side around ``base`` (bids below, asks above)."""
    gap = draw(st.integers(1, 3))
    bid_off = draw(st.sets(st.integers(0, 44), max_size=40))
    ask_off = draw(st.sets(st.integers(0, 44), max_size=40))
    bids = [(PriceCase((base - o) * tick, base - o), 1.0 + o) for o in bid_off]
    asks = [(PriceCase((base + gap + o) * tick, base + gap + o), 2.0 + o) for o in ask_off]
    return bids, asks, "none", 0


@st.composite
def price_cases(draw: st.DrawFn, tick: float, base: int) -> PriceCase:
    kind = draw(st.sampled_from(["on"] * 12 + ["off", "nan", "inf", "neg", "zero", "huge", "sub"]))
    if kind == "on":
        n = base + draw(offsets)
        return PriceCase(n * tick, n)
    if kind == "off":
        n = base + draw(offsets)
        frac = draw(st.sampled_from([0.5, 0.25, 0.1, 0.01, 0.99]))
        return PriceCase((n + frac) * tick, None, OFF_TICK)
    if kind == "sub":  # positive, but below one tick
        return PriceCase(tick * draw(st.sampled_from([1e-12, 0.3, 0.49])), None, OFF_TICK)
    bad = {"nan": math.nan, "inf": math.inf, "neg": -base * tick, "zero": 0.0, "huge": 1e300}
    return PriceCase(bad[kind], None, BAD_PRICE)


sizes = st.one_of(
    st.sampled_from([0.0, 0.0, 1.0, 2.0, 100.0, 0.5]),
    st.sampled_from([-1.0, math.nan, math.inf]),
    st.floats(min_value=0.001, max_value=1e6),
)


@st.composite
def deltas(draw: st.DrawFn, tick: float, base: int) -> Delta:
    return Delta(
        side=draw(st.sampled_from([0, 1] * 10 + [2])),
        price=draw(price_cases(tick, base)),
        size=draw(sizes),
        seq_mode=draw(st.sampled_from(["none", "next", "next", "next", "skip", "stale"])),
        seq_arg=draw(st.integers(0, 3)),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[float, int, list[tuple[str, object]]]:
    tick = draw(st.sampled_from(TICKS))
    base = draw(st.sampled_from(BASES))
    one = deltas(tick, base)
    level = st.tuples(price_cases(tick, base), sizes)
    op = st.one_of(
        st.tuples(st.just("apply"), one),
        st.tuples(st.just("batch"), st.lists(one, max_size=12)),
        st.tuples(st.just("unchecked"), st.lists(one, max_size=12)),
        st.tuples(
            st.just("snapshot"),
            st.tuples(
                st.lists(level, max_size=6),
                st.lists(level, max_size=6),
                st.sampled_from(["none", "next", "skip", "stale"]),
                st.integers(0, 3),
            ),
        ),
        st.tuples(st.just("snapshot"), deep_snapshot(tick, base)),
        st.tuples(st.just("clear"), st.none()),
    )
    ops = draw(st.lists(op, max_size=40))
    return tick, base, ops


def _columns(
    rows: list[tuple[int, float, float, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.array([r[0] for r in rows], dtype=np.uint8),
        np.array([r[1] for r in rows], dtype=np.float64),
        np.array([r[2] for r in rows], dtype=np.float64),
        np.array([r[3] for r in rows], dtype=np.uint64),
    )


def _run_op(book: OrderBook, model: Model, name: str, arg: object) -> None:
    if name == "apply":
        assert isinstance(arg, Delta)
        seq = model.resolve_seq(arg.seq_mode, arg.seq_arg)
        want = model.apply(arg.side, arg.price, arg.size, seq)
        if want in (OK, GAP):
            assert book.apply(arg.side, arg.price.price, arg.size, seq) == want
        else:
            with pytest.raises(BookError, match=f"rejected: .*\\(code {want}\\)"):
                book.apply(arg.side, arg.price.price, arg.size, seq)
    elif name in ("batch", "unchecked"):
        assert isinstance(arg, list)
        rows, statuses = [], []
        for d in arg:
            seq = model.resolve_seq(d.seq_mode, d.seq_arg)
            status = model.apply(d.side, d.price, d.size, seq)
            if name == "batch" or status in (OK, GAP):
                rows.append((d.side, d.price.price, d.size, seq))
                statuses.append(status)
        rejected, reasons = book.apply_deltas(*_columns(rows), checked=name == "batch")
        if name == "batch":
            bad = [(i, s) for i, s in enumerate(statuses) if s not in (OK, GAP)]
            assert rejected.tolist() == [i for i, _ in bad]
            assert reasons.tolist() == [s for _, s in bad]
        else:
            assert (rejected.size, reasons.size) == (0, 0)
    elif name == "snapshot":
        assert isinstance(arg, tuple)
        bids, asks, mode, n = arg
        seq = model.resolve_seq(mode, n)
        want = model.snapshot(bids, asks, seq)
        cols = [
            np.array([pc.price for pc, _ in levels], dtype=np.float64) for levels in (bids, asks)
        ]
        szs = [np.array([s for _, s in levels], dtype=np.float64) for levels in (bids, asks)]
        if want == OK:
            book.snapshot(cols[0], szs[0], cols[1], szs[1], seq)
        else:
            with pytest.raises(BookError, match=f"\\(code {want}\\)"):
                book.snapshot(cols[0], szs[0], cols[1], szs[1], seq)
    else:
        book.clear()
        model.bids.clear()
        model.asks.clear()


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_book_equals_dict_model_after_any_operation_stream(
    scenario: tuple[float, int, list[tuple[str, object]]],
) -> None:
    # Arrange
    tick, _, ops = scenario
    book, model = OrderBook(tick), Model()
    for name, arg in ops:
        # Act
        _run_op(book, model, name, arg)
        # Assert
        assert_book_equals_model(book, model)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_book_rejected_delta_leaves_book_unchanged(
    scenario: tuple[float, int, list[tuple[str, object]]], data: st.DataObject
) -> None:
    # Arrange: any reachable book, then one more delta.
    tick, base, ops = scenario
    book, model = OrderBook(tick), Model()
    for name, arg in ops:
        _run_op(book, model, name, arg)
    d = data.draw(deltas(tick, base))
    seq = model.resolve_seq(d.seq_mode, d.seq_arg)
    before = _full_state(book)
    want = model.apply(d.side, d.price, d.size, seq)
    # Act
    try:
        book.apply(d.side, d.price.price, d.size, seq)
        raised = None
    except BookError as exc:
        raised = str(exc)
    # Assert
    if want in (OK, GAP):
        assert raised is None
    else:
        assert raised is not None
        assert book_status_name(want) in raised
        assert _full_state(book) == before
    assert_book_equals_model(book, model)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.data())
def test_book_checked_batch_equals_applying_rows_one_by_one(
    scenario: tuple[float, int, list[tuple[str, object]]], data: st.DataObject
) -> None:
    # Arrange: two books brought to the same state, and one batch of raw rows for both, with
    # sequence numbers that may repeat, go back, skip ahead or be 0.
    tick, base, ops = scenario
    single, batch = OrderBook(tick), OrderBook(tick)
    model_a, model_b = Model(), Model()
    for name, arg in ops:
        _run_op(single, model_a, name, arg)
        _run_op(batch, model_b, name, arg)
    drawn = data.draw(st.lists(st.tuples(deltas(tick, base), st.integers(-2, 3)), max_size=30))
    rows = [
        (d.side, d.price.price, d.size, max(0, model_a.last_seq + i + step))
        for i, (d, step) in enumerate(drawn)
    ]
    # Act
    rejected, reasons = batch.apply_deltas(*_columns(rows))
    expected: list[tuple[int, int]] = []
    for i, (side, price, size, seq) in enumerate(rows):
        try:
            single.apply(side, price, size, seq)
        except BookError as exc:
            expected.append((i, int(str(exc).rsplit("(code ", 1)[1].rstrip(")"))))
    # Assert
    assert list(zip(rejected.tolist(), reasons.tolist(), strict=True)) == expected
    assert _full_state(batch) == _full_state(single)


def _full_state(book: OrderBook) -> tuple[object, ...]:
    top = tuple(a.tolist() for a in book.top(10_000))
    return (*top, book.last_seq, book.gaps, book.snapshots)
