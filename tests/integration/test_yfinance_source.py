"""The yfinance source against a local Yahoo: recorded HTTP replies through an injected
curl_cffi session, and a WebSocket server on 127.0.0.1 speaking Yahoo's stream protocol."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.waiting import until
from tests.support.yahoo import (
    RECORDED_AT_NS,
    SESSION_OPEN,
    RecordedSession,
    Step,
    YahooReplies,
    YahooStreamServer,
    isolate_yfinance,
)
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import Flag, QuoteBatch, TradeBatch
from tickserver.metrics import Metrics
from tickserver.sources.base import SourceContext
from tickserver.sources.yfinance import YFinanceConfig, YFinanceSource
from tickserver.symbols import Symbols

pytestmark = pytest.mark.integration
MIN = 60 * 10**9


class Clock:
    """The source's wall clock, pinned inside the recorded session and moved by the test."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns

    def seconds(self) -> float:
        return self.ns / 1e9


@dataclass
class Harness:
    ctx: SourceContext
    replies: YahooReplies
    clock: Clock
    trades: list[TradeBatch] = field(default_factory=list)
    quotes: list[QuoteBatch] = field(default_factory=list)

    def source(self, stream_url: str = "ws://127.0.0.1:9/", **cfg: Any) -> YFinanceSource:
        base: dict[str, Any] = {
            "symbols": ["AAPL", "MSFT"],
            "stream_url": stream_url,
            "reconnect_base_s": 0.02,
            "reconnect_max_s": 0.2,
            "rate_limit_backoff_s": 0.02,
            "rate_limit_backoff_max_s": 0.1,
            "backfill_minutes": 60,
            "requests_per_minute": 6000,
            "burst": 50,
        }
        return YFinanceSource(
            self.ctx,
            YFinanceConfig(**(base | cfg)),
            session=RecordedSession(self.replies),
            clock=self.clock,
        )

    def rows(self, symbol: str) -> list[tuple[int, float, int]]:
        sid = self.ctx.symbols.id(symbol)
        return [
            (int(t), float(p), int(f))
            for b in self.trades
            for s, t, p, f in zip(b.symbol_id, b.ts_event, b.price, b.flags, strict=True)
            if s == sid
        ]

    def minutes(self, symbol: str) -> dict[int, int]:
        """Trades per minute (UTC ns of the minute start)."""
        return collections.Counter(t - t % MIN for t, _, _ in self.rows(symbol))


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    isolate_yfinance(tmp_path / "yf-cache")
    clock = Clock(SESSION_OPEN * 10**9 + 35 * MIN + 10 * 10**9)  # 10:05:10 ET
    ctx = SourceContext(
        config=load_config(environ={}), bus=Bus(), symbols=Symbols(), metrics=Metrics()
    )
    h = Harness(ctx, YahooReplies(now=clock.seconds), clock)
    ctx.bus.attach(Topic.RAW_TRADES, h.trades.append, name="t")
    ctx.bus.attach(Topic.RAW_QUOTES, h.quotes.append, name="q")
    return h


@pytest.fixture
async def stream(harness: Harness) -> AsyncIterator[YahooStreamServer]:
    server = YahooStreamServer(
        [[Step("send", 8, 0.005)], [Step("send", 8, 0.005)], [Step("send", 8, 0.005)]],
        clock_ns=harness.clock,
    )
    await server.start()
    yield server
    await server.stop()


def recorded_minutes(first: int, last: int) -> set[int]:
    """Minutes the recording has bars for in [first, last] (09:47 and 10:11 are nulls)."""
    gaps = {SESSION_OPEN * 10**9 + 17 * MIN, SESSION_OPEN * 10**9 + 41 * MIN}
    return {m for m in range(first, last + 1, MIN) if m not in gaps}


async def test_stream_subscribes_and_publishes_trades_and_quotes(
    harness: Harness, stream: YahooStreamServer
) -> None:
    # Arrange
    src = harness.source(stream.url, mode="stream", backfill=False)
    # Act
    async with src:
        await until(lambda: stream.sent_frames >= 8 and len(harness.rows("MSFT")) >= 3)
    # Assert
    assert stream.subscriptions[0] == ["AAPL", "MSFT"]
    assert harness.rows("AAPL")
    assert harness.quotes
    assert all(ts == harness.clock.ns for ts, _, _ in harness.rows("AAPL"))
    assert src.health().details["connected"] is False  # stopped
    assert src.stats.connects == 1


