"""Alpha Vantage over HTTPS (httpx.AsyncClient): ``GLOBAL_QUOTE`` and ``TIME_SERIES_INTRADAY``.

**Modes.** ``quote`` (default) polls ``GLOBAL_QUOTE`` round-robin over the symbols and
publishes a trade at receive time (Alpha Vantage's quote has no intraday timestamp) with the
price and, as size, the increase of the day's volume since the previous quote (0 for the first
one). A quote whose "latest trading day" is not today's session, or that repeats the previous
price and volume, is not a trade. ``intraday`` polls ``TIME_SERIES_INTRADAY`` (1min) and
publishes each complete bar once as synthetic trades. In both modes the source fills gaps from
the intraday series at start and after an outage (``BACKFILL|SYNTHETIC``; see
:mod:`tickserver.sources.backfill`).

**Budgets.** Requests are spent against a per-minute window and a per-day window
(``requests_per_minute``, ``requests_per_day``; the free tier allows 25 a day), only while the
market is open unless ``hours = "always"``. They are paced so the day's remaining budget lasts
until the close (``spread_budget``), never closer together than ``min_interval_s``.

**Errors.** Alpha Vantage answers most errors with HTTP 200 and a JSON body, turned into typed
errors here:

- ``Note`` or ``Information`` about call frequency / rate limits → :class:`AVQuotaError` with the
  window (``minute`` or ``day``): the window is marked exhausted and the source waits for it to
  reset (the key may be shared with another program, so the provider's word wins over our
  count);
- ``Information`` about a premium endpoint → :class:`AVPremiumError`: intraday is switched off,
  quotes continue;
- ``Error Message`` (or an empty ``Global Quote``) for a symbol → :class:`AVInvalidSymbolError`:
  that symbol is disabled with an ERROR log line and a ``disabled_symbols`` status entry;
- ``Error Message`` about the API key → :class:`AVAuthError`: the source is ``down`` and retries
  hourly;
- HTTP 5xx, 429, timeouts, connection errors, malformed JSON → backoff with jitter
  (``backoff_base_s`` doubling up to ``backoff_max_s``), then a backfill of the outage.

The API key comes from the environment variable named by ``api_key_env`` and is never logged:
log lines, errors and health reports go through :func:`redact`, and a filter on the ``httpx``
logger removes it from httpx's request log lines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tickserver.calendar import MINUTE_NS, NS, Hours, MarketCalendar, floor_minute, get_calendar
from tickserver.config import CsvList
from tickserver.events import trades_from_columns
from tickserver.sources.backfill import BarCoverage, Bars
from tickserver.sources.base import Source, SourceContext, SourcePlugin
from tickserver.sources.ratelimit import Backoff, RequestBudget

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.alphavantage.co/query"


class AlphaVantageConfig(BaseModel):
    """``[sources.alphavantage]``: Alpha Vantage REST API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: CsvList | None = None
    api_key_env: str = Field(
        "ALPHAVANTAGE_API_KEY", description="Name of the env var that holds the API key"
    )
    base_url: str = DEFAULT_BASE_URL
    mode: Literal["quote", "intraday"] = "quote"
    hours: Literal["regular", "extended", "always"] = Field(
        "regular", description="Spend requests only then (exchange session, 04:00-20:00 ET)"
    )
    requests_per_minute: int = Field(5, ge=1)
    requests_per_day: int = Field(25, ge=1, description="Free tier: 25")
    quota_reset_tz: str = Field("UTC", description="Where the daily quota resets at midnight")
    min_interval_s: float = Field(12.0, ge=0, description="Never two requests closer than this")
    spread_budget: bool = Field(True, description="Pace requests so the day's budget lasts")
    backfill: bool = True
    outputsize: Literal["compact", "full"] = "compact"
    entitlement: Literal["realtime", "delayed"] | None = Field(
        None, description="Premium keys: intraday freshness"
    )
    timeout_s: float = Field(10.0, gt=0)
    backoff_base_s: float = Field(5.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    auth_retry_s: float = Field(3600.0, gt=0, description="Retry after a rejected API key")


# ----------------------------------------------------------------------------- errors


class AVError(Exception):
    """An Alpha Vantage request failed; ``kind`` names it for counters."""

    kind = "error"


class AVQuotaError(AVError):
    """Rate limit or quota reached (HTTP 200 with ``Note``/``Information``, or HTTP 429)."""

    def __init__(self, message: str, window: Literal["minute", "day"]) -> None:
        super().__init__(message)
        self.window = window
        self.kind = f"quota_{window}"


class AVInvalidSymbolError(AVError):
    """The symbol is not known (``Error Message`` or an empty ``Global Quote``)."""

    kind = "bad_symbol"


class AVAuthError(AVError):
    """The API key is missing, invalid or the demo key."""

    kind = "auth"


class AVPremiumError(AVError):
    """The function needs a premium plan."""

    kind = "premium"


class AVMalformedError(AVError):
    """The reply is not the JSON we expect."""

    kind = "malformed"


class AVTransportError(AVError):
    """HTTP 5xx, an unexpected status, a timeout or a connection error."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def classify_reply(body: Any, function: str) -> None:
    """Raise the typed error an HTTP-200 reply carries, if any.

    Raises
    ------
    AVQuotaError, AVPremiumError, AVAuthError, AVInvalidSymbolError, AVMalformedError
    """
    if not isinstance(body, dict):
        raise AVMalformedError(f"{function}: expected a JSON object, got {type(body).__name__}")
    for key in ("Note", "Information"):
        text = body.get(key)
        if not isinstance(text, str):
            continue
        low = text.lower()
        if "premium" in low and "endpoint" in low:
            raise AVPremiumError(f"{function} needs a premium plan: {text}")
        # The legacy Note names both limits ("5 calls per minute and 500 calls per day") and is
        # the per-minute one; the current daily message names only the day.
        if any(w in low for w in ("per minute", "per second", "frequency", "spreading out")):
            raise AVQuotaError(text, "minute")
        if "per day" in low or "daily" in low:
            raise AVQuotaError(text, "day")
        if "apikey" in low or "api key" in low:
            raise AVAuthError(text)
        raise AVQuotaError(text, "minute")  # unknown notice: back off like a burst limit
    err = body.get("Error Message")
    if isinstance(err, str):
        if "apikey" in err.lower():
            raise AVAuthError(err)
        raise AVInvalidSymbolError(err)


# ----------------------------------------------------------------------------- client


class _RedactFilter(logging.Filter):
    """Removes the API key from records of a logger (httpx logs request URLs at INFO)."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secret:
            return True
        msg = record.getMessage()
        if self.secret in msg:
            record.msg = msg.replace(self.secret, "***")
            record.args = None
        return True


@dataclass(frozen=True)
class GlobalQuote:
    """The fields of ``GLOBAL_QUOTE`` the source uses."""

    symbol: str
    price: float
    volume: float
    latest_trading_day: dt.date


class AlphaVantageClient:
    """``httpx.AsyncClient`` for Alpha Vantage with typed errors and a redacted API key.

    Parameters
    ----------
    base_url
        ``https://www.alphavantage.co/query`` (tests point it at a local server).
    api_key
        The key; sent as the ``apikey`` query parameter and never logged.
    transport
        An httpx transport (``httpx.MockTransport`` in unit tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        entitlement: str | None = None,
    ) -> None:
        self.base_url = base_url
        self._key = api_key
        self.entitlement = entitlement
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": "tickserver (+https://github.com/tickserver)"},
            follow_redirects=True,
        )
        self._filter = _RedactFilter(api_key)
        logging.getLogger("httpx").addFilter(self._filter)

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``***``."""
        return text.replace(self._key, "***") if self._key else text

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
        logging.getLogger("httpx").removeFilter(self._filter)

    async def call(self, function: str, **params: str) -> dict[str, Any]:
        """GET ``function`` and return the JSON object, raising typed errors.

        Raises
        ------
        AVError
            One of its subclasses.
        """
        q = {"function": function, **params, "apikey": self._key}
        if self.entitlement and function.startswith("TIME_SERIES"):
            q["entitlement"] = self.entitlement
        try:
            resp = await self._client.get(self.base_url, params=q)
        except httpx.TimeoutException as exc:
            raise AVTransportError(
                f"{function}: timeout ({type(exc).__name__})", "timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise AVTransportError(
                f"{function}: {type(exc).__name__}: {self.redact(str(exc))}", "connection"
            ) from None
        if resp.status_code == 429:
            raise AVQuotaError(f"{function}: HTTP 429", "minute")
        if resp.status_code >= 500:
            raise AVTransportError(f"{function}: HTTP {resp.status_code}", "http_5xx")
        if resp.status_code != 200:
            raise AVTransportError(f"{function}: HTTP {resp.status_code}", "http_status")
        try:
            body = json.loads(resp.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AVMalformedError(
                f"{function}: not JSON ({exc.msg if hasattr(exc, 'msg') else exc})"
            ) from None
        classify_reply(body, function)
        return body  # type: ignore[no-any-return]

    async def global_quote(self, symbol: str) -> GlobalQuote:
        """``GLOBAL_QUOTE`` of one symbol."""
        body = await self.call("GLOBAL_QUOTE", symbol=symbol)
        q = body.get("Global Quote")
        if not isinstance(q, dict):
            raise AVMalformedError("GLOBAL_QUOTE: no 'Global Quote' object")
        if not q:
            raise AVInvalidSymbolError(f"GLOBAL_QUOTE: no quote for {symbol!r}")
        try:
            return GlobalQuote(
                symbol=str(q["01. symbol"]),
                price=float(q["05. price"]),
                volume=float(q["06. volume"]),
                latest_trading_day=dt.date.fromisoformat(q["07. latest trading day"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise AVMalformedError(f"GLOBAL_QUOTE: bad field {exc}") from None

    async def intraday(self, symbol: str, outputsize: str = "compact") -> Bars:
        """``TIME_SERIES_INTRADAY`` 1min bars, with UTC ns bar open times."""
        body = await self.call(
            "TIME_SERIES_INTRADAY",
            symbol=symbol,
            interval="1min",
            outputsize=outputsize,
            extended_hours="true",
        )
        return parse_intraday(body)


def parse_intraday(body: dict[str, Any]) -> Bars:
    """Turn a ``TIME_SERIES_INTRADAY`` reply into bars.

    Timestamps are local to ``Meta Data`` → ``6. Time Zone`` (``US/Eastern``) and label the
    bar's start; they are converted to UTC per row, so DST changes are handled.

    Raises
    ------
    AVMalformedError
        When the series or a row cannot be read.
    """
    meta = body.get("Meta Data")
    series_key = next((k for k in body if k.startswith("Time Series")), None)
    if not isinstance(meta, dict) or series_key is None or not isinstance(body[series_key], dict):
        raise AVMalformedError("TIME_SERIES_INTRADAY: no 'Meta Data' or 'Time Series'")
    tz_name = str(meta.get("6. Time Zone", "US/Eastern"))
    try:
        tz = ZoneInfo(tz_name)
    except (KeyError, ValueError):
        raise AVMalformedError(f"TIME_SERIES_INTRADAY: unknown time zone {tz_name!r}") from None
    rows = body[series_key]
    n = len(rows)
    ts = np.empty(n, np.int64)
    cols = np.empty((5, n), np.float64)
    try:
        for i, (stamp, bar) in enumerate(rows.items()):
            local = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=tz)
            ts[i] = int(local.timestamp()) * NS
            cols[0, i] = float(bar["1. open"])
            cols[1, i] = float(bar["2. high"])
            cols[2, i] = float(bar["3. low"])
            cols[3, i] = float(bar["4. close"])
            cols[4, i] = float(bar["5. volume"])
    except (KeyError, ValueError, TypeError) as exc:
        raise AVMalformedError(f"TIME_SERIES_INTRADAY: bad row ({exc})") from None
    return Bars.from_columns(ts, *cols)


# ----------------------------------------------------------------------------- source


@dataclass
class _SymState:
    volume: float | None = None
    price: float | None = None
    disabled: str | None = None
    needs_backfill: bool = True


class AlphaVantageSource(Source):
    """Alpha Vantage quotes/intraday bars within request budgets."""

    max_sleep_s = 300.0
    """Longest single sleep; the loop re-reads the clock and the budget after it."""

    def __init__(
        self,
        ctx: SourceContext,
        cfg: AlphaVantageConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], int] = time.time_ns,
        calendar: MarketCalendar | None = None,
        environ: dict[str, str] | None = None,
        name: str = "alphavantage",
    ) -> None:
        super().__init__(name, ctx)
        env = os.environ if environ is None else environ
        key = env.get(cfg.api_key_env, "").strip()
        if not key:
            raise ValueError(
                f"Alpha Vantage needs an API key: set the environment variable {cfg.api_key_env} "
                "(free keys: https://www.alphavantage.co/support/#api-key), or name another "
                "variable in [sources.alphavantage] api_key_env"
            )
        self.cfg = cfg
        self.symbols = ctx.symbols_for(cfg.symbols)
        for s in self.symbols:
            ctx.symbols.intern(s)
        self.clock = clock
        self.calendar = calendar or get_calendar(ctx.config.market.calendar)
        self.hours: Hours = cfg.hours
        self.client = AlphaVantageClient(
            cfg.base_url,
            key,
            timeout_s=cfg.timeout_s,
            transport=transport,
            entitlement=cfg.entitlement,
        )
        self.budget = RequestBudget(
            cfg.requests_per_minute,
            cfg.requests_per_day,
            day_tz=cfg.quota_reset_tz,
            wall=lambda: self.clock() / NS,
        )
        self.backoff = Backoff(cfg.backoff_base_s, max(cfg.backoff_max_s, cfg.backoff_base_s))
        self.coverage = BarCoverage(self)
        self.state: dict[str, _SymState] = {
            s: _SymState(needs_backfill=cfg.backfill) for s in self.symbols
        }
        self.intraday_available = True
        self._rr = 0
        self._last_request_mono = -1e18
        self.requests = 0
        self.set_connected(False)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start polling."""
        self.spawn(self._run(), name="poll")
        self.set_health("starting", "first request pending")

    async def stop(self) -> None:
        """Stop polling and close the HTTP client."""
        if self._stopped:
            return
        await super().stop()
        await self.client.aclose()

    def record_error(self, kind: str, message: str = "", *, level: int = logging.WARNING) -> None:
        """Count and log an error, with the API key redacted."""
        super().record_error(kind, self.client.redact(message), level=level)

    # ------------------------------------------------------------------ scheduling
    def market_open(self) -> bool:
        """Whether requests may be spent now."""
        return self.calendar.is_open(self.clock(), self.hours)

    def _pace_s(self) -> float:
        """Seconds between requests so the rest of the day's budget lasts."""
        cfg = self.cfg
        pace = max(cfg.min_interval_s, 60.0 / cfg.requests_per_minute)
        if cfg.spread_budget:
            st = self.budget.state()
            now = self.clock()
            if self.hours == "always":
                horizon = st.day_resets_in_s
            else:
                horizon = max(0.0, (self.calendar.next_close(now, self.hours) - now) / NS)
            pace = max(pace, horizon / max(1, st.day_remaining))
        return pace

    async def _wait_turn(self) -> None:
        """Wait for market hours, the budget windows and the pacing interval."""
        while True:
            if not self.market_open():
                now = self.clock()
                nxt = self.calendar.next_open(now, self.hours)
                self.set_health(
                    "ok", f"market closed; next open {self.calendar.local(nxt).isoformat()}"
                )
                await asyncio.sleep(min(max((nxt - now) / NS, 0.5), self.max_sleep_s))
                continue
            wait = self.budget.wait_s()
            if wait > 0:
                st = self.budget.state()
                window = "day" if st.day_remaining <= 0 else "minute"
                self.set_backoff(wait, f"{window} budget spent")
                if window == "day":
                    self.set_health(
                        "degraded", f"daily request budget spent; resets in {wait:.0f}s"
                    )
                await asyncio.sleep(min(wait, self.max_sleep_s))
                continue
            gap = self._pace_s() - (time.monotonic() - self._last_request_mono)
            if gap > 0:
                await asyncio.sleep(min(gap, self.max_sleep_s))
                continue
            return

    def _next_symbol(self) -> str | None:
        live = [s for s in self.symbols if not self.state[s].disabled]
        if not live:
            return None
        # Backfills first: a gap grows with every minute it stays open.
        for s in live:
            if self.state[s].needs_backfill and self.intraday_available:
                return s
        sym = live[self._rr % len(live)]
        self._rr += 1
        return sym

    # ------------------------------------------------------------------ main loop
    async def _run(self) -> None:
        while True:
            sym = self._next_symbol()
            if sym is None:
                self.set_health("down", "every symbol is disabled (see disabled_symbols)")
                await asyncio.sleep(3600)
                continue
            await self._wait_turn()
            self.budget.spend()
            self._last_request_mono = time.monotonic()
            self.requests += 1
            try:
                await self._request(sym)
            except AVQuotaError as exc:
                self.budget.exhaust(exc.window)
                self.record_request(self._endpoint(sym), exc.kind)
                self.record_error(exc.kind, f"{sym}: {exc}; waiting for the {exc.window} window")
                self.set_health("degraded", f"{exc.window} quota reached")
            except AVInvalidSymbolError as exc:
                self.record_request(self._endpoint(sym), exc.kind)
                self.state[sym].disabled = self.client.redact(str(exc))
                self.record_error(
                    "bad_symbol",
                    f"{sym}: Alpha Vantage does not know this symbol; disabled ({exc})",
                    level=logging.ERROR,
                )
            except AVPremiumError as exc:
                self.record_request(self._endpoint(sym), exc.kind)
                self.intraday_available = False
                self.record_error(
                    "premium",
                    f"{exc}; intraday bars switched off, quotes continue",
                    level=logging.ERROR,
                )
            except AVAuthError as exc:
                self.record_request(self._endpoint(sym), exc.kind)
                self.set_connected(False)
                self.record_error("auth", f"API key rejected: {exc}", level=logging.ERROR)
                self.set_health("down", f"API key rejected (env {self.cfg.api_key_env})")
                self.set_backoff(self.cfg.auth_retry_s, "API key rejected")
                await asyncio.sleep(self.cfg.auth_retry_s)
            except AVError as exc:  # transport / malformed: back off, then fill the gap
                self.record_request(self._endpoint(sym), exc.kind)
                self.set_connected(False)
                delay = self.backoff.next_delay()
                self.record_error(exc.kind, f"{sym}: {exc}; retrying in {delay:.1f}s")
                self.set_backoff(delay, exc.kind, self.backoff.attempt)
                self.set_health("degraded", f"{exc.kind}; retrying in {delay:.0f}s")
                if self.cfg.backfill:
                    for st in self.state.values():
                        st.needs_backfill = True
                await asyncio.sleep(delay)
            else:
                self.record_request(self._endpoint(sym), "ok")
                self.backoff.reset()
                self.set_backoff(0, "")
                self.set_connected(True)
                self.set_health("ok", f"polling ({self.cfg.mode})")

    def _endpoint(self, sym: str) -> str:
        st = self.state[sym]
        if self.intraday_available and (st.needs_backfill or self.cfg.mode == "intraday"):
            return "TIME_SERIES_INTRADAY"
        return "GLOBAL_QUOTE"

    async def _request(self, sym: str) -> None:
        st = self.state[sym]
        if self._endpoint(sym) == "TIME_SERIES_INTRADAY":
            bars = await self.client.intraday(sym, self.cfg.outputsize)
            now = self.clock()
            backfill = st.needs_backfill or self.cfg.mode != "intraday"
            n = self.coverage.emit(
                sym,
                bars,
                floor_minute(now),
                backfill=backfill,
                start_ns=self._first_bar(now),
            )
            if n:
                self.log.info("%s: %d intraday bar(s)%s", sym, n, " backfilled" if backfill else "")
            st.needs_backfill = False
            st.volume = None  # the next quote's volume delta would repeat the bars' volume
            return
        q = await self.client.global_quote(sym)
        self._on_quote(sym, q)

    def _first_bar(self, now: int) -> int:
        """Where a first backfill starts: today's session open (or 100 minutes back)."""
        opened = self.calendar.last_open_before(now, self.hours)
        if self.hours == "always" or opened is None or now - opened > 86_400 * NS:
            return floor_minute(now) - 100 * MINUTE_NS
        return opened

    def _on_quote(self, sym: str, q: GlobalQuote) -> None:
        now = self.clock()
        st = self.state[sym]
        if q.latest_trading_day != self.calendar.session_date(now) and self.hours != "always":
            self.log.debug("%s: quote is from %s, not today; skipped", sym, q.latest_trading_day)
            return
        size = 0.0
        if st.volume is not None and q.volume > st.volume:
            size = q.volume - st.volume
        changed = q.price != st.price or size > 0
        st.volume, st.price = q.volume, q.price
        if not changed:
            return
        sid = self.ctx.symbols.intern(sym)
        published = self.publish_trades(
            trades_from_columns(self.name, [sid], [now], [q.price], [size], np.zeros(1, np.uint64))
        )
        if len(published):
            self.coverage.note(sym, now)

    # ------------------------------------------------------------------ health
    def budget_remaining(self) -> dict[str, int]:
        """Requests left in the minute and day windows."""
        st = self.budget.state()
        return {"minute": st.minute_remaining, "day": st.day_remaining}

    def health_details(self) -> dict[str, Any]:
        """Mode, budget, request count, disabled symbols."""
        return {
            "mode": self.cfg.mode,
            "market_open": self.market_open(),
            "requests": self.requests,
            "budget": self.budget.as_dict(),
            "intraday_available": self.intraday_available,
            "backfilled_bars": self.coverage.bars_emitted,
            "disabled_symbols": {s: st.disabled for s, st in self.state.items() if st.disabled},
            "pace_s": round(self._pace_s(), 1),
        }


PLUGIN = SourcePlugin(
    name="alphavantage",
    config_model=AlphaVantageConfig,
    factory=AlphaVantageSource,
    description="Alpha Vantage: GLOBAL_QUOTE / TIME_SERIES_INTRADAY within request budgets.",
)
