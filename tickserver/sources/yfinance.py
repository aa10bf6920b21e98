"""Yahoo Finance through yfinance (≥ 1.7): a live WebSocket stream, polling, and gap backfill.

**Live stream.** The source speaks yfinance's WebSocket protocol itself (``yfinance.live``
hides reconnects and errors, which a server must control): it connects to ``stream_url``
(``wss://streamer.finance.yahoo.com/?version=2``), sends ``{"subscribe": [symbols]}`` (again
every ``resubscribe_s``, as yfinance does), and receives JSON text frames
``{"type": "pricing", "message": "<base64>"}`` whose payload is a ``PricingData`` protobuf,
decoded with yfinance's own generated class (``yfinance.pricing_pb2``).

From each message:

- a **trade** at ``time`` (ms) with the ``price`` (float32 on the wire, rounded to
  ``price_hint`` decimals). Yahoo sends a cumulative ``day_volume`` rather than trade sizes, so
  the size is ``last_size`` when present, else the increase of ``day_volume`` since the
  previous message of that symbol *on the same connection*; the first message of a
  connection, and a message whose day volume went down (a new day, a correction), has size 0
  (the volume before it is unknown or is already in backfilled bars). A message with neither
  a new price nor new volume is not a trade.
- a **quote** when both ``bid`` and ``ask`` are present (sizes 0 when absent).

Heartbeats are skipped; undecodable frames (not JSON, no ``message``, bad base64, bad
protobuf) are counted as ``decode`` errors and skipped. With ``hours = "regular"`` ticks
outside the exchange session are dropped (``extended``: 04:00-20:00 ET; ``always``: none).

**Reconnects** use exponential backoff with full jitter (``reconnect_base_s`` doubling up to
``reconnect_max_s``; reset once a connection delivered data). A **staleness watchdog** closes a
connection that stays silent for ``stale_after_s`` while the market is open (counted as
``tickserver_source_reconnects_total{reason="stale"}``). Outside the session the source
disconnects and sleeps until the next open.

**Backfill.** At start and after every gap (each reconnect, including watchdog ones) live ticks
are held back per symbol while the complete 1m bars between the last published event and the
resumption of live data are fetched from yfinance's intraday history and published as
synthetic trades flagged ``BACKFILL|SYNTHETIC``; then the held ticks are released. See
:mod:`tickserver.sources.backfill` for why this keeps the engine's bars in order. A backfill
that cannot finish within ``backfill_timeout_s`` is abandoned (logged, counted) rather than
delaying live data further.

**Polling** (``mode = "poll"``, or ``auto`` while the stream has been down for
``fallback_after_s``) fetches recent 1m history every ``poll_interval_s`` and publishes the
complete bars not yet published — each bar exactly once.

**Rate limiting.** Every yfinance HTTP call runs in a thread (``asyncio.to_thread``) behind the
process-wide ``yfinance`` limiter (``requests_per_minute``, ``burst``). ``YFRateLimitError`` or
HTTP 429 puts the whole provider in a penalty box with exponential backoff
(``rate_limit_backoff_s`` up to ``rate_limit_backoff_max_s``), counted as
``rate_limited`` errors; nothing crashes or spins.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tickserver.calendar import MINUTE_NS, NS, Hours, MarketCalendar, floor_minute, get_calendar
from tickserver.config import CsvList
from tickserver.events import quotes_from_columns, trades_from_columns
from tickserver.sources.backfill import BarCoverage, Bars
from tickserver.sources.base import Source, SourceContext, SourcePlugin
from tickserver.sources.ratelimit import Backoff, RateLimiter, limiter

log = logging.getLogger(__name__)

DEFAULT_STREAM_URL = "wss://streamer.finance.yahoo.com/?version=2"
HEARTBEAT_QUOTE_TYPE = 7  # PricingData.quote_type of Yahoo's heartbeat messages
MAX_1M_HISTORY_DAYS = 7  # Yahoo serves 1m bars for about a week, at most 7 days a request


class YFinanceConfig(BaseModel):
    """``[sources.yfinance]``: Yahoo Finance via yfinance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: CsvList | None = None
    mode: Literal["stream", "poll", "auto"] = Field(
        "auto", description="stream; poll intraday history; auto = stream, poll while it is down"
    )
    hours: Literal["regular", "extended", "always"] = Field(
        "regular", description="When data is expected: exchange session, 04:00-20:00 ET, always"
    )
    stream_url: str = DEFAULT_STREAM_URL
    http_base_url: str | None = Field(
        None,
        description="Send yfinance's HTTP requests here instead of Yahoo's hosts (a mirror, "
        "a caching proxy, or a test server); the path and query are kept.",
    )
    stale_after_s: float = Field(60.0, gt=0, description="Watchdog: reconnect after this silence")
    resubscribe_s: float = Field(15.0, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    reconnect_base_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(
        60.0, gt=0, description="Polling period (the limiter caps requests)"
    )
    fallback_after_s: float = Field(30.0, ge=0)
    backfill: bool = True
    backfill_minutes: int = Field(
        390, ge=0, le=MAX_1M_HISTORY_DAYS * 1440, description="How far back the first fill goes"
    )
    backfill_timeout_s: float = Field(60.0, gt=0)
    requests_per_minute: float = Field(30.0, gt=0)
    burst: int = Field(5, ge=1)
    rate_limit_backoff_s: float = Field(30.0, gt=0)
    rate_limit_backoff_max_s: float = Field(900.0, gt=0)
    http_timeout_s: float = Field(10.0, gt=0)
    max_hold: int = Field(10_000, ge=1, description="Live ticks held per symbol during backfill")
    cache_dir: str | None = Field(None, description="yfinance's cookie/time-zone cache folder")


# ----------------------------------------------------------------------------- errors


class YahooError(Exception):
    """A failed yfinance request; ``kind`` names it for counters (``http``, ``malformed``…)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class YahooRateLimitError(YahooError):
    """Yahoo said "Too Many Requests" (``YFRateLimitError`` / HTTP 429)."""

    def __init__(self, message: str = "Yahoo rate limit (HTTP 429)") -> None:
        super().__init__("rate_limited", message)


class YahooBadSymbolError(YahooError):
    """Yahoo does not know the symbol."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_symbol", message)


