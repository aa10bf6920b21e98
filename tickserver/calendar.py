"""Exchange sessions, holidays and early closes (from ``exchange_calendars``), in UTC nanoseconds.

Everything here takes and returns UTC integer nanoseconds; the exchange's time zone is kept
for display and for session logic (a session *date* is the exchange-local date). Lookups are
``numpy.searchsorted`` over per-session open/close arrays, so they are cheap enough to call on
every poll.

Three notions of "open" (``Hours``):

- ``regular``: the exchange's session, ``[open, close)`` (early closes included, holidays and
  weekends closed),
- ``extended``: from 04:00 exchange time on a session date to four hours after that session's
  close (the US pre- and post-market: 04:00-20:00 ET, 04:00-17:00 on a 13:00 early close),
- ``always``: never closed (crypto, FX, tests).

Day boundaries for ``1d`` bars (:meth:`MarketCalendar.day_boundaries`) are 00:00 exchange time
of each session date, so every trade of a trading date (pre-market, regular, post-market)
lands in that date's bar whatever the UTC offset is that day (see
docs/decisions/0004-day-boundaries-at-exchange-midnight.md).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

Hours = Literal["regular", "extended", "always"]

NS = 1_000_000_000
MINUTE_NS = 60 * NS
DAY_NS = 86_400 * NS
PRE_MARKET_START = dt.time(4, 0)
POST_MARKET_NS = 4 * 3600 * NS
_FAR_FUTURE = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Session:
    """One trading session: its exchange-local date and UTC open/close (ns)."""

    date: dt.date
    open_ns: int
    close_ns: int
    early_close: bool

    @property
    def duration_s(self) -> float:
        """Length of the regular session in seconds."""
        return (self.close_ns - self.open_ns) / NS


def _to_ns(values: object) -> NDArray[np.int64]:
    arr = np.asarray(values, dtype="datetime64[ns]")
    return arr.astype(np.int64)


class MarketCalendar:
    """Sessions of one exchange, with cheap ``is_open``/``next_open`` lookups.

    Parameters
    ----------
    code
        An ``exchange_calendars`` code (``XNYS``, ``XNAS``, ``XLON``, ``24/7`` …).
    timezone
        Display time zone; defaults to the exchange's own.

    Raises
    ------
    ValueError
        For an unknown calendar code.
    """

    def __init__(self, code: str = "XNYS", timezone: str | None = None) -> None:
        import exchange_calendars as xc

        try:
            self._xc = xc.get_calendar(code)
        except xc.errors.InvalidCalendarName:
            raise ValueError(
                f"unknown market calendar {code!r} (exchange_calendars codes, e.g. XNYS, "
                "XNAS, XLON, 24/7)"
            ) from None
        self.code = code
        self.exchange_tz = ZoneInfo(str(self._xc.tz))
        self.tz = ZoneInfo(timezone) if timezone else self.exchange_tz
        self._lock = threading.Lock()
        self._load(self._xc)

    def _load(self, cal: object) -> None:
        sched = cal.schedule  # type: ignore[attr-defined]
        self._dates = np.asarray(sched.index.values, dtype="datetime64[D]")
        self._opens = _to_ns(sched["open"].dt.tz_convert(None).values)
        self._closes = _to_ns(sched["close"].dt.tz_convert(None).values)
        early = getattr(cal, "early_closes", None)
        early_dates = (
            np.asarray(early.values, dtype="datetime64[D]")
            if early is not None
            else np.empty(0, "datetime64[D]")
        )
        self._early = np.isin(self._dates, early_dates)
        # 00:00 and 04:00 exchange time of each session date, computed per date so DST is right.
        midnights = np.empty(len(self._dates), dtype=np.int64)
        pre = np.empty(len(self._dates), dtype=np.int64)
        for i, d in enumerate(self._dates.astype(object)):
            midnights[i] = _local_ns(d, dt.time(0, 0), self.exchange_tz)
            pre[i] = _local_ns(d, PRE_MARKET_START, self.exchange_tz)
        self._midnights = midnights
        self._ext_opens = np.minimum(pre, self._opens)
        self._ext_closes = self._closes + POST_MARKET_NS
        self.first_session: dt.date = self._dates[0].astype(object)
        self.last_session: dt.date = self._dates[-1].astype(object)

    # ------------------------------------------------------------------ coverage
    def _ensure(self, ts_ns: int) -> None:
        """Extend the calendar when a long-running process nears its last session."""
        if ts_ns < int(self._closes[-1]) - 30 * DAY_NS:
            return
        import exchange_calendars as xc
        import pandas as pd

        with self._lock:
            if ts_ns < int(self._closes[-1]) - 30 * DAY_NS:
                return
            end = pd.Timestamp(ts_ns, unit="ns").normalize() + pd.Timedelta(days=400)
            cal = xc.get_calendar(self.code, start=self.first_session, end=end.date())
            self._xc = cal
            self._load(cal)

    # ------------------------------------------------------------------ sessions
    def _index_at_or_before(self, opens: NDArray[np.int64], ts_ns: int) -> int:
        return int(np.searchsorted(opens, ts_ns, side="right")) - 1

    def _bounds(self, hours: Hours) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        if hours == "extended":
            return self._ext_opens, self._ext_closes
        return self._opens, self._closes

    def is_open(self, ts_ns: int, hours: Hours = "regular") -> bool:
        """Whether the market is open at ``ts_ns`` under ``hours``."""
        if hours == "always":
            return True
        self._ensure(ts_ns)
        opens, closes = self._bounds(hours)
        i = self._index_at_or_before(opens, ts_ns)
        return i >= 0 and ts_ns < int(closes[i])

    def next_open(self, ts_ns: int, hours: Hours = "regular") -> int:
        """The time the market is next open: ``ts_ns`` itself while it is open."""
        if hours == "always" or self.is_open(ts_ns, hours):
            return ts_ns
        opens, _ = self._bounds(hours)
        i = int(np.searchsorted(opens, ts_ns, side="right"))
        return int(opens[i]) if i < len(opens) else int(_FAR_FUTURE)

    def next_close(self, ts_ns: int, hours: Hours = "regular") -> int:
        """When the current (or next) open period ends."""
        if hours == "always":
            return int(_FAR_FUTURE)
        opens, closes = self._bounds(hours)
        i = self._index_at_or_before(opens, ts_ns)
        if i >= 0 and ts_ns < int(closes[i]):
            return int(closes[i])
        j = i + 1
        return int(closes[j]) if j < len(closes) else int(_FAR_FUTURE)

    def seconds_until_open(self, ts_ns: int, hours: Hours = "regular") -> float:
        """Seconds from ``ts_ns`` until the market is open (0 while it is)."""
        return max(0.0, (self.next_open(ts_ns, hours) - ts_ns) / NS)

    def session_at(self, ts_ns: int, hours: Hours = "regular") -> Session | None:
        """The session whose open period contains ``ts_ns`` (None when closed)."""
        if hours == "always":
            hours = "regular"
        opens, closes = self._bounds(hours)
        i = self._index_at_or_before(opens, ts_ns)
        if i >= 0 and ts_ns < int(closes[i]):
            return self._session(i)
        return None

    def _session(self, i: int) -> Session:
        return Session(
            date=self._dates[i].astype(object),
            open_ns=int(self._opens[i]),
            close_ns=int(self._closes[i]),
            early_close=bool(self._early[i]),
        )

    def session(self, date: dt.date | str) -> Session | None:
        """The session on an exchange-local date, or None on a weekend/holiday."""
        d = np.datetime64(date, "D")
        i = int(np.searchsorted(self._dates, d))
        if i < len(self._dates) and self._dates[i] == d:
            return self._session(i)
        return None

    def is_session(self, date: dt.date | str) -> bool:
        """Whether the exchange trades on ``date``."""
        return self.session(date) is not None

    def is_holiday(self, date: dt.date | str) -> bool:
        """A weekday without a session (weekends are not holidays)."""
        d = dt.date.fromisoformat(date) if isinstance(date, str) else date
        return d.weekday() < 5 and not self.is_session(d)

    def is_early_close(self, date: dt.date | str) -> bool:
        """Whether the session on ``date`` closes early."""
        s = self.session(date)
        return s is not None and s.early_close

    def sessions(self, start_ns: int, end_ns: int) -> list[Session]:
        """Sessions that open in ``[start_ns, end_ns)``."""
        lo = int(np.searchsorted(self._opens, start_ns, side="left"))
        hi = int(np.searchsorted(self._opens, end_ns, side="left"))
        return [self._session(i) for i in range(lo, hi)]

    def last_open_before(self, ts_ns: int, hours: Hours = "regular") -> int | None:
        """The most recent open (under ``hours``) at or before ``ts_ns``."""
        opens, _ = self._bounds("regular" if hours == "always" else hours)
        i = self._index_at_or_before(opens, ts_ns)
        return int(opens[i]) if i >= 0 else None

    # ------------------------------------------------------------------ dates and display
    def session_date(self, ts_ns: int) -> dt.date:
        """The exchange-local calendar date of ``ts_ns``."""
        return self.local(ts_ns).date()

    def local(self, ts_ns: int) -> dt.datetime:
        """``ts_ns`` as an aware datetime in the display time zone."""
        sec, ns = divmod(int(ts_ns), NS)
        return dt.datetime.fromtimestamp(sec, self.tz).replace(microsecond=ns // 1000)

    def day_boundaries(
        self, start_ns: int | None = None, end_ns: int | None = None
    ) -> NDArray[np.int64]:
        """00:00 exchange time of each session date (UTC ns, ascending).

        These are the ``1d`` bar starts handed to the core's ``set_day_boundaries``; the whole
        calendar range (about 20 years back, one year ahead) by default.
        """
        lo = 0 if start_ns is None else int(np.searchsorted(self._midnights, start_ns))
        hi = (
            len(self._midnights)
            if end_ns is None
            else int(np.searchsorted(self._midnights, end_ns))
        )
        return self._midnights[lo:hi].copy()


def _local_ns(date: dt.date, at: dt.time, tz: ZoneInfo) -> int:
    local = dt.datetime.combine(date, at, tzinfo=tz)
    return int(local.timestamp()) * NS


@cache
def get_calendar(code: str = "XNYS", timezone: str | None = None) -> MarketCalendar:
    """Return the process-wide :class:`MarketCalendar` for ``code`` (built once)."""
    return MarketCalendar(code, timezone)


def floor_minute(ts_ns: int) -> int:
    """Start of the UTC minute containing ``ts_ns``."""
    return ts_ns - ts_ns % MINUTE_NS
