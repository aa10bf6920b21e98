"""Bars and trade rings of the engine against small Python reference models (hypothesis)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickserver import _core

IV = 1_000  # bar interval (ns) small enough for many bars per example
MIN = -(2**63)
DAY = 86_400_000_000_000


@dataclass
class ModelBar:
    ts_open: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int
    notional: float = 0.0

    def add(self, price: float, size: float) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.notional += price * size
        self.trades += 1

    @property
    def vwap(self) -> float:
        return self.notional / self.volume if self.volume > 0 else float("nan")


@dataclass
class BarModel:
    """The documented bar policy, written as plainly as possible."""

    interval: int
    forming: ModelBar | None = None
    closed: list[ModelBar] = field(default_factory=list)
    closed_end: int = MIN
    late: int = 0

    def open(self, ts: int, price: float, size: float) -> None:
        start = ts - ts % self.interval
        self.forming = ModelBar(
            start, start + self.interval, price, price, price, price, size, 1, price * size
        )

    def close(self) -> None:
        assert self.forming is not None
        self.closed.append(self.forming)
        self.closed_end = self.forming.end
        self.forming = None

    def trade(self, ts: int, price: float, size: float) -> None:
        if self.forming is not None:
            if ts < self.forming.ts_open:
                self.late += 1
            elif ts < self.forming.end:
                self.forming.add(price, size)
            else:
                self.close()
                self.open(ts, price, size)
        elif ts < self.closed_end:  # lateness is per symbol: only its own closed bars count
            self.late += 1
        else:
            self.open(ts, price, size)

    def advance(self, now: int) -> None:
        if self.forming is not None and self.forming.end <= now:
            self.close()


def new_engine(ring_capacity: int = 64, intervals: list[int] | None = None) -> Any:
    reg = _core.SymbolRegistry()
    reg.intern("A")
    reg.intern("B")
    return _core.Engine(
        reg,
        ring_capacity=ring_capacity,
        bar_capacity=10_000,
        intervals=[IV] if intervals is None else intervals,
        indicators=[],
        rules=[],
    )


def trades_batch(rows: list[tuple[int, int, float, float]]) -> dict[str, Any]:
    return {
        "symbol_id": np.array([r[0] for r in rows], dtype=np.uint32),
        "ts_event": np.array([r[1] for r in rows], dtype=np.int64),
        "price": np.array([r[2] for r in rows], dtype=np.float64),
        "size": np.array([r[3] for r in rows], dtype=np.float64),
        "seq": np.arange(len(rows), dtype=np.uint64),
        "flags": np.array([i % 256 for i in range(len(rows))], dtype=np.uint8),
    }


# Events: ("t", dt, price, size) moves time by dt (sometimes backwards: late trades) and
# trades; ("a", dt) advances the clock to the current time + dt; ("f",) flushes the batch.
events_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.just("t"),
            st.integers(min_value=-1500, max_value=2500),
            st.floats(min_value=0.01, max_value=1e4, allow_nan=False),
            st.floats(min_value=0.0, max_value=1e3, allow_nan=False),
        ),
        st.tuples(st.just("a"), st.integers(min_value=-500, max_value=3000)),
        st.tuples(st.just("f")),
    ),
    max_size=80,
)


def run_events(engine: Any, events: list[tuple[Any, ...]]) -> tuple[BarModel, list[Any], int]:
    """Feed events to the engine (trades in batches) and to the model; return emitted bars."""
    model = BarModel(IV)
    emitted: list[Any] = []
    late = 0
    now = 10_000
    pending: list[tuple[int, int, float, float]] = []

    def flush() -> None:
        nonlocal late
        if pending:
            r = engine.on_trades(**trades_batch(pending))
            emitted.append(r.bars)
            late += r.late
            pending.clear()

    for ev in events:
        if ev[0] == "t":
            now += ev[1]
            pending.append((0, now, ev[2], ev[3]))
            model.trade(now, ev[2], ev[3])
        elif ev[0] == "a":
            flush()
            r = engine.advance(now + ev[1])
            emitted.append(r.bars)
            model.advance(now + ev[1])
        else:
            flush()
    flush()
    return model, emitted, late


def concat(parts: list[Any], key: str) -> Any:
    return np.concatenate([p[key] for p in parts]) if parts else np.array([])


@settings(max_examples=150, deadline=None)
@given(events=events_strategy)
def test_bars_equal_the_reference_model(events: list[tuple[Any, ...]]) -> None:
    # Arrange
    engine = new_engine()
    # Act
    model, emitted, late = run_events(engine, events)
    # Assert
    assert late == model.late == engine.counters()["late"]
    assert list(concat(emitted, "ts_event")) == [b.ts_open for b in model.closed]
    for key in ("open", "high", "low", "close", "volume"):
        assert list(concat(emitted, key)) == [getattr(b, key) for b in model.closed]
    assert list(concat(emitted, "trades")) == [b.trades for b in model.closed]
    np.testing.assert_array_equal(concat(emitted, "vwap"), [b.vwap for b in model.closed])
    forming = engine.forming_bar(0, IV)
    if model.forming is None:
        assert forming is None
    else:
        assert forming is not None
        assert (forming["ts_event"], forming["ts_end"]) == (
            model.forming.ts_open,
            model.forming.end,
        )
        assert forming["close"] == model.forming.close
        assert forming["volume"] == model.forming.volume


@settings(max_examples=100, deadline=None)
@given(events=events_strategy)
def test_bars_are_consistent_and_keep_every_accepted_volume(events: list[tuple[Any, ...]]) -> None:
    # Arrange
    engine = new_engine()
    # Act
    model, emitted, _ = run_events(engine, events)
    # Assert
    o, h, lo, c = (concat(emitted, k) for k in ("open", "high", "low", "close"))
    assert np.all(lo <= o)
    assert np.all(lo <= c)
    assert np.all(o <= h)
    assert np.all(c <= h)
    accepted = sum(ev[3] for ev in events if ev[0] == "t")
    forming = engine.forming_bar(0, IV)
    total = float(np.sum(concat(emitted, "volume"))) + (forming["volume"] if forming else 0.0)
    late_volume = accepted - total
    assert late_volume >= -1e-6 * max(1.0, accepted)
    if model.late == 0:
        assert total == pytest.approx(accepted, rel=1e-12, abs=1e-9)
    ts = concat(emitted, "ts_event")
    assert np.all(np.diff(ts) > 0)  # one bar per interval, never rewritten or repeated


@settings(max_examples=100, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=8),
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=1),
            st.integers(min_value=0, max_value=10**12),
            st.floats(min_value=0.01, max_value=1e4, allow_nan=False),
        ),
        max_size=40,
    ),
    batch=st.integers(min_value=1, max_value=7),
)
def test_ring_last_n_equals_a_deque_across_wrap_around(
    capacity: int, rows: list[tuple[int, int, float]], batch: int
) -> None:
    # Arrange
    engine = new_engine(ring_capacity=capacity, intervals=[])
    model: dict[int, deque[tuple[int, float, float, int, int]]] = {
        0: deque(maxlen=capacity),
        1: deque(maxlen=capacity),
    }
    counts = {0: 0, 1: 0}
    full = [(s, t, p, float(i)) for i, (s, t, p) in enumerate(rows)]
    b = trades_batch(full)
    for i, (s, t, p, q) in enumerate(full):
        model[s].append((t, p, q, i, i % 256))
        counts[s] += 1
    # Act
    for lo in range(0, len(full), batch):
        engine.on_trades(**{k: v[lo : lo + batch] for k, v in b.items()})
    # Assert
    for s in (0, 1):
        assert engine.trade_count(s) == counts[s]
        assert engine.ring_overwritten(s) == max(0, counts[s] - capacity)
        for n in range(capacity + 2):
            got = engine.last_trades(s, n)
            want = list(model[s])[-n:] if n else []
            assert list(got["ts_event"]) == [w[0] for w in want]
            assert list(got["price"]) == [w[1] for w in want]
            assert list(got["size"]) == [w[2] for w in want]
            assert list(got["seq"]) == [w[3] for w in want]
            assert list(got["flags"]) == [w[4] for w in want]
        last = engine.last_trade(s)
        assert last == ((model[s][-1][0], model[s][-1][1], model[s][-1][2]) if model[s] else None)


def test_no_bar_is_emitted_for_intervals_without_trades() -> None:
    # Arrange
    engine = new_engine()
    rows = [(0, 100, 1.0, 1.0), (0, 5_100, 2.0, 1.0), (0, 9_900, 3.0, 1.0)]
    # Act
    r = engine.on_trades(**trades_batch(rows))
    # Assert
    assert list(r.bars["ts_event"]) == [0, 5_000]


def test_late_trade_never_rewrites_a_closed_bar() -> None:
    # Arrange
    engine = new_engine()
    engine.on_trades(**trades_batch([(0, 100, 10.0, 1.0), (0, 1_100, 11.0, 1.0)]))
    before = engine.bars(0, IV, 10)
    # Act
    r = engine.on_trades(**trades_batch([(0, 500, 99.0, 50.0)]))
    # Assert
    after = engine.bars(0, IV, 10)
    assert r.late == 1
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert engine.last_trade(0) == (500, 99.0, 50.0)  # still stored in the ring


def test_advance_closes_bars_on_the_clock() -> None:
    # Arrange
    engine = new_engine()
    engine.on_trades(**trades_batch([(0, 100, 10.0, 1.0), (1, 200, 20.0, 2.0)]))
    # Act
    early = engine.advance(999)
    closed = engine.advance(1_000)
    # Assert
    assert early.n_bars == 0
    assert list(closed.bars["symbol_id"]) == [0, 1]
    assert engine.forming_bar(0, IV) is None


def test_day_bars_follow_session_boundaries() -> None:
    # Arrange
    engine = new_engine(intervals=[DAY])
    open_ = 13 * 3_600_000_000_000 + 30 * 60_000_000_000  # 13:30 UTC
    engine.set_day_boundaries(np.array([open_, open_ + DAY, open_ + 3 * DAY], dtype=np.int64))
    rows = [(0, open_ + 1, 1.0, 1.0), (0, open_ + DAY - 1, 2.0, 1.0), (0, open_ + DAY, 3.0, 1.0)]
    # Act
    r = engine.on_trades(**trades_batch(rows))
    # Assert
    assert list(r.bars["ts_event"]) == [open_]
    assert list(r.bars["close"]) == [2.0]
    forming = engine.forming_bar(0, DAY)
    assert forming is not None
    assert (forming["ts_event"], forming["ts_end"]) == (open_ + DAY, open_ + 3 * DAY)


def test_day_bars_default_to_utc_midnight() -> None:
    # Arrange
    engine = new_engine(intervals=[DAY])
    # Act
    engine.on_trades(**trades_batch([(0, 2 * DAY + 5, 1.0, 1.0)]))
    # Assert
    forming = engine.forming_bar(0, DAY)
    assert forming is not None
    assert (forming["ts_event"], forming["ts_end"]) == (2 * DAY, 3 * DAY)


def test_set_day_boundaries_rejects_unsorted_starts() -> None:
    engine = new_engine()
    with pytest.raises(ValueError, match="strictly increasing"):
        engine.set_day_boundaries(np.array([5, 3], dtype=np.int64))