# ----------------------------------------------------------------------------- HTTP


def rebase_url(url: str, base: str) -> str:
    """Send ``url`` to ``base``'s scheme and host, keeping its path and query."""
    u, b = urlsplit(url), urlsplit(base)
    path = b.path.rstrip("/") + u.path
    return urlunsplit((b.scheme, b.netloc, path or "/", u.query, u.fragment))


def make_session(base_url: str | None) -> Any:
    """A ``curl_cffi`` session for yfinance, rewriting hosts to ``base_url`` when given."""
    from curl_cffi import requests as creq

    if base_url is None:
        return creq.Session(impersonate="chrome")
    base = base_url

    class RebasedSession(creq.Session):  # type: ignore[type-arg]
        def request(self, method: Any, url: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, rebase_url(url, base), *args, **kwargs)

    return RebasedSession()


class YahooHistory:
    """yfinance's intraday history for a set of symbols: one session, calls in threads.

    Parameters
    ----------
    session
        A ``curl_cffi.requests.Session`` (or subclass) that yfinance uses for every request.
    limiter
        The process-wide yfinance rate limiter.
    """

    def __init__(
        self,
        session: Any,
        rate_limiter: RateLimiter,
        *,
        timeout_s: float = 10.0,
        prepost: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        import yfinance as yf

        if cache_dir is not None:
            yf.set_tz_cache_location(cache_dir)  # the cookie and ISIN caches too
        # Typed errors instead of yfinance logging and returning an empty frame.
        yf.config.debug.hide_exceptions = False
        self.session = session
        self.limiter = rate_limiter
        self.timeout_s = timeout_s
        self.prepost = prepost
        self._tickers: dict[str, Any] = {}

    def _ticker(self, symbol: str) -> Any:
        import yfinance as yf

        t = self._tickers.get(symbol)
        if t is None:
            t = self._tickers[symbol] = yf.Ticker(symbol, session=self.session)
        return t

    def fetch_sync(self, symbol: str, start_ns: int, end_ns: int) -> Bars:
        """Fetch 1m bars with open in ``[start_ns, end_ns)`` (blocking; run in a thread).

        Raises
        ------
        YahooRateLimitError, YahooBadSymbolError, YahooError
        """
        from yfinance.exceptions import (
            YFPricesMissingError,
            YFRateLimitError,
            YFTzMissingError,
        )

        start_s = start_ns // NS
        end_s = max(start_s + 60, -(-end_ns // NS))
        try:
            df = self._ticker(symbol).history(
                start=start_s,
                end=end_s,
                interval="1m",
                prepost=self.prepost,
                auto_adjust=False,
                actions=False,
                timeout=self.timeout_s,
            )
        except YFRateLimitError:
            raise YahooRateLimitError() from None
        except YFTzMissingError as exc:
            raise YahooBadSymbolError(str(exc)) from None
        except YFPricesMissingError as exc:
            reason = exc.yahoo_reason
            if reason is None:
                return Bars.empty()  # no trades in the range: not an error
            if "delisted" in reason or "not found" in reason.lower():
                raise YahooBadSymbolError(reason) from None
            raise YahooError("rejected", f"Yahoo refused the request: {reason}") from None
        except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            _forget_cached_replies()
            raise YahooError("malformed", f"unreadable chart reply: {exc!r}") from None
        except Exception as exc:
            name = type(exc).__name__
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status == 429:
                raise YahooRateLimitError() from None
            if status == 404:
                # Only the symbol lookup yfinance falls back to (quoteSummary) raises a 404.
                raise YahooBadSymbolError(f"{symbol}: HTTP 404 from Yahoo") from None
            if isinstance(exc, OSError | TimeoutError) or name in {"HTTPError", "Timeout"}:
                raise YahooError("http", f"{name}: {exc}") from None
            raise YahooError("unexpected", f"{name}: {exc}") from exc
        if df is None or len(df) == 0:
            return Bars.empty()
        idx = df.index
        ts = (
            idx.tz_convert("UTC").tz_localize(None).values.astype("datetime64[ns]").astype(np.int64)
        )
        return Bars.from_columns(
            ts,
            df["Open"].to_numpy(np.float64),
            df["High"].to_numpy(np.float64),
            df["Low"].to_numpy(np.float64),
            df["Close"].to_numpy(np.float64),
            df["Volume"].to_numpy(np.float64),
        )

    async def fetch(self, symbol: str, start_ns: int, end_ns: int) -> Bars:
        """Rate-limited :meth:`fetch_sync` in a worker thread."""
        await self.limiter.acquire()
        return await asyncio.to_thread(self.fetch_sync, symbol, start_ns, end_ns)


def _forget_cached_replies() -> None:
    """Drop yfinance's in-memory reply cache (it caches history ranges ending > 30 min ago),
    so a malformed reply is not served again."""
    try:
        from yfinance.data import YfData

        YfData.cache_get.cache_clear()
    except (ImportError, AttributeError):  # a yfinance without that cache
        pass


# ----------------------------------------------------------------------------- stream decoding


@dataclass
class _Tick:
    ts: int
    recv: int
    price: float | None = None
    size: float = 0.0
    bid: float | None = None
    bid_sz: float = 0.0
    ask: float | None = None
    ask_sz: float = 0.0


class FrameError(ValueError):
    """A stream frame that is not a decodable pricing message."""


def decode_frame(raw: str | bytes) -> Any:
    """Decode one stream frame into a ``yfinance.pricing_pb2.PricingData``.

    Raises
    ------
    FrameError
        For anything that is not ``{"message": "<base64 PricingData>"}``.
    """
    from google.protobuf.message import DecodeError
    from yfinance.pricing_pb2 import PricingData

    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        raise FrameError("no 'message' field")
    try:
        payload = base64.b64decode(obj["message"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError(f"bad base64: {exc}") from None
    msg = PricingData()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise FrameError(f"bad protobuf: {exc}") from None
    return msg


def _round(x: float, hint: int) -> float:
    return round(float(x), hint if 0 < hint <= 8 else 4)


@dataclass
class _SymbolState:
    day_volume: int | None = None
    price: float | None = None
    hold: list[_Tick] | None = None
    disabled: str | None = None
    held_first_ts: int | None = None


@dataclass
class _StreamStats:
    messages: int = 0
    connects: int = 0
    outside_hours: int = 0
    unknown_symbol: int = 0


# ----------------------------------------------------------------------------- source


class YFinanceSource(Source):
    """Yahoo Finance: live stream with watchdog and backfill, or polling."""

    def __init__(
        self,
        ctx: SourceContext,
        cfg: YFinanceConfig,
        *,
        session: Any = None,
        clock: Callable[[], int] = time.time_ns,
        calendar: MarketCalendar | None = None,
        name: str = "yfinance",
    ) -> None:
        super().__init__(name, ctx)
        self.cfg = cfg
        self.symbols = ctx.symbols_for(cfg.symbols)
        for s in self.symbols:
            ctx.symbols.intern(s)
        self.clock = clock
        self.calendar = calendar or get_calendar(ctx.config.market.calendar)
        self.hours: Hours = cfg.hours
        self.limiter = limiter("yfinance", cfg.requests_per_minute / 60.0, cfg.burst)
        self._session = session
        self.history: YahooHistory | None = None
        self.coverage = BarCoverage(self)
        self.state: dict[str, _SymbolState] = {s: _SymbolState() for s in self.symbols}
        self.stats = _StreamStats()
        self.reconnect_backoff = Backoff(
            cfg.reconnect_base_s, max(cfg.reconnect_max_s, cfg.reconnect_base_s)
        )
        self.rate_backoff = Backoff(
            cfg.rate_limit_backoff_s, max(cfg.rate_limit_backoff_max_s, cfg.rate_limit_backoff_s)
        )
        self.set_connected(False)
        self._pending: set[str] = set()
        self._gap_wakeup = asyncio.Event()
        self._stream_down_since: float | None = time.monotonic()
        self.backfills_done = 0
        self.backfills_abandoned = 0
        self.polls = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the stream (with backfill worker) and/or the poller."""
        if self.history is None:
            session = (
                self._session if self._session is not None else make_session(self.cfg.http_base_url)
            )
            self.history = YahooHistory(
                session,
                self.limiter,
                timeout_s=self.cfg.http_timeout_s,
                prepost=self.hours != "regular",
                cache_dir=self.cfg.cache_dir,
            )
        mode = self.cfg.mode
        if mode in ("stream", "auto"):
            self.spawn(self._stream_loop(), name="stream")
            if self.cfg.backfill:
                self.spawn(self._backfill_worker(), name="backfill")
        if mode in ("poll", "auto"):
            self.spawn(self._poll_loop(), name="poll")
        self.set_health("starting", f"connecting ({mode})")

    async def stop(self) -> None:
        """Close the stream and stop polling; held ticks are published first."""
        if self._stopped:
            return
        for sym in list(self.state):
            self._release(sym)
        # Cancelling the stream task leaves its `async with connect(...)`, which closes the socket.
        await super().stop()
        self.set_connected(False)

    # ------------------------------------------------------------------ hours
    def market_open(self) -> bool:
        """Whether data is expected now (per ``hours`` and the exchange calendar)."""
        return self.calendar.is_open(self.clock(), self.hours)

    async def _sleep_until_open(self) -> None:
        while not self.market_open():
            now = self.clock()
            nxt = self.calendar.next_open(now, self.hours)
            wait = min(max((nxt - now) / NS, 0.5), 300.0)
            self.set_health(
                "ok", f"market closed; next open {self.calendar.local(nxt).isoformat()}"
            )
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ stream
    async def _stream_loop(self) -> None:
        from websockets.exceptions import WebSocketException

        while True:
            await self._sleep_until_open()
            reason = "error"
            got_data = False
            try:
                reason, got_data = await self._connect_and_listen()
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                kind = "connect" if self.stats.connects == 0 or not self.connected else "disconnect"
                self.record_error(kind, f"stream: {type(exc).__name__}: {exc}")
                reason = kind
            except Exception as exc:  # a bug must not kill the feed
                self.record_error("unexpected", f"stream: {exc!r}", level=logging.ERROR)
                self.log.exception("stream loop failed")
            finally:
                if self.connected:
                    self.set_connected(False)
                    self._stream_down_since = time.monotonic()
            self.record_reconnect(reason)
            if reason == "closed_for_session":
                self.reconnect_backoff.reset()
                continue
            if got_data:
                self.reconnect_backoff.reset()
            delay = self.reconnect_backoff.next_delay()
            self.set_backoff(delay, f"stream {reason}", self.reconnect_backoff.attempt)
            self.set_health(
                "degraded",
                f"stream {reason}; reconnecting in {delay:.1f}s"
                + (" (polling meanwhile)" if self.cfg.mode == "auto" else ""),
            )
            await asyncio.sleep(delay)
            self.set_backoff(0, "")

    async def _connect_and_listen(self) -> tuple[str, bool]:
        """One connection: subscribe, open a gap, read until it ends; return (reason, data?)."""
        from websockets.asyncio.client import connect

        cfg = self.cfg
        got_data = False
        async with connect(
            cfg.stream_url,
            open_timeout=cfg.connect_timeout_s,
            close_timeout=2.0,
            ping_interval=20.0,
            ping_timeout=20.0,
            max_size=2**20,
        ) as ws:
            self.stats.connects += 1
            self.set_connected(True)
            self._stream_down_since = None
            self._open_gap()
            for st in self.state.values():
                st.day_volume = None  # volume before this connection is unknown
            await ws.send(json.dumps({"subscribe": self.symbols}))
            self.set_health("ok", "streaming")
            resub = asyncio.create_task(self._resubscribe(ws))
            try:
                last_msg = time.monotonic()
                while True:
                    if not self.market_open():
                        return "closed_for_session", got_data
                    silent = time.monotonic() - last_msg
                    if silent >= cfg.stale_after_s:
                        self.record_error(
                            "stale",
                            f"stream silent for {silent:.1f}s during market hours; reconnecting",
                        )
                        return "stale", got_data
                    try:
                        raw = await asyncio.wait_for(
                            ws.recv(), min(cfg.stale_after_s - silent, 30.0)
                        )
                    except TimeoutError:
                        continue
                    last_msg = time.monotonic()
                    if self._on_frame(raw):
                        got_data = True
                        if self._health.state != "ok":
                            self.set_health("ok", "streaming")
            finally:
                resub.cancel()
        return "disconnect", got_data

    async def _resubscribe(self, ws: Any) -> None:
        # Yahoo forgets subscriptions after a while; yfinance re-sends them every 15 s.
        msg = json.dumps({"subscribe": self.symbols})
        while True:
            await asyncio.sleep(self.cfg.resubscribe_s)
            try:
                await ws.send(msg)
            except Exception:  # the read loop notices the dead socket
                return

    def _on_frame(self, raw: str | bytes) -> bool:
        """Handle one frame; return True if it carried a usable pricing message."""
        recv = time.time_ns()
        try:
            msg = decode_frame(raw)
        except FrameError as exc:
            self.record_error("decode", f"undecodable stream frame: {exc}", level=logging.DEBUG)
            return False
        self.stats.messages += 1
        if msg.quote_type == HEARTBEAT_QUOTE_TYPE:
            return True
        sym = msg.id
        st = self.state.get(sym)
        if st is None:
            self.stats.unknown_symbol += 1
            return True
        tick = self._tick_from(msg, st, recv)
        if tick is None:
            return True
        if not self.calendar.is_open(tick.ts, self.hours):
            self.stats.outside_hours += 1
            return True
        if st.hold is not None:
            if len(st.hold) < self.cfg.max_hold:
                if st.held_first_ts is None:
                    st.held_first_ts = tick.ts
                st.hold.append(tick)
                return True
            self.log.warning("%s: %d live ticks held; releasing before backfill", sym, len(st.hold))
            self._release(sym)
        self._publish_ticks(sym, [tick])
        return True

    def _tick_from(self, msg: Any, st: _SymbolState, recv: int) -> _Tick | None:
        t = int(msg.time)
        if t <= 0:
            ts = recv
        elif t < 10**11:  # seconds
            ts = t * NS
        elif t < 10**14:  # milliseconds (what Yahoo sends)
            ts = t * 1_000_000
        else:
            ts = t * 1_000 if t < 10**17 else t
        hint = int(msg.price_hint)
        tick = _Tick(ts=ts, recv=recv)
        price = _round(msg.price, hint) if msg.price else None
        vol = int(msg.day_volume) or None  # proto3: 0 means "not sent"
        size = 0.0
        if msg.last_size > 0:
            size = float(msg.last_size)
        elif vol is not None and st.day_volume is not None and vol > st.day_volume:
            size = float(vol - st.day_volume)
        if vol is not None:
            st.day_volume = vol  # also after a decrease: the new day's baseline
        if price is not None and (price != st.price or size > 0):
            tick.price, tick.size = price, size
            st.price = price
        if msg.bid > 0 and msg.ask > 0:
            tick.bid, tick.ask = _round(msg.bid, hint), _round(msg.ask, hint)
            tick.bid_sz, tick.ask_sz = float(max(msg.bid_size, 0)), float(max(msg.ask_size, 0))
        if tick.price is None and tick.bid is None:
            return None
        return tick

    def _publish_ticks(self, sym: str, ticks: list[_Tick]) -> None:
        sid = self.ctx.symbols.intern(sym)
        trades = [t for t in ticks if t.price is not None]
        if trades:
            n = len(trades)
            published = self.publish_trades(
                trades_from_columns(
                    self.name,
                    np.full(n, sid, np.uint32),
                    [t.ts for t in trades],
                    [t.price for t in trades],
                    [t.size for t in trades],
                    np.zeros(n, np.uint64),
                    ts_init=np.asarray([t.recv for t in trades], np.int64),
                )
            )
            if len(published):
                self.coverage.note(sym, int(published.ts_event.max()))
        quotes = [t for t in ticks if t.bid is not None]
        if quotes:
            n = len(quotes)
            self.publish_quotes(
                quotes_from_columns(
                    self.name,
                    np.full(n, sid, np.uint32),
                    [t.ts for t in quotes],
                    [t.bid for t in quotes],
                    [t.bid_sz for t in quotes],
                    [t.ask for t in quotes],
                    [t.ask_sz for t in quotes],
                    np.zeros(n, np.uint64),
                    ts_init=np.asarray([t.recv for t in quotes], np.int64),
                )
            )

    # ------------------------------------------------------------------ gaps and backfill
    def _open_gap(self) -> None:
        """Live data (re)starts: hold ticks per symbol until the gap before them is filled."""
        if not self.cfg.backfill:
            return
        for sym, st in self.state.items():
            if st.disabled:
                continue
            if st.hold is None:
                st.hold = []
                st.held_first_ts = None
            self._pending.add(sym)
        self._gap_wakeup.set()

    def _release(self, sym: str) -> None:
        st = self.state[sym]
        held, st.hold, st.held_first_ts = st.hold, None, None
        if held:
            self._publish_ticks(sym, held)

    async def _backfill_worker(self) -> None:
        while True:
            await self._gap_wakeup.wait()
            self._gap_wakeup.clear()
            while self._pending:
                sym = min(self._pending)
                self._pending.discard(sym)
                try:
                    async with asyncio.timeout(self.cfg.backfill_timeout_s):
                        await self._fill(sym, backfill=True)
                    self.backfills_done += 1
                except TimeoutError:
                    self.backfills_abandoned += 1
                    self.record_error(
                        "backfill_timeout",
                        f"{sym}: backfill did not finish in {self.cfg.backfill_timeout_s:.0f}s; "
                        "releasing live data (the gap stays)",
                    )
                except YahooError as exc:
                    self.backfills_abandoned += 1
                    self._on_http_error(sym, exc, "backfill")
                except Exception as exc:  # never lose held live data
                    self.backfills_abandoned += 1
                    self.record_error("unexpected", f"{sym}: backfill failed: {exc!r}")
                finally:
                    if sym not in self._pending:
                        self._release(sym)

    def _initial_start(self, now: int) -> int:
        start = floor_minute(now) - self.cfg.backfill_minutes * MINUTE_NS
        return max(start, floor_minute(now) - MAX_1M_HISTORY_DAYS * 1440 * MINUTE_NS)

    async def _fill(self, sym: str, *, backfill: bool) -> int:
        """Fetch and publish the complete bars of ``sym`` the source has not published yet."""
        st = self.state[sym]
        if st.disabled:
            return 0
        assert self.history is not None
        now = self.clock()
        limit = floor_minute(now)
        start = self.coverage.next_bar_open(sym)
        floor_start = self._initial_start(now)
        start = floor_start if start is None else max(start, floor_start)
        if start + MINUTE_NS > limit:
            return 0
        bars = await self._fetch_with_retry(sym, start, limit)
        # Re-read after the await: live ticks may have been held (limit) meanwhile.
        if st.held_first_ts is not None:
            limit = min(limit, floor_minute(st.held_first_ts))
        n = self.coverage.emit(sym, bars, limit, backfill=backfill, start_ns=start)
        if n:
            self.log.info(
                "%s: %s %d bar(s) %s .. %s",
                sym,
                "backfilled" if backfill else "polled",
                n,
                self.calendar.local(start).strftime("%H:%M"),
                self.calendar.local(limit).strftime("%H:%M"),
            )
        return n

    async def _fetch_with_retry(self, sym: str, start: int, end: int) -> Bars:
        assert self.history is not None
        while True:
            try:
                bars = await self.history.fetch(sym, start, end)
            except YahooRateLimitError as exc:
                delay = self.rate_backoff.next_delay()
                self.limiter.penalize(delay)
                self.set_backoff(delay, "rate limited", self.rate_backoff.attempt)
                self.record_request("chart", "rate_limited")
                self.record_error(
                    "rate_limited", f"{exc}; every yfinance request waits {delay:.0f}s"
                )
                continue
            except YahooError as exc:
                self.record_request("chart", exc.kind)
                raise
            self.record_request("chart", "ok")
            self.rate_backoff.reset()
            if self.backoff_remaining_s() and self.limiter.penalty_remaining_s == 0:
                self.set_backoff(0, "")
            return bars

    def _on_http_error(self, sym: str, exc: YahooError, what: str) -> None:
        if isinstance(exc, YahooBadSymbolError):
            st = self.state[sym]
            if not st.disabled:
                st.disabled = str(exc)
                self.record_error(
                    "bad_symbol",
                    f"{sym}: Yahoo does not know this symbol; history disabled for it ({exc})",
                    level=logging.ERROR,
                )
            return
        self.record_error(exc.kind, f"{sym}: {what} failed: {exc}")

    # ------------------------------------------------------------------ polling
    async def _poll_loop(self) -> None:
        cfg = self.cfg
        backoff = Backoff(min(cfg.poll_interval_s, 5.0), max(cfg.poll_interval_s * 4, 60.0))
        while True:
            await self._sleep_until_open()
            if cfg.mode == "auto":
                down = self._stream_down_since
                if down is None or time.monotonic() - down < cfg.fallback_after_s:
                    await asyncio.sleep(min(1.0, cfg.poll_interval_s))
                    continue
            failed = False
            for sym in self.symbols:
                st = self.state[sym]
                if st.disabled or st.hold is not None or sym in self._pending:
                    continue  # a stream backfill owns this symbol's gap
                try:
                    await self._fill(sym, backfill=cfg.mode == "auto")
                except YahooError as exc:
                    failed = True
                    self._on_http_error(sym, exc, "poll")
                except Exception as exc:  # keep polling
                    failed = True
                    self.record_error("unexpected", f"{sym}: poll failed: {exc!r}")
            self.polls += 1
            if cfg.mode == "poll":
                self.set_connected(not failed)
                if failed:
                    delay = backoff.next_delay()
                    self.set_backoff(delay, "poll failed", backoff.attempt)
                    self.set_health("degraded", f"poll failed; retrying in {delay:.0f}s")
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                self.set_health("ok", "polling")
            await asyncio.sleep(cfg.poll_interval_s)

    # ------------------------------------------------------------------ health
    def health_details(self) -> dict[str, Any]:
        """Mode, stream counters, backfill counters, disabled symbols, limiter state."""
        return {
            "mode": self.cfg.mode,
            "market_open": self.market_open(),
            "stream_messages": self.stats.messages,
            "stream_connects": self.stats.connects,
            "outside_hours_ticks": self.stats.outside_hours,
            "backfills": self.backfills_done,
            "backfills_abandoned": self.backfills_abandoned,
            "backfilled_bars": self.coverage.bars_emitted,
            "polls": self.polls,
            "held_ticks": sum(len(s.hold or ()) for s in self.state.values()),
            "disabled_symbols": {s: st.disabled for s, st in self.state.items() if st.disabled},
            "rate_limiter": self.limiter.state(),
        }

    def budget_remaining(self) -> dict[str, int]:
        """Whole requests the limiter allows right now (Yahoo publishes no quota)."""
        st = self.limiter.state()
        return {"burst": max(0, math.floor(st["tokens"]))}


PLUGIN = SourcePlugin(
    name="yfinance",
    config_model=YFinanceConfig,
    factory=YFinanceSource,
    description="Yahoo Finance via yfinance: live WebSocket stream, polling, backfill.",
)