async def test_initial_backfill_fills_complete_bars_before_live_data(
    harness: Harness, stream: YahooStreamServer
) -> None:
    # Arrange
    src = harness.source(stream.url, mode="stream")
    # Act
    async with src:
        await until(lambda: src.backfills_done == 2 and stream.sent_frames >= 8)
        await until(lambda: any(not f & Flag.BACKFILL for _, _, f in harness.rows("AAPL")))
    # Assert: 09:30 .. 10:04 from history (flagged), then live ticks at 10:05:10, in order
    rows = harness.rows("AAPL")
    ts = [t for t, _, _ in rows]
    assert ts == sorted(ts)
    backfilled = {t - t % MIN for t, _, f in rows if f & Flag.BACKFILL}
    open_ns = SESSION_OPEN * 10**9
    assert backfilled == recorded_minutes(open_ns, open_ns + 34 * MIN)
    assert all(f & Flag.SYNTHETIC for _, _, f in rows if f & Flag.BACKFILL)
    live = [t for t, _, f in rows if not f & Flag.BACKFILL]
    assert min(live) == harness.clock.ns
    assert src.coverage.bars_emitted == 2 * len(backfilled)


async def test_forced_reconnect_leaves_no_hole_in_the_minute_bars(
    harness: Harness, stream: YahooStreamServer
) -> None:
    # Arrange: live from 10:05:10 after the initial backfill
    src = harness.source(stream.url, mode="stream")
    open_ns = SESSION_OPEN * 10**9
    async with src:
        await until(lambda: src.backfills_done == 2 and stream.connections == 1)
        await until(lambda: any(not f & Flag.BACKFILL for _, _, f in harness.rows("MSFT")))
        # Act: the connection drops; it comes back at 10:09:40
        harness.clock.ns = open_ns + 39 * MIN + 40 * 10**9
        await stream.drop()
        await until(lambda: stream.connections == 2 and src.backfills_done == 4)
        await until(lambda: max(t for t, _, _ in harness.rows("MSFT")) >= harness.clock.ns)
    # Assert: every minute the provider has a bar for is covered, trades stay in order
    for sym in ("AAPL", "MSFT"):
        rows = harness.rows(sym)
        assert [t for t, _, _ in rows] == sorted(t for t, _, _ in rows)
        assert set(harness.minutes(sym)) == recorded_minutes(open_ns, open_ns + 39 * MIN)
        gap_fill = {t - t % MIN for t, _, f in rows if f & Flag.BACKFILL and t > open_ns + 35 * MIN}
        assert gap_fill == {open_ns + m * MIN for m in (36, 37, 38)}
    text = harness.ctx.metrics.render()
    assert 'tickserver_source_reconnects_total{source="yfinance",reason="disconnect"} 1' in text


async def test_watchdog_reconnects_a_silent_stream_during_market_hours(
    harness: Harness,
) -> None:
    # Arrange: the server accepts, sends a little, then stays connected but silent
    server = YahooStreamServer([[Step("send", 2, 0.005)]], clock_ns=harness.clock)
    await server.start()
    src = harness.source(server.url, mode="stream", backfill=False, stale_after_s=0.2)
    # Act
    try:
        async with src:
            await until(lambda: server.connections >= 3)
    finally:
        await server.stop()
    # Assert
    assert src.errors["stale"] >= 2
    text = harness.ctx.metrics.render()
    assert 'tickserver_source_reconnects_total{source="yfinance",reason="stale"}' in text


async def test_garbage_frames_are_counted_and_the_stream_continues(harness: Harness) -> None:
    # Arrange
    server = YahooStreamServer(
        [[Step("send", 2, 0.005), Step("garbage"), Step("send", 4, 0.005)]],
        clock_ns=harness.clock,
    )
    await server.start()
    src = harness.source(server.url, mode="stream", backfill=False)
    # Act
    try:
        async with src:
            await until(lambda: server.sent_frames >= 6 and src.stats.messages >= 6)
    finally:
        await server.stop()
    # Assert: 4 bad text frames + 1 binary frame, one connection, live data after them
    assert src.errors["decode"] == 5
    assert server.connections == 1
    assert len(harness.rows("AAPL")) + len(harness.rows("MSFT")) >= 4


