"""Alpha Vantage: typed errors from HTTP-200 replies, intraday parsing, budgets, backoff,
disabled symbols, backfill, and an API key that never reaches the logs.

Served through ``httpx.MockTransport`` replaying tests/data/alphavantage; the source's clock
is pinned inside the recorded session (Tue 2026-11-24 10:05:10 ET)."""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tests.support.alphavantage import DATA, AVReplies, mock_transport
from tests.support.waiting import until
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import Flag, TradeBatch
from tickserver.metrics import Metrics
from tickserver.sources.alphavantage import (
    AlphaVantageConfig,
    AlphaVantageSource,
    AVAuthError,
    AVInvalidSymbolError,
    AVPremiumError,
    AVQuotaError,
    GlobalQuote,
    classify_reply,
    parse_intraday,
)
from tickserver.sources.base import SourceContext
from tickserver.symbols import Symbols

KEY = "K3Y-s3cr3t-0xDEADBEEF"
OPEN_NS = 1_795_530_600 * 10**9  # 2026-11-24 09:30 ET
MIN = 60 * 10**9


class Clock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns

    def seconds(self) -> float:
        return self.ns / 1e9


@dataclass
class Harness:
    ctx: SourceContext
    replies: AVReplies
    clock: Clock
    trades: list[TradeBatch] = field(default_factory=list)
    sources: list[AlphaVantageSource] = field(default_factory=list)

    def source(self, **cfg: Any) -> AlphaVantageSource:
        base: dict[str, Any] = {
            "symbols": ["IBM", "MSFT"],
            "min_interval_s": 0,
            "spread_budget": False,
            "requests_per_minute": 1000,
            "requests_per_day": 1000,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.05,
        }
        src = AlphaVantageSource(
            self.ctx,
            AlphaVantageConfig(**(base | cfg)),
            transport=mock_transport(self.replies),
            clock=self.clock,
            environ={"ALPHAVANTAGE_API_KEY": KEY},
        )
        src.max_sleep_s = 0.01
        return src

    def rows(self, symbol: str) -> list[tuple[int, float, float, int]]:
        sid = self.ctx.symbols.id(symbol)
        return [
            (int(t), float(p), float(z), int(f))
            for b in self.trades
            for s, t, p, z, f in zip(b.symbol_id, b.ts_event, b.price, b.size, b.flags, strict=True)
            if s == sid
        ]


@pytest.fixture
def h() -> Harness:
    clock = Clock(OPEN_NS + 35 * MIN + 10 * 10**9)
    ctx = SourceContext(
        config=load_config(environ={}), bus=Bus(), symbols=Symbols(), metrics=Metrics()
    )
    harness = Harness(ctx, AVReplies(now=clock.seconds), clock)
    ctx.bus.attach(Topic.RAW_TRADES, harness.trades.append, name="t")
    return harness


def body(name: str) -> Any:
    return json.loads((DATA / name).read_text())


# ----------------------------------------------------------------------------- replies


def test_note_reply_is_a_minute_quota_error() -> None:
    with pytest.raises(AVQuotaError) as err:
        classify_reply(body("note_minute_quota.json"), "GLOBAL_QUOTE")
    assert err.value.window == "minute"


def test_information_daily_limit_is_a_day_quota_error() -> None:
    with pytest.raises(AVQuotaError) as err:
        classify_reply(body("information_daily_limit.json"), "GLOBAL_QUOTE")
    assert err.value.window == "day"


def test_information_premium_endpoint_is_a_premium_error() -> None:
    with pytest.raises(AVPremiumError):
        classify_reply(body("information_premium.json"), "TIME_SERIES_INTRADAY")


def test_error_message_is_an_invalid_symbol_error() -> None:
    with pytest.raises(AVInvalidSymbolError):
        classify_reply(body("error_invalid_call.json"), "GLOBAL_QUOTE")


def test_error_message_about_the_key_is_an_auth_error() -> None:
    with pytest.raises(AVAuthError):
        classify_reply(body("error_invalid_key.json"), "GLOBAL_QUOTE")


def test_intraday_timestamps_are_eastern_bar_starts_converted_to_utc() -> None:
    # Arrange: one bar before and one after the 2026 spring DST change
    raw = {
        "Meta Data": {"6. Time Zone": "US/Eastern"},
        "Time Series (1min)": {
            "2026-03-09 09:30:00": {
                "1. open": "1",
                "2. high": "2",
                "3. low": "0.5",
                "4. close": "1.5",
                "5. volume": "10",
            },
            "2026-03-06 09:30:00": {
                "1. open": "1",
                "2. high": "2",
                "3. low": "0.5",
                "4. close": "1.5",
                "5. volume": "10",
            },
        },
    }
    # Act
    bars = parse_intraday(raw)
    # Assert: sorted ascending; 14:30 UTC in winter, 13:30 UTC in summer
    got = [str(np.datetime64(int(t), "ns")) for t in bars.ts_open]
    assert got == ["2026-03-06T14:30:00.000000000", "2026-03-09T13:30:00.000000000"]


