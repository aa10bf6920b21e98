"""End to end: ``tickserver run`` (a subprocess) with the yfinance and Alpha Vantage sources
side by side, for different symbols, against local servers replaying recorded provider
traffic (time-shifted to now). Quotes and 1m bars come out over GraphQL, and a forced
reconnect / outage longer than a minute leaves no hole in the 1m bars.

Nothing leaves the machine: the subprocess runs with the network guard (``sitecustomize``) and
proxy variables that send any non-loopback libcurl/httpx/websockets traffic to a closed port.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import netguard
from tests.support.alphavantage import AVReplies, AVServer
from tests.support.server import TickServer
from tests.support.waiting import until_sync
from tests.support.yahoo import (
    SESSION_OPEN,
    Step,
    ThreadedStreamServer,
    YahooHTTPServer,
    YahooReplies,
    YahooStreamServer,
)
from tickserver import _core

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(_core, "Engine"), reason="needs the C++ core Engine (core branch)"
    ),
]

SITE = Path(__file__).resolve().parents[1] / "support" / "site"
MIN_MS = 60_000.0

BARS = """query($s: String!) {
  bars(symbol: $s, interval: "1m", last: 1000, forming: false) { tsMs open close volume final }
}"""
QUOTE = "query($s: String!) { quote(symbol: $s) { symbol last bid ask tsMs } }"
STATUS = "{ status { ready sources { name state reason details } } }"


def live_shift() -> int:
    """Whole minutes mapping the recording's 10:00 ET onto the current minute."""
    now = int(time.time())
    return (now - now % 60) - (SESSION_OPEN + 30 * 60)


@pytest.fixture
def providers() -> Iterator[dict[str, Any]]:
    shift = live_shift()
    yahoo_http = YahooHTTPServer(YahooReplies(shift_s=shift)).start()
    stream = ThreadedStreamServer(YahooStreamServer([[Step("send", 100_000, 0.2)]])).start()
    av = AVServer(AVReplies(shift_s=shift)).start()
    try:
        yield {"shift": shift, "yahoo_http": yahoo_http, "stream": stream, "av": av}
    finally:
        av.stop()
        stream.stop()
        yahoo_http.stop()


def config(p: dict[str, Any], cache: Path) -> str:
    return f"""
[market]
symbols = ["AAPL", "MSFT", "IBM"]

[store]
enabled = false

[sources]
enabled = ["yfinance", "alphavantage"]

[sources.yfinance]
symbols = ["AAPL", "MSFT"]
mode = "stream"
hours = "always"
stream_url = "{p["stream"].server.url}"
http_base_url = "{p["yahoo_http"].url}"
stale_after_s = 5
reconnect_base_s = 0.2
reconnect_max_s = 1
backfill_minutes = 25
cache_dir = "{cache}"

[sources.alphavantage]
symbols = ["IBM"]
base_url = "{p["av"].url}/query"
hours = "always"
min_interval_s = 1
spread_budget = false
requests_per_minute = 120
requests_per_day = 5000
backoff_base_s = 0.5
backoff_max_s = 2
"""


@pytest.fixture
def server(
    tickserver: Callable[..., TickServer], providers: dict[str, Any], tmp_path: Path
) -> TickServer:
    env = netguard.proxy_env() | {
        "ALPHAVANTAGE_API_KEY": "e2e-secret-key",
        "PYTHONPATH": os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p),
    }
    return tickserver(config=config(providers, tmp_path / "yf-cache"), env=env)


def bars(srv: TickServer, symbol: str) -> list[dict[str, Any]]:
    body = srv.graphql(BARS, {"s": symbol})
    assert "errors" not in body, body
    return list(body["data"]["bars"])


def sources(srv: TickServer) -> dict[str, dict[str, Any]]:
    body = srv.graphql(STATUS)
    return {s["name"]: s for s in body["data"]["status"]["sources"]}


def holes(rows: list[dict[str, Any]], allowed: set[float]) -> list[float]:
    """Minutes (epoch ms) between the first and last bar that have no bar."""
    have = {r["tsMs"] for r in rows}
    first, last = min(have), max(have)
    return [
        m
        for m in (first + i * MIN_MS for i in range(int((last - first) / MIN_MS) + 1))
        if m not in have and m not in allowed
    ]


def test_live_sources_serve_quotes_and_hole_free_1m_bars_across_an_outage(
    server: TickServer, providers: dict[str, Any]
) -> None:
    # The recording has no AAPL/MSFT bar for 09:47 ET; that hole is the provider's.
    null_minute = (SESSION_OPEN + 17 * 60 + providers["shift"]) * 1000.0
    stream: ThreadedStreamServer = providers["stream"]
    av_replies: AVReplies = providers["av"].replies

    # Live: quotes for every symbol, backfilled 1m bars before them.
    until_sync(
        lambda: all(
            server.graphql(QUOTE, {"s": s})["data"]["quote"]["last"]
            for s in ("AAPL", "MSFT", "IBM")
        ),
        what="quotes",
    )
    assert len(bars(server, "AAPL")) >= 20
    assert len(bars(server, "IBM")) >= 20

    # Outage: the stream refuses connections and Alpha Vantage answers 500 for over a minute.
    stream.set_refuse(True)
    stream.drop()
    av_replies.outage = True
    start_min = time.time() // 60
    until_sync(lambda: time.time() // 60 >= start_min + 2, timeout=200, what="a full minute")
    stream.set_refuse(False)
    av_replies.outage = False

    # Recovery: reconnected, backfilled, live again.
    until_sync(
        lambda: (
            sources(server)["yfinance"]["details"]["connected"]
            and sources(server)["alphavantage"]["state"] == "ok"
        ),
        timeout=60,
        what="recovery",
    )
    outage_minute = (start_min + 1) * MIN_MS
    until_sync(
        lambda: (
            max(r["tsMs"] for r in bars(server, "AAPL")) >= outage_minute
            and max(r["tsMs"] for r in bars(server, "IBM")) >= outage_minute
        ),
        timeout=90,
        what="bars after the outage",
    )
    for sym in ("AAPL", "MSFT"):
        rows = bars(server, sym)
        assert outage_minute in {r["tsMs"] for r in rows}, sym
        assert holes(rows, {null_minute}) == [], sym
    assert holes(bars(server, "IBM"), set()) == []

    status = sources(server)
    yf_errors = status["yfinance"]["details"]["errors"]
    assert yf_errors.get("connect", 0) + yf_errors.get("disconnect", 0) >= 1
    assert status["alphavantage"]["details"]["errors"]["http_5xx"] >= 1
    assert "e2e-secret-key" not in server.logs()
    assert "netguard: blocked" not in server.logs()


def test_entry_point_plugin_runs_under_tickserver_run(
    tickserver: Callable[..., TickServer], tmp_path: Path
) -> None:
    # Arrange: the example package, discoverable through its entry point only
    from tests.support.plugins import EXAMPLE_SRC, write_example_dist_info

    site = write_example_dist_info(tmp_path / "site")
    path = os.pathsep.join([str(SITE), str(site), str(EXAMPLE_SRC)])
    # Act
    srv = tickserver(
        ["run", "--source", "example", "--symbols", "DEMO"],
        config="[store]\nenabled = false\n[sources.example]\ninterval_s = 0.05\n",
        env={"PYTHONPATH": path},
    )
    # Assert
    until_sync(lambda: srv.graphql(QUOTE, {"s": "DEMO"})["data"]["quote"]["last"], what="a trade")
    assert sources(srv)["example"]["state"] == "ok"
