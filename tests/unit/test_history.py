"""History: store (cold) and ring (hot) joined at the seam, with no gap and no duplicate.

The engine's snapshots are faked here (the C++ core is exercised by the server tests); the
cold side is a real store written by the real sink."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tickserver.api.market import ApiError
from tickserver.bus import Bus, Topic
from tickserver.config import INTERVALS, load_config
from tickserver.events import BarBatch, trades_from_columns
from tickserver.history import StoreReader, bar_history, tick_history
from tickserver.metrics import Metrics
from tickserver.sinks.base import SinkContext
from tickserver.sinks.store import StoreSink
from tickserver.storage import LocalStore
from tickserver.symbols import Symbols

T0 = 1_767_225_600_000_000_000
MIN = INTERVALS["1m"]


class FakeCore:
    """The two snapshot calls history uses, over fixed arrays."""

    def __init__(self, ticks: dict[str, np.ndarray], bars: dict[str, np.ndarray]) -> None:
        self.t, self.b = ticks, bars

    def last_trades(self, sid: int, n: int) -> dict[str, np.ndarray]:
        return {k: v[-n:] for k, v in self.t.items()}

    def bars(self, sid: int, ns: int, n: int) -> dict[str, np.ndarray]:
        return {k: v[-n:] for k, v in self.b.items()}


def fake_market(core: FakeCore) -> Any:
    def symbol_id(s: str) -> int:
        if s != "AAPL":
            raise ApiError(f"unknown symbol {s!r}", "UNKNOWN_SYMBOL")
        return 0

    cfg = SimpleNamespace(market=SimpleNamespace(ring_capacity=16, bar_capacity=20))
    return SimpleNamespace(
        core=core,
        engine=SimpleNamespace(cfg=cfg),
        symbol_id=symbol_id,
        interval_ns=lambda iv, allow_tick: INTERVALS[iv],
    )


def tick_cols(seq: range) -> dict[str, np.ndarray]:
    s = np.array(list(seq), dtype=np.uint64)
    return {
        "ts_event": T0 + s.astype(np.int64) * 1000,
        "price": 100 + s / 100,
        "size": np.ones(len(s)),
        "seq": s,
        "flags": np.zeros(len(s), np.uint8),
    }


def bar_cols(opens: range, close: float) -> dict[str, np.ndarray]:
    n = len(opens)
    return {
        "ts_event": T0 + np.array(list(opens), dtype=np.int64) * MIN,
        "open": np.ones(n),
        "high": np.ones(n),
        "low": np.ones(n),
        "close": np.full(n, close),
        "volume": np.ones(n),
        "vwap": np.ones(n),
        "trades": np.ones(n, np.uint64),
    }


def stored(tmp_path: Path, seq: range, bar_opens: range) -> StoreReader:
    cfg = load_config(environ={}, overrides={"store": {"path": str(tmp_path)}})
    bus = Bus()
    sink = StoreSink(SinkContext(cfg, bus, Symbols(["AAPL"]), Metrics()))

    async def run() -> None:
        await sink.start()
        c = tick_cols(seq)
        bus.publish(
            Topic.TRADES,
            trades_from_columns(
                "sim", np.zeros(len(seq)), c["ts_event"], c["price"], c["size"], c["seq"]
            ),
        )
        b = bar_cols(bar_opens, close=1.0)
        bus.publish(
            Topic.BARS,
            BarBatch(interval="1m", final=True, symbol_id=np.zeros(len(bar_opens), np.uint32), **b),
        )
        await sink.stop()

    asyncio.run(run())
    return StoreReader(LocalStore(tmp_path))


@pytest.fixture
def reader(tmp_path: Path) -> StoreReader:
    # The store has trades 1..100 and 1m bars 0..49.
    return stored(tmp_path, range(1, 101), range(50))


def test_ticks_join_store_and_ring_at_the_seam_once_each(reader: StoreReader) -> None:
    # Arrange: the ring holds the last 16 trades, 5 of them newer than the store.
    market = fake_market(FakeCore(tick_cols(range(90, 106)), bar_cols(range(0), 1.0)))

    # Act
    res = asyncio.run(tick_history(market, reader, "AAPL", 0, T0 + 10**12, 10_000))

    # Assert
    assert [r["seq"] for r in res.rows] == list(range(1, 106))
    assert res.hot_rows == 16
    assert res.cold_rows == 90  # 1..90: cold stops at the seam (inclusive)
    assert not res.truncated


def test_ticks_inside_the_ring_read_no_file(reader: StoreReader) -> None:
    market = fake_market(FakeCore(tick_cols(range(90, 106)), bar_cols(range(0), 1.0)))

    res = asyncio.run(tick_history(market, reader, "AAPL", T0 + 95_000, T0 + 10**12, 10_000))

    assert [r["seq"] for r in res.rows] == list(range(95, 106))
    assert res.cold_rows == 0


def test_ticks_limit_keeps_the_oldest_and_says_truncated(reader: StoreReader) -> None:
    market = fake_market(FakeCore(tick_cols(range(90, 106)), bar_cols(range(0), 1.0)))

    res = asyncio.run(tick_history(market, reader, "AAPL", T0 + 10_000, T0 + 10**12, 7))

    assert [r["seq"] for r in res.rows] == list(range(10, 17))
    assert res.truncated


def test_bars_join_store_and_ring_preferring_the_ring_at_the_overlap(
    reader: StoreReader,
) -> None:
    # Arrange: closed bars 40..59 in memory (close 2.0), 0..49 in the store (close 1.0).
    market = fake_market(FakeCore(tick_cols(range(0)), bar_cols(range(40, 60), close=2.0)))

    res = asyncio.run(bar_history(market, reader, "AAPL", "1m", 0, T0 + 10**15, 10_000))
    newest = asyncio.run(bar_history(market, reader, "AAPL", "1m", 0, T0 + 10**15, 5, newest=True))

    ts = [r["tsMs"] for r in res.rows]
    assert ts == [(T0 + i * MIN) / 1e6 for i in range(60)]
    assert [r["close"] for r in res.rows] == [1.0] * 40 + [2.0] * 20
    assert [r["tsMs"] for r in newest.rows] == [(T0 + i * MIN) / 1e6 for i in range(55, 60)]
    assert newest.truncated


def test_history_without_a_store_serves_the_ring() -> None:
    market = fake_market(FakeCore(tick_cols(range(90, 106)), bar_cols(range(0), 1.0)))

    res = asyncio.run(tick_history(market, None, "AAPL", 0, T0 + 10**12, 10_000))

    assert [r["seq"] for r in res.rows] == list(range(90, 106))


def test_reader_with_max_rows_stops_after_enough_whole_days(tmp_path: Path) -> None:
    # Arrange: trades on three UTC days.
    day = 86_400_000_000_000
    cfg = load_config(environ={}, overrides={"store": {"path": str(tmp_path)}})
    bus = Bus()
    sink = StoreSink(SinkContext(cfg, bus, Symbols(["AAPL"]), Metrics()))

    async def run() -> None:
        await sink.start()
        for d in range(3):
            ts = T0 + d * day + np.arange(10)
            bus.publish(
                Topic.TRADES,
                trades_from_columns(
                    "sim", np.zeros(10), ts, np.ones(10), np.ones(10), np.arange(10) + 10 * d
                ),
            )
        await sink.stop()

    asyncio.run(run())
    reader = StoreReader(LocalStore(tmp_path))
    days: list[tuple[int, int]] = []

    # Act
    oldest = reader.read(
        "trades",
        symbol="AAPL",
        start_ns=0,
        end_ns=T0 + 3 * day,
        max_rows=5,
        progress=lambda d, n: days.append((d, n)),
    )
    newest = reader.read(
        "trades", symbol="AAPL", start_ns=0, end_ns=T0 + 3 * day, max_rows=15, newest=True
    )
    everything = reader.read("trades", symbol="AAPL", start_ns=0, end_ns=T0 + 3 * day)

    # Assert
    assert oldest.column("seq").to_pylist() == list(range(10))
    assert days == [(1, 3)]
    assert newest.column("seq").to_pylist() == list(range(10, 30))
    assert everything.num_rows == 30