def test_recorded_intraday_series_parses_to_sixty_one_bars() -> None:
    bars = parse_intraday(body("intraday_IBM_1min.json"))
    assert len(bars) == 61
    assert int(bars.ts_open[0]) == OPEN_NS


# ----------------------------------------------------------------------------- source


def test_missing_api_key_is_a_clear_startup_error(h: Harness) -> None:
    with pytest.raises(ValueError, match="set the environment variable ALPHAVANTAGE_API_KEY"):
        AlphaVantageSource(h.ctx, AlphaVantageConfig(), environ={})


async def test_backfills_intraday_then_polls_global_quote(h: Harness) -> None:
    # Arrange
    src = h.source()
    # Act
    async with src:
        await until(lambda: h.replies.functions().count("GLOBAL_QUOTE") >= 4)
    # Assert: one intraday per symbol first, then quotes
    fns = h.replies.functions()
    assert fns[:2] == ["TIME_SERIES_INTRADAY", "TIME_SERIES_INTRADAY"]
    assert set(fns[2:]) == {"GLOBAL_QUOTE"}
    rows = h.rows("IBM")
    backfilled = {t - t % MIN for t, _, _, f in rows if f & Flag.BACKFILL}
    assert backfilled == {OPEN_NS + m * MIN for m in range(35)}  # 09:30 .. 10:04
    live = [r for r in rows if not r[3] & Flag.BACKFILL]
    assert len(live) == 1  # later quotes repeat price and volume: not trades
    assert live[0][0] == h.clock.ns
    assert live[0][2] == 0.0
    assert all(q["apikey"] == KEY for q in h.replies.requests)
    assert src.health().details["budget_remaining"]["day"] == 1000 - src.requests


async def test_quote_volume_increase_becomes_the_trade_size(h: Harness) -> None:
    # Arrange: the first quote (size 0: the volume before it is unknown)
    src = h.source(symbols=["IBM"], backfill=False)
    async with src:
        await until(lambda: len(h.rows("IBM")) == 1)
    # Act: the next quote has 900 more shares of day volume
    src._on_quote("IBM", GlobalQuote("IBM", 223.0, 1_843_517 + 900, dt.date(2026, 11, 24)))
    # Assert
    assert h.rows("IBM")[0][2] == 0.0
    assert h.rows("IBM")[-1][1:3] == (223.0, 900.0)


def test_quote_from_another_day_is_not_a_trade(h: Harness) -> None:
    src = h.source(symbols=["IBM"], backfill=False)
    src._on_quote("IBM", GlobalQuote("IBM", 223.0, 1_000, dt.date(2026, 11, 23)))
    assert h.rows("IBM") == []


async def test_minute_quota_note_waits_for_the_minute_window(h: Harness) -> None:
    # Arrange
    src = h.source(symbols=["IBM"], backfill=False)
    h.replies.script.extend(["note"])
    # Act
    async with src:
        await until(lambda: src.errors["quota_minute"] == 1)
        n = len(h.replies.requests)
        await until(lambda: src.budget.wait_s() > 0)
        stuck = len(h.replies.requests)
        h.clock.ns += 61 * 10**9
        await until(lambda: len(h.replies.requests) > n)
    # Assert: nothing was sent while the window was blocked
    assert stuck == n == 1
    assert src.health().details["errors"]["quota_minute"] == 1


async def test_daily_quota_information_stops_requests_until_the_day_resets(h: Harness) -> None:
    # Arrange
    src = h.source(symbols=["IBM"], backfill=False)
    h.replies.script.extend(["information"])
    # Act
    async with src:
        await until(lambda: src.errors["quota_day"] == 1)
        await until(lambda: src.health().state == "degraded")
        state = (src.health().state, src.health().reason)
        budget = src.budget_remaining()
        sent = len(h.replies.requests)
        h.clock.ns += 24 * 3600 * 10**9  # the next session, past midnight UTC
        await until(lambda: len(h.replies.requests) > sent)
    # Assert
    assert state[0] == "degraded"
    assert "daily request budget spent" in state[1]
    assert budget == {"minute": 999, "day": 0}
    assert sent == 1


