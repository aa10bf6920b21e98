"""``tickserver run`` as a real subprocess on a free port, exercised over real sockets."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import talib
from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from tests.support.server import TickServer

pytestmark = pytest.mark.integration

# A finite feed in event time (not paced): 12,000 events 5 ms apart = 60 s of market, ~60
# one-second bars per symbol, generated in well under a second.
FINITE_FEED = """
[market]
symbols = ["AAPL", "MSFT"]
intervals = ["1s", "1m"]
[engine]
advance_interval_ms = 20
bar_close_grace_ms = 0
[store]
enabled = false
[sources.sim]
rate = 200
batch_ms = 20
max_events = 12000
realtime = false
seed = 3
volatility = 3.0
{extra_indicators}
"""

INDICATORS_1S = (
    "\n".join(
        f"""
[[indicators]]
name = "{name}"
kind = "{kind}"
{params}
intervals = ["tick", "1s"]
"""
        for name, kind, params in [
            ("ema12", "ema", "period = 12"),
            ("ema26", "ema", "period = 26"),
            ("sma20", "sma", "period = 20"),
            ("rsi14", "rsi", "period = 14"),
            ("macd", "macd", "fast = 12\nslow = 26\nsignal = 9"),
            ("bb", "bbands", "period = 20\nk = 2.0"),
            ("atr14", "atr", "period = 14"),
            ("vwap", "vwap", ""),
            ("z20", "zscore", "period = 20"),
            ("sd20", "stddev", "period = 20"),
        ]
    )
    + """
