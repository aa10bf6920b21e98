"""Alpha Vantage, offline: recorded replies (tests/data/alphavantage), scripted failures, served
through ``httpx.MockTransport`` (unit tests) or an aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from aiohttp import web

from tests.support.httpserver import ThreadedHTTPServer

DATA = Path(__file__).resolve().parent.parent / "data" / "alphavantage"
ET = ZoneInfo("America/New_York")
FMT = "%Y-%m-%d %H:%M:%S"

# scenario name -> (HTTP status, file)
SCENARIOS: dict[str, tuple[int, str]] = {
    "note": (200, "note_minute_quota.json"),
    "information": (200, "information_daily_limit.json"),
    "premium": (200, "information_premium.json"),
    "error": (200, "error_invalid_call.json"),
    "invalid_key": (200, "error_invalid_key.json"),
    "malformed": (200, "malformed.json"),
    "500": (500, "http_500.html"),
    "unknown": (200, "global_quote_unknown.json"),
}


class AVReplies:
    """Answers ``/query`` from the recordings.

    ``script`` holds scenario names for the next requests (``"ok"`` = the recorded data,
    ``"timeout"`` = no answer in time); per-symbol scenarios go in ``by_symbol``.
    """

    def __init__(self, *, shift_s: int = 0, now: float | Callable[[], float] | None = None) -> None:
        self.shift_s = shift_s
        self._now = now
        self.script: collections.deque[str] = collections.deque()
        self.by_symbol: dict[str, str] = {}
        self.outage = False  # every request answers HTTP 500 while True
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        if callable(self._now):
            return self._now()
        return self._now if self._now is not None else time.time()

    def functions(self) -> list[str]:
        return [q.get("function", "") for q in self.requests]

    def reply(self, q: dict[str, str]) -> tuple[int, bytes, str]:
        with self.lock:
            self.requests.append(dict(q))
            step = self.script.popleft() if self.script else "ok"
        if self.outage:
            step = "500"
        sym = q.get("symbol", "")
        step = self.by_symbol.get(sym, step)
        if step == "timeout":
            return -1, b"", ""
        if step in SCENARIOS:
            status, name = SCENARIOS[step]
            ctype = "text/html" if name.endswith(".html") else "application/json"
            body = (DATA / name).read_bytes()
            # The daily-limit notice quotes the caller's key back ("detected your API key as …").
            body = body.replace(b"DEMO1234", q.get("apikey", "DEMO1234").encode())
            return status, body, ctype
        fn = q.get("function")
        if fn == "GLOBAL_QUOTE":
            body = json.loads((DATA / "global_quote_IBM.json").read_text())
            gq = body["Global Quote"]
            gq["01. symbol"] = sym
            if self.shift_s:
                # A live replay: the quote follows the recorded minute bars up to "now".
                now = self.now()
                gq["07. latest trading day"] = dt.datetime.fromtimestamp(now, ET).date().isoformat()
                bars = self._bars_until(now)
                if bars:
                    gq["05. price"] = bars[-1][1]["4. close"]
                    gq["06. volume"] = str(sum(int(b["5. volume"]) for _, b in bars))
            return 200, json.dumps(body).encode(), "application/json"
        if fn == "TIME_SERIES_INTRADAY":
            body = json.loads((DATA / "intraday_IBM_1min.json").read_text())
            body["Meta Data"]["2. Symbol"] = sym
            key = "Time Series (1min)"
            now = self.now()
            rows = {}
            for stamp, bar in body[key].items():
                t = dt.datetime.strptime(stamp, FMT).replace(tzinfo=ET).timestamp() + self.shift_s
                if t <= now:
                    rows[dt.datetime.fromtimestamp(t, ET).strftime(FMT)] = bar
            body[key] = rows
            if rows:
                body["Meta Data"]["3. Last Refreshed"] = next(iter(rows))
            return 200, json.dumps(body).encode(), "application/json"
        return 200, json.dumps({"Error Message": "Invalid API call."}).encode(), "application/json"

    def _bars_until(self, now: float) -> list[tuple[float, dict[str, str]]]:
        body = json.loads((DATA / "intraday_IBM_1min.json").read_text())
        out = []
        for stamp, bar in body["Time Series (1min)"].items():
            t = dt.datetime.strptime(stamp, FMT).replace(tzinfo=ET).timestamp() + self.shift_s
            if t <= now:
                out.append((t, bar))
        return sorted(out, key=lambda x: x[0])


def mock_transport(replies: AVReplies) -> httpx.MockTransport:
    """An httpx transport answering from ``replies`` (a timeout raises ReadTimeout)."""

    def handler(request: httpx.Request) -> httpx.Response:
        status, body, ctype = replies.reply(dict(request.url.params))
        if status < 0:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(status, content=body, headers={"Content-Type": ctype})

    return httpx.MockTransport(handler)


class AVServer(ThreadedHTTPServer):
    """The recordings over HTTP on 127.0.0.1 (``base_url = server.url + "/query"``)."""

    def __init__(self, replies: AVReplies, *, timeout_delay_s: float = 30.0) -> None:
        super().__init__(self._handle)
        self.replies = replies
        self.timeout_delay_s = timeout_delay_s

    async def _handle(self, request: web.Request) -> web.Response:
        status, body, ctype = self.replies.reply(dict(request.query))
        if status < 0:
            await asyncio.sleep(self.timeout_delay_s)
            status, body, ctype = 504, b"", "text/plain"
        return web.Response(status=status, body=body, headers={"Content-Type": ctype})