async def test_unknown_symbol_is_disabled_and_the_others_continue(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    h.replies.by_symbol["NOPE"] = "error"
    src = h.source(symbols=["NOPE", "IBM"], backfill=False)
    # Act
    async with src:
        await until(lambda: h.replies.functions().count("GLOBAL_QUOTE") >= 4)
        details = dict(src.health().details)
    # Assert
    assert list(details["disabled_symbols"]) == ["NOPE"]
    assert sum(1 for q in h.replies.requests if q.get("symbol") == "NOPE") == 1
    assert any(
        r.levelname == "ERROR" and "NOPE" in r.getMessage() and "disabled" in r.getMessage()
        for r in caplog.records
    )


async def test_empty_global_quote_disables_the_symbol(h: Harness) -> None:
    h.replies.by_symbol["ZZZZ"] = "unknown"
    src = h.source(symbols=["ZZZZ", "IBM"], backfill=False)
    async with src:
        await until(lambda: "ZZZZ" in src.health().details.get("disabled_symbols", {}))


@pytest.mark.parametrize(
    ("scenario", "kind"), [("500", "http_5xx"), ("malformed", "malformed"), ("timeout", "timeout")]
)
async def test_transport_errors_back_off_then_backfill_the_outage(
    h: Harness, scenario: str, kind: str
) -> None:
    # Arrange: the first quote after the initial backfill fails
    src = h.source(symbols=["IBM"])
    h.replies.script.extend(["ok", scenario])
    # Act
    async with src:
        await until(lambda: src.errors[kind] == 1)
        h.clock.ns += 5 * MIN  # the outage lasted five minutes
        await until(lambda: h.replies.functions().count("TIME_SERIES_INTRADAY") == 2)
        await until(lambda: h.replies.functions()[-1] == "GLOBAL_QUOTE")
    # Assert: the minutes of the outage came from the intraday series, in order
    rows = h.rows("IBM")
    assert [t for t, *_ in rows] == sorted(t for t, *_ in rows)
    minutes = collections.Counter(t - t % MIN for t, _, _, f in rows if f & Flag.BACKFILL)
    assert set(minutes) == {OPEN_NS + m * MIN for m in range(40)}  # 09:30 .. 10:09
    assert src.backoff.attempt == 0  # reset after the recovery


async def test_premium_intraday_falls_back_to_quotes(h: Harness) -> None:
    h.replies.script.extend(["premium"])
    src = h.source(symbols=["IBM"])
    async with src:
        await until(lambda: "GLOBAL_QUOTE" in h.replies.functions())
    assert src.intraday_available is False
    assert src.errors["premium"] == 1


async def test_rejected_key_marks_the_source_down(h: Harness) -> None:
    h.replies.script.extend(["invalid_key"])
    src = h.source(symbols=["IBM"], backfill=False, auth_retry_s=3600)
    async with src:
        await until(lambda: src.health().state == "down")
        reason = src.health().reason
    assert "API key rejected" in reason
    assert len(h.replies.requests) == 1


async def test_no_requests_outside_market_hours(h: Harness) -> None:
    h.clock.ns = OPEN_NS + 2 * 86_400 * 10**9  # Thanksgiving
    src = h.source(symbols=["IBM"])
    async with src:
        await until(lambda: "market closed" in src.health().reason)
    assert h.replies.requests == []


async def test_intraday_mode_publishes_each_complete_bar_once(h: Harness) -> None:
    src = h.source(symbols=["IBM"], mode="intraday", backfill=False)
    async with src:
        await until(lambda: len(h.replies.requests) >= 3)
        h.clock.ns += 2 * MIN
        n = len(h.replies.requests)
        await until(lambda: len(h.replies.requests) >= n + 2)
    per_minute = collections.Counter(t - t % MIN for t, *_ in h.rows("IBM"))
    assert set(per_minute.values()) == {4}
    assert set(per_minute) == {OPEN_NS + m * MIN for m in range(37)}


def test_budget_is_spread_over_the_rest_of_the_session(h: Harness) -> None:
    # 10:05:10 ET, 25 requests a day, close at 16:00 ET: 5:54:50 = 21290 s for 25 requests
    src = h.source(
        requests_per_day=25, requests_per_minute=5, spread_budget=True, min_interval_s=12
    )
    assert src._pace_s() == pytest.approx(21290 / 25)


async def test_api_key_never_reaches_logs_status_or_metrics(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange: every kind of failure, logged at DEBUG everywhere (httpx included)
    caplog.set_level(logging.DEBUG)
    h.replies.script.extend(["ok", "500", "malformed", "timeout", "error", "ok", "ok", "ok"])
    h.replies.script.extend(["ok"] * 4 + ["information"])  # quotes the key back
    src = h.source(symbols=["IBM", "MSFT"])
    # Act
    async with src:
        await until(lambda: src.errors["quota_day"] == 1)
        status = json.dumps(src.health().details, default=str)
    text = "\n".join(
        r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    # Assert
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log its requests
    assert KEY not in text
    assert KEY not in status
    assert KEY not in h.ctx.metrics.render()
    assert "***" in text