[[signals]]
name = "ema_cross"
kind = "crossover"
interval = "1s"
fast = "ema12"
slow = "ema26"
"""
)

LIVE_FEED = """
[market]
symbols = ["AAPL", "MSFT", "NVDA"]
intervals = ["1s", "1m"]
[engine]
advance_interval_ms = 20
bar_close_grace_ms = 50
[store]
enabled = false
[sources.sim]
rate = 3000
batch_ms = 20
"""


def _wait_for(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _data(srv: TickServer, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
    body = srv.graphql(query, variables, **kw)
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def finite(tickserver: Callable[..., TickServer]) -> TickServer:
    srv = tickserver(config=FINITE_FEED.format(extra_indicators=INDICATORS_1S))

    # The feed stops after max_events; wait until every bar of it is closed.
    def settled() -> bool:
        st = _data(srv, "{ status { sources { details } } }")["status"]["sources"][0]["details"]
        return st.get("events", 0) >= 12000

    _wait_for(settled, what="the finite feed to finish")
    time.sleep(1.5)  # > 1s interval + grace: the last 1s bars close on the clock
    return srv


def test_every_query_answers_consistently(finite: TickServer) -> None:
    # Act
    d = _data(
        finite,
        """{ symbols
            quote(symbol: "AAPL") { symbol last bid ask bidSize askSize mid spread ts tsMs }
            quotes { symbol last }
            ticks(symbol: "AAPL", last: 50) { symbol ts tsMs price size seq side }
            bars(symbol: "AAPL", interval: "1s", last: 100) {
                ts open high low close volume vwap trades final }
            book(symbol: "AAPL", depth: 5) {
                bids { price size } asks { price size } mid spread microprice imbalance seq }
            indicators(symbol: "AAPL", interval: "1s") { name value ready provisional ts }
            signals(last: 10) { symbol rule direction value ts }
            status {
                version uptimeS ready sources { name state } sinks { name }
                engine { state } counters
            }
        }""",
    )
    # Assert
    assert d["symbols"] == ["AAPL", "MSFT"]
    q = d["quote"]
    assert q["bid"] < q["ask"]
    assert q["bid"] <= q["last"] <= q["ask"] or q["last"] is not None
    assert {x["symbol"] for x in d["quotes"]} == {"AAPL", "MSFT"}
    ticks = d["ticks"]
    assert len(ticks) == 50
    assert all(t["symbol"] == "AAPL" and t["price"] > 0 for t in ticks)
    assert [t["seq"] for t in ticks] == sorted(t["seq"] for t in ticks)
    bars = d["bars"]
    assert len(bars) >= 2
    for b in bars:
        assert b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"]
        assert b["volume"] > 0
        assert b["trades"] > 0
    book = d["book"]
    assert len(book["bids"]) == 5
    assert book["bids"][0]["price"] < book["asks"][0]["price"]
    assert [lv["price"] for lv in book["bids"]] == sorted(
        (lv["price"] for lv in book["bids"]), reverse=True
    )
    names = {i["name"] for i in d["indicators"]}
    assert {"ema12", "macd.signal", "bb.upper", "atr14", "vwap", "z20"} <= names
    assert d["status"]["version"]
    assert d["status"]["engine"]["state"] == "ok"


def test_unknown_symbol_and_interval_are_errors_with_codes(finite: TickServer) -> None:
    body = finite.graphql('{ quote(symbol: "NOPE") { last } }')
    assert body["errors"][0]["extensions"]["code"] == "UNKNOWN_SYMBOL"
    body = finite.graphql('{ bars(symbol: "AAPL", interval: "7m") { close } }')
    assert body["errors"][0]["extensions"]["code"] == "UNKNOWN_INTERVAL"


def test_query_depth_and_alias_limits_are_enforced(finite: TickServer) -> None:
    aliases = " ".join(f"a{i}: symbols" for i in range(40))
    body = finite.graphql(f"{{ {aliases} }}")
    assert "errors" in body
    assert "alias" in body["errors"][0]["message"].lower()


def _talib_last(values: np.ndarray) -> float:
    finite_vals = values[~np.isnan(values)]
    return float(finite_vals[-1])


def test_indicators_equal_talib_over_the_reported_ticks_and_bars(finite: TickServer) -> None:
    # Arrange: every trade of the finished feed is still in the ring
    d = _data(
        finite,
        """{ ticks(symbol: "MSFT", last: 100000) { price size tsMs }
             bars(symbol: "MSFT", interval: "1s", last: 10000) { high low close final }
             t: indicators(symbol: "MSFT", interval: "tick") { name value }
             b: indicators(symbol: "MSFT", interval: "1s") { name value provisional } }""",
    )
    px = np.array([t["price"] for t in d["ticks"]])
    sz = np.array([t["size"] for t in d["ticks"]])
    tick_vals = {i["name"]: i["value"] for i in d["t"]}
    bar_vals = {i["name"]: i["value"] for i in d["b"]}
    # The last bar is still forming: bar indicators include it provisionally, as TA-Lib
    # would if that bar closed now.
    assert all(i["provisional"] for i in d["b"])
    assert [b["final"] for b in d["bars"]][-2:] == [True, False]
    closes = np.array([b["close"] for b in d["bars"]])
    highs = np.array([b["high"] for b in d["bars"]])
    lows = np.array([b["low"] for b in d["bars"]])
    assert len(px) > 100
    assert len(closes) >= 40

    def expect(series: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> dict[str, float]:
        macd, sig, hist = talib.MACD(series, 12, 26, 9)
        up, mid, low = talib.BBANDS(series, 20, 2.0, 2.0)
        sma20 = talib.SMA(series, 20)
        sd20 = talib.STDDEV(series, 20, 1.0)
        return {
            "ema12": _talib_last(talib.EMA(series, 12)),
            "ema26": _talib_last(talib.EMA(series, 26)),
            "sma20": _talib_last(sma20),
            "rsi14": _talib_last(talib.RSI(series, 14)),
            "macd": _talib_last(macd),
            "macd.signal": _talib_last(sig),
            "macd.hist": _talib_last(hist),
            "bb.upper": _talib_last(up),
            "bb.middle": _talib_last(mid),
            "bb.lower": _talib_last(low),
            "atr14": _talib_last(talib.ATR(hi, lo, series, 14)),
            "sd20": _talib_last(sd20),
            "z20": (series[-1] - sma20[-1]) / sd20[-1],
        }

    # Act / Assert: ticks (high = low = close = the trade price)
    for name, want in expect(px, px, px).items():
        assert math.isclose(tick_vals[name], want, rel_tol=1e-9, abs_tol=1e-12), name
    assert math.isclose(tick_vals["vwap"], float((px * sz).sum() / sz.sum()), rel_tol=1e-9)
    for name, want in expect(closes, highs, lows).items():
        assert math.isclose(bar_vals[name], want, rel_tol=1e-9, abs_tol=1e-12), name


async def _collect(
    url: str, subprotocol: str, query: str, n: int, init: dict[str, Any] | None = None
) -> list[Any]:
    transport = WebsocketsTransport(url=url, subprotocols=[subprotocol], init_payload=init or {})
    out: list[Any] = []
    async with Client(transport=transport) as session:
        async for result in session.subscribe(gql(query)):
            out.append(result)
            if len(out) >= n:
                break
    return out


@pytest.mark.parametrize(
    "subprotocol",
    [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL, WebsocketsTransport.APOLLO_SUBPROTOCOL],
)
def test_subscriptions_over_both_websocket_protocols(
    tickserver: Callable[..., TickServer], subprotocol: str
) -> None:
    # Arrange
    srv = tickserver(config=LIVE_FEED)
    # Act
    ticks = asyncio.run(
        _collect(
            srv.ws_url,
            subprotocol,
            'subscription { ticks(symbols: ["AAPL"]) { symbol price seq } }',
            3,
        )
    )
    quotes = asyncio.run(
        _collect(srv.ws_url, subprotocol, "subscription { quotes { symbol bid ask } }", 3)
    )
    bars = asyncio.run(
        _collect(
            srv.ws_url,
            subprotocol,
            'subscription { bars(interval: "1s") { symbol open high low close final } }',
            1,
        )
    )
    book = asyncio.run(
        _collect(
            srv.ws_url,
            subprotocol,
            'subscription { book(symbol: "NVDA", depth: 3) { bids { price } asks { price } } }',
            2,
        )
    )
    # Assert
    rows = [t for msg in ticks for t in msg["ticks"]]
    assert rows
    assert all(t["symbol"] == "AAPL" for t in rows)
    seqs = [t["seq"] for t in rows]
    assert seqs == sorted(seqs)
    for msg in quotes:
        for q in msg["quotes"]:
            assert q["bid"] < q["ask"]
    for b in bars[0]["bars"]:
        assert b["final"]
        assert b["low"] <= b["open"] <= b["high"]
    assert book[0]["book"]["bids"][0]["price"] < book[0]["book"]["asks"][0]["price"]


def test_unknown_symbol_in_a_subscription_is_an_error(
    tickserver: Callable[..., TickServer],
) -> None:
    srv = tickserver(config=LIVE_FEED)
    with pytest.raises(TransportQueryError, match="unknown symbol"):
        asyncio.run(
            _collect(
                srv.ws_url,
                WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
                'subscription { ticks(symbols: ["NOPE"]) { price } }',
                1,
            )
        )


def test_auth_required_on_http_and_websocket_when_a_token_is_set(
    tickserver: Callable[..., TickServer],
) -> None:
    # Arrange
    srv = tickserver(config=LIVE_FEED, env={"TICKSERVER_API_TOKEN": "s3cret"})
    # Act / Assert: HTTP
    assert httpx.post(srv.url + "/graphql", json={"query": "{ symbols }"}).status_code == 401
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert srv.graphql("{ symbols }", token="s3cret")["data"]["symbols"]
    # WebSocket: no token -> 4401, wrong token -> 4403, right token -> data
    import websockets

    async def close_code(init: dict[str, Any]) -> int | None:
        async with websockets.connect(srv.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            import json

            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    assert asyncio.run(close_code({})) == 4401
    assert asyncio.run(close_code({"token": "wrong"})) == 4403
    got = asyncio.run(
        _collect(
            srv.ws_url,
            "graphql-transport-ws",
            "subscription { quotes { symbol } }",
            1,
            {"token": "s3cret"},
        )
    )
    assert got
    # The token never appears in the logs.
    assert "s3cret" not in srv.logs()


def test_auth_off_by_default(tickserver: Callable[..., TickServer]) -> None:
    srv = tickserver(config=LIVE_FEED)
    assert httpx.post(srv.url + "/graphql", json={"query": "{ symbols }"}).status_code == 200
    assert httpx.get(srv.url + "/metrics").status_code == 200


def test_config_error_names_the_key_and_exits_2(tmp_path: Any) -> None:
    srv = TickServer(tmp_path, config="[market]\nring_capacity = 'lots'\n")
    with pytest.raises(
        RuntimeError, match=r"market\.ring_capacity: Input should be a valid integer"
    ):
        srv.start()
    assert srv.proc is not None
    assert srv.proc.returncode == 2


def test_stalled_subscriber_does_not_slow_the_others(tickserver: Callable[..., TickServer]) -> None:
    # Arrange: one client subscribes to every trade and never reads
    import socket

    srv = tickserver(config=LIVE_FEED.replace("rate = 3000", "rate = 20000"))
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", srv.port))
    stalled.sendall(
        b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    )
    from tickserver.benchmarks.fanout import _mask_frame

    stalled.sendall(_mask_frame(b'{"type":"connection_init"}'))
    query = "subscription { ticks { symbol ts tsMs price size seq side } }"
    stalled.sendall(
        _mask_frame(orjson.dumps({"type": "subscribe", "id": "1", "payload": {"query": query}}))
    )
    # Act: a healthy client keeps receiving while the stalled one's buffer fills up
    got = asyncio.run(
        _collect(srv.ws_url, "graphql-transport-ws", "subscription { ticks { seq } }", 60)
    )
    # Assert: the healthy client got every trade, in order, with no gap; the server closed
    # the stalled one
    seqs = [t["seq"] for msg in got for t in msg["ticks"]]
    assert np.all(np.diff(seqs) == 1)

    def closed_slow() -> bool:
        text = httpx.get(srv.url + "/metrics").text
        return "tickserver_ws_slow_consumers_total 1" in text

    _wait_for(closed_slow, timeout=30, what="the stalled subscriber to be closed")
    stalled.close()


def test_sigterm_exits_zero_and_closes_websockets_going_away(
    tickserver: Callable[..., TickServer],
) -> None:
    # Arrange
    srv = tickserver(config=LIVE_FEED)
    import websockets

    async def watch() -> int | None:
        async with websockets.connect(srv.ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send('{"type":"connection_init"}')
            await ws.recv()
            sub = {
                "type": "subscribe",
                "id": "1",
                "payload": {"query": "subscription { quotes { symbol } }"},
            }
            await ws.send(orjson.dumps(sub).decode())
            await ws.recv()
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    # Act
    code = asyncio.run(watch())
    rc = srv.wait(timeout=20)
    # Assert
    assert code == 1001
    assert rc == 0
    events = [r.get("event") for r in srv.log_records()]
    assert "shutdown" in events
    assert "stopped" in events


def test_a_component_that_cannot_start_is_reported_and_exits_2(tmp_path: Any) -> None:
    # Arrange: the store's folder is a file, so the store cannot create its spool
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    srv = TickServer(tmp_path / "srv", config=f'[store]\npath = "{blocker}/data"\n')
    # Act / Assert
    with pytest.raises(RuntimeError, match="cannot start"):
        srv.start()
    assert srv.proc is not None
    assert srv.proc.returncode == 2
    assert "Traceback" not in srv.logs()
