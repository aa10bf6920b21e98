"""Yahoo Finance, offline: recorded chart/cookie/crumb replies and a recorded live stream.

- :class:`YahooReplies` answers yfinance's HTTP requests from ``tests/data/yfinance`` (optionally
  time-shifted so the recording ends "now"), with scripted failures (429, malformed, 404).
- :class:`RecordedSession` is a ``curl_cffi.requests.Session`` subclass serving those replies
  in-process: the session yfinance accepts by injection.
- :class:`YahooHTTPServer` serves the same replies over HTTP on 127.0.0.1 (for a tickserver
  subprocess with ``http_base_url``).
- :class:`YahooStreamServer` is a WebSocket server on 127.0.0.1 that speaks Yahoo's streaming
  protocol: it waits for ``{"subscribe": [...]}`` and replays recorded frames (base64
  ``PricingData``), re-stamped with the current time, following a per-connection script that
  can send garbage, go silent, or drop the connection.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookiejar import Cookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from curl_cffi.requests import Response, Session
from curl_cffi.requests.headers import Headers
from yfinance.pricing_pb2 import PricingData

from tests.support.httpserver import ThreadedHTTPServer

DATA = Path(__file__).resolve().parent.parent / "data" / "yfinance"
RECORDED_AT = 1795534220  # 2026-11-24 15:30:20 UTC (10:30:20 ET), see tests/data/make_recordings.py
RECORDED_AT_NS = RECORDED_AT * 1_000_000_000
SESSION_OPEN = 1795530600


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json;charset=utf-8"
    cookies: dict[str, str] = field(default_factory=dict)


class YahooReplies:
    """Answers yfinance's requests from the recordings.

    Parameters
    ----------
    shift_s
        Added to every timestamp in chart replies (a multiple of 60 keeps bars on minutes).
    now
        Seconds "now" for the replies: bars opening after it are not served yet.
    """

    def __init__(self, *, shift_s: int = 0, now: float | Callable[[], float] | None = None) -> None:
        self.shift_s = shift_s
        self._now = now
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        # Scripted replies for chart (1m) requests, consumed in order: "429", "malformed", …
        self.script: collections.deque[str] = collections.deque()
        self.lock = threading.Lock()

    def now(self) -> float:
        if callable(self._now):
            return self._now()
        return self._now if self._now is not None else time.time()

    def chart_requests(self) -> list[dict[str, str]]:
        """Parameters of the 1m history requests served so far."""
        return [
            p for _, path, p in self.requests if "/chart/" in path and p.get("interval") == "1m"
        ]

    def reply(self, method: str, url: str, params: dict[str, str]) -> Reply:
        parts = urlsplit(url)
        q = dict(parse_qsl(parts.query))
        q.update({k: str(v) for k, v in (params or {}).items()})
        with self.lock:
            self.requests.append((method, parts.path, q))
        host = parts.hostname or ""
        path = parts.path
        if path.endswith("/v1/test/getcrumb"):
            return Reply(200, (DATA / "getcrumb.txt").read_bytes(), "text/plain;charset=utf-8")
        if "/v8/finance/chart/" in path:
            symbol = path.rsplit("/", 1)[-1]
            return self._chart(symbol, q)
        if host == "fc.yahoo.com" or path in ("", "/"):
            return Reply(
                404,
                (DATA / "fc.yahoo.com.html").read_bytes(),
                "text/html",
                cookies={"A3": "d=AQABBKx3Q2cCEO1y&S=AQAAAjFJ"},
            )
        return Reply(404, b"<html><body>Not Found</body></html>", "text/html")

    def _chart(self, symbol: str, q: dict[str, str]) -> Reply:
        interval = q.get("interval", "1d")
        if interval == "1m":
            with self.lock:
                step = self.script.popleft() if self.script else "ok"
            if step == "429":
                return Reply(429, (DATA / "too_many_requests.txt").read_bytes(), "text/plain")
            if step == "malformed":
                return Reply(200, (DATA / "chart_malformed.json").read_bytes())
        path = DATA / f"chart_{symbol}_{'1m' if interval == '1m' else '1d'}.json"
        if not path.exists():
            return Reply(404, (DATA / "chart_not_found.json").read_bytes())
        body = json.loads(path.read_text())
        if interval == "1m":
            self._shift_and_cut(body, q)
        return Reply(200, json.dumps(body).encode())

    def _shift_and_cut(self, body: dict[str, Any], q: dict[str, str]) -> None:
        res = body["chart"]["result"][0]
        s = self.shift_s
        meta = res["meta"]
        meta["regularMarketTime"] += s
        for period in meta["currentTradingPeriod"].values():
            period["start"] += s
            period["end"] += s
        for row in meta["tradingPeriods"]:
            for p in row:
                p["start"] += s
                p["end"] += s
        lo = int(q.get("period1", 0))
        hi = int(q.get("period2", 2**40))
        now = self.now()
        ts = [t + s for t in res["timestamp"]]
        keep = [i for i, t in enumerate(ts) if lo <= t < hi and t <= now]
        res["timestamp"] = [ts[i] for i in keep]
        quote = res["indicators"]["quote"][0]
        for k in quote:
            quote[k] = [quote[k][i] for i in keep]


def _response(url: str, reply: Reply) -> Response:
    r = Response()
    r.url = url
    r.status_code = reply.status
    r.ok = 200 <= reply.status < 400
    r.reason = "OK" if r.ok else "Error"
    r.content = reply.body
    r.headers = Headers({"content-type": reply.content_type})
    return r


class RecordedSession(Session):  # type: ignore[type-arg]
    """A curl_cffi session that never touches the network: yfinance gets recorded replies."""

    def __init__(self, replies: YahooReplies) -> None:
        super().__init__()
        self.replies = replies

    def request(self, method: Any, url: str, params: Any = None, **kwargs: Any) -> Response:
        reply = self.replies.reply(str(method), url, dict(params or {}))
        for name, value in reply.cookies.items():
            # Yahoo's A3 consent cookie lives for a year; yfinance reads its expiry.
            self.cookies.jar.set_cookie(_cookie(name, value, ".yahoo.com", time.time() + 3e7))
        return _response(url, reply)


def _cookie(name: str, value: str, domain: str, expires: float) -> Cookie:
    return Cookie(
        version=0,
        name=name,
        value=value,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=True,
        domain_initial_dot=True,
        path="/",
        path_specified=True,
        secure=True,
        expires=int(expires),
        discard=False,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": None, "SameSite": "None"},
    )


class YahooHTTPServer(ThreadedHTTPServer):
    """The recordings over HTTP on 127.0.0.1, in a background thread."""

    def __init__(self, replies: YahooReplies) -> None:
        super().__init__(self._handle)
        self.replies = replies

    async def _handle(self, request: web.Request) -> web.Response:
        reply = self.replies.reply(request.method, str(request.url), {})
        resp = web.Response(status=reply.status, body=reply.body)
        resp.headers["Content-Type"] = reply.content_type
        for k, v in reply.cookies.items():
            resp.set_cookie(k, v, max_age=31_536_000)
        return resp


# ----------------------------------------------------------------------------- stream


def recorded_frames() -> list[str]:
    """The recorded stream frames, in order."""
    return (DATA / "stream_AAPL_MSFT.jsonl").read_text().splitlines()


def restamp(frame: str, ms: int) -> str:
    """The frame with its PricingData ``time`` set to ``ms``."""
    obj = json.loads(frame)
    msg = PricingData()
    msg.ParseFromString(base64.b64decode(obj["message"]))
    if msg.time:
        msg.time = ms
    obj["message"] = base64.b64encode(msg.SerializeToString()).decode()
    return json.dumps(obj)


def pricing_frame(symbol: str, price: float, ms: int, day_volume: int = 0, **fields: Any) -> str:
    """A wire frame for one price update."""
    msg = PricingData(
        id=symbol, price=price, time=ms, day_volume=day_volume, price_hint=2, **fields
    )
    return json.dumps(
        {"type": "pricing", "message": base64.b64encode(msg.SerializeToString()).decode()}
    )


GARBAGE = [
    "this is not json",
    json.dumps({"type": "pricing"}),
    json.dumps({"type": "pricing", "message": "!!not base64!!"}),
    json.dumps({"type": "pricing", "message": base64.b64encode(b"\xff\xff\xff\xff").decode()}),
]


@dataclass
class Step:
    """One step of a connection script: ``send`` frames, ``garbage``, ``silence`` or ``close``."""

    op: str
    count: int = 0
    interval_s: float = 0.05
    seconds: float = 0.0


class YahooStreamServer:
    """Yahoo's streaming protocol on 127.0.0.1, driven by one script per connection.

    ``scripts[i]`` is played on the i-th connection (the last script repeats). After the script
    the connection stays open and silent. Frames come from the recording, cycled, re-stamped
    with the current time (``restamp=True``) so live sources accept them as live.
    """

    def __init__(
        self,
        scripts: list[list[Step]],
        *,
        restamp_time: bool = True,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.scripts = scripts
        self.restamp_time = restamp_time
        self.clock_ns = clock_ns
        self.frames = recorded_frames()
        self._cursor = 0
        self.connections = 0
        self.subscriptions: list[list[str]] = []
        self.sent_frames = 0
        self.refuse = False
        self._server: Any = None
        self._active: set[Any] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/?version=2"

    def _next_frame(self) -> str:
        f = self.frames[self._cursor % len(self.frames)]
        self._cursor += 1
        return restamp(f, self.clock_ns() // 1_000_000) if self.restamp_time else f

    async def _handler(self, ws: Any) -> None:
        if self.refuse:
            await ws.close(1013, "try again later")
            return
        idx = self.connections
        self.connections += 1
        self._active.add(ws)
        script = self.scripts[min(idx, len(self.scripts) - 1)] if self.scripts else []
        try:
            first = await asyncio.wait_for(ws.recv(), 5)
            self.subscriptions.append(json.loads(first).get("subscribe", []))
            for step in script:
                if step.op == "send":
                    for _ in range(step.count):
                        await ws.send(self._next_frame())
                        self.sent_frames += 1
                        await asyncio.sleep(step.interval_s)
                elif step.op == "garbage":
                    for g in GARBAGE:
                        await ws.send(g)
                    await ws.send(b"\x00\x01binary garbage")
                elif step.op == "silence":
                    await asyncio.sleep(step.seconds)
                elif step.op == "close":
                    await ws.close(1011, "forced disconnect")
                    return
            await ws.wait_closed()  # stay open and silent until either side closes
        except Exception:
            return
        finally:
            self._active.discard(ws)

    async def drop(self) -> None:
        """Force-close every open connection (a network blip)."""
        for ws in list(self._active):
            await ws.close(1011, "forced disconnect")

    async def start(self) -> YahooStreamServer:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handler, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class ThreadedStreamServer:
    """A :class:`YahooStreamServer` on its own event loop thread (for subprocess tests)."""

    def __init__(self, server: YahooStreamServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="yahoo-ws", daemon=True)

    def start(self) -> ThreadedStreamServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self

    def set_refuse(self, refuse: bool) -> None:
        """Refuse (close at once) new connections, or accept them again."""
        self._loop.call_soon_threadsafe(setattr, self.server, "refuse", refuse)

    def drop(self) -> None:
        """Force-close every open connection."""
        asyncio.run_coroutine_threadsafe(self.server.drop(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()  # an unclosed loop warns when collected, in a later test


def iter_minutes(start_s: int, end_s: int) -> Iterator[int]:
    """Minute starts in ``[start_s, end_s)``."""
    t = start_s - start_s % 60
    while t < end_s:
        yield t
        t += 60


def isolate_yfinance(cache_dir: Path) -> None:
    """Reset yfinance's process-wide state between tests: the shared YfData (session, cookie,
    crumb), its in-memory reply cache, and the on-disk time-zone/cookie caches (moved to
    ``cache_dir``); plus tickserver's process-wide rate limiters."""
    import yfinance.cache as yc
    from yfinance.data import SingletonMeta, YfData

    from tickserver.sources.ratelimit import reset_limiters

    yc.set_tz_cache_location(str(cache_dir))
    yc._TzCacheManager._tz_cache = None
    yc._CookieCacheManager._Cookie_cache = None
    SingletonMeta._instances.pop(YfData, None)
    YfData.cache_get.cache_clear()
    reset_limiters()