async def test_reconnects_back_off_with_jitter_while_the_server_refuses(
    harness: Harness,
) -> None:
    # Arrange: a server that closes every connection right away
    server = YahooStreamServer([], clock_ns=harness.clock)
    server.refuse = True
    await server.start()
    src = harness.source(server.url, mode="stream", backfill=False)
    # Act
    try:
        async with src:
            await until(lambda: src.reconnect_backoff.attempt >= 4)
            state, reason = src.health().state, src.health().reason
    finally:
        await server.stop()
    # Assert: no data ever arrived, so attempts accumulate (no reset) and health says why
    assert state == "degraded"
    assert "reconnecting" in reason
    assert src.events_out == 0


async def test_poll_mode_publishes_each_complete_bar_exactly_once(harness: Harness) -> None:
    # Arrange
    src = harness.source(mode="poll", poll_interval_s=0.02, symbols=["AAPL"])
    open_ns = SESSION_OPEN * 10**9
    # Act: several polls at 10:05:10, then the clock moves on two minutes
    async with src:
        await until(lambda: src.polls >= 3)
        harness.clock.ns += 2 * MIN
        polls = src.polls
        await until(lambda: src.polls >= polls + 3)
    # Assert: 4 synthetic trades per bar, no bar twice, no backfill flag in poll mode
    per_minute = harness.minutes("AAPL")
    assert set(per_minute) == recorded_minutes(open_ns, open_ns + 36 * MIN)
    assert set(per_minute.values()) == {4}
    assert all(f == Flag.SYNTHETIC for _, _, f in harness.rows("AAPL"))
    assert src.polls >= polls + 3


async def test_rate_limit_backs_off_is_counted_and_recovers(harness: Harness) -> None:
    # Arrange: Yahoo answers 429 (twice per attempt: yfinance retries once) two times
    harness.replies.script.extend(["429", "429", "429", "429"])
    src = harness.source(mode="poll", poll_interval_s=0.02, symbols=["AAPL"])
    # Act
    async with src:
        await until(lambda: src.polls >= 1 and harness.rows("AAPL"))
    # Assert
    assert src.errors["rate_limited"] == 2
    assert src.limiter.penalties == 2
    text = harness.ctx.metrics.render()
    assert 'tickserver_source_errors_total{source="yfinance",kind="rate_limited"} 2' in text
    assert 'outcome="rate_limited"} 2' in text
    assert len(harness.rows("AAPL")) > 0


async def test_malformed_reply_is_an_error_and_the_next_poll_recovers(harness: Harness) -> None:
    harness.replies.script.extend(["malformed"])
    src = harness.source(mode="poll", poll_interval_s=0.02, symbols=["AAPL"])
    async with src:
        await until(lambda: harness.rows("AAPL"))
    assert src.errors["malformed"] == 1
    assert np.all(np.diff([t for t, _, _ in harness.rows("AAPL")]) >= 0)


async def test_unknown_symbol_is_disabled_with_a_status_entry(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    src = harness.source(mode="poll", poll_interval_s=0.02, symbols=["AAPL", "NOPE"])
    async with src:
        await until(lambda: src.polls >= 2 and harness.rows("AAPL"))
        details = dict(src.health().details)
    assert "NOPE" in details["disabled_symbols"]
    assert src.errors["bad_symbol"] == 1
    assert any("NOPE" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


async def test_sleeps_outside_the_session_without_connecting(harness: Harness) -> None:
    # Arrange: Thanksgiving, 11:00 ET
    harness.clock.ns = RECORDED_AT_NS + 2 * 86_400 * 10**9
    server = YahooStreamServer([[Step("send", 2)]], clock_ns=harness.clock)
    await server.start()
    src = harness.source(server.url, mode="auto")
    try:
        async with src:
            await until(lambda: "market closed" in src.health().reason)
            state, reason = src.health().state, src.health().reason
    finally:
        await server.stop()
    assert state == "ok"
    assert "2026-11-27T09:30:00-05:00" in reason
    assert server.connections == 0
    assert harness.replies.chart_requests() == []
