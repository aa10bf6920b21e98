"""Both HTTP sources over real sockets to local servers on 127.0.0.1 — the set-up the
end-to-end tests give a tickserver subprocess — with the network guard's proxy variables set,
so anything not aimed at 127.0.0.1 would fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import netguard
from tests.support.alphavantage import AVReplies, AVServer
from tests.support.waiting import until
from tests.support.yahoo import SESSION_OPEN, YahooHTTPServer, YahooReplies, isolate_yfinance
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import Flag, TradeBatch
from tickserver.metrics import Metrics
from tickserver.sources.alphavantage import AlphaVantageConfig, AlphaVantageSource
from tickserver.sources.base import SourceContext
from tickserver.sources.yfinance import YFinanceConfig, YFinanceSource
from tickserver.symbols import Symbols

pytestmark = pytest.mark.integration


def live_shift() -> int:
    """Whole minutes that map the recording's 10:00 ET onto the current minute."""
    now = int(time.time())
    return (now - now % 60) - (SESSION_OPEN + 30 * 60)


@pytest.fixture(autouse=True)
def _offline_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in netguard.proxy_env().items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def ctx() -> SourceContext:
    return SourceContext(
        config=load_config(environ={}), bus=Bus(), symbols=Symbols(), metrics=Metrics()
    )


@pytest.fixture
def yahoo(tmp_path: Path) -> Iterator[YahooHTTPServer]:
    isolate_yfinance(tmp_path / "yf-cache")
    with YahooHTTPServer(YahooReplies(shift_s=live_shift())) as server:
        yield server


async def test_yfinance_reaches_a_local_yahoo_through_http_base_url(
    ctx: SourceContext, yahoo: YahooHTTPServer, tmp_path: Path
) -> None:
    # Arrange
    got: list[TradeBatch] = []
    ctx.bus.attach(Topic.RAW_TRADES, got.append, name="t")
    cfg = YFinanceConfig(
        symbols=["AAPL"],
        mode="poll",
        hours="always",
        http_base_url=yahoo.url,
        backfill_minutes=20,
        poll_interval_s=0.2,
        cache_dir=str(tmp_path / "yf-cache"),
    )
    src = YFinanceSource(ctx, cfg)
    # Act
    async with src:
        await until(lambda: src.polls >= 1 and got)
    # Assert: cookie, crumb and chart requests went to the local server, over HTTP
    paths = [p for _, p, _ in yahoo.replies.requests]
    assert "/v1/test/getcrumb" in paths
    assert "/v8/finance/chart/AAPL" in paths
    minutes = {int(t) // 60_000_000_000 for b in got for t in b.ts_event}
    assert len(minutes) == 19  # the last 20 complete minutes; the recording has no 09:47 bar
    assert all(b.flags[0] == Flag.SYNTHETIC for b in got)


async def test_alphavantage_over_http_survives_an_outage(ctx: SourceContext) -> None:
    # Arrange
    replies = AVReplies(shift_s=live_shift())
    got: list[TradeBatch] = []
    ctx.bus.attach(Topic.RAW_TRADES, got.append, name="t")
    with AVServer(replies) as server:
        cfg = AlphaVantageConfig(
            symbols=["IBM"],
            base_url=server.url + "/query",
            hours="always",
            min_interval_s=0.05,
            spread_budget=False,
            requests_per_minute=1000,
            requests_per_day=1000,
            backoff_base_s=0.05,
            backoff_max_s=0.1,
        )
        src = AlphaVantageSource(ctx, cfg, environ={"ALPHAVANTAGE_API_KEY": "local-test-key"})
        src.max_sleep_s = 0.05
        # Act
        async with src:
            await until(lambda: replies.functions().count("GLOBAL_QUOTE") >= 2)
            replies.outage = True
            await until(lambda: src.errors["http_5xx"] >= 2)
            replies.outage = False
            await until(lambda: replies.functions().count("TIME_SERIES_INTRADAY") >= 2)
            await until(lambda: src.health().state == "ok")
    # Assert
    assert src.backoff.attempt == 0
    assert all(q["apikey"] == "local-test-key" for q in replies.requests)
    backfilled = [b for b in got if b.flags[0] & Flag.BACKFILL]
    assert backfilled
