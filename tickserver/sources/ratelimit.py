"""Rate limiting shared by the HTTP sources: token buckets, request budgets, jittered backoff.

- :class:`RateLimiter` — a token bucket (steady rate + burst) with a shared *penalty box*: when
  a provider answers "too many requests", :meth:`RateLimiter.penalize` makes every caller of
  that provider wait. :func:`limiter` returns **one limiter per provider per process**, so two
  sources (or a poller and a backfill) for the same provider never add up their rates.
- :class:`RequestBudget` — hard quotas: a rolling per-minute window and a per-day window that
  resets at midnight in a given time zone (Alpha Vantage's free tier: 25 requests a day).
- :class:`Backoff` — exponential backoff with full jitter (``uniform(0, min(cap, base·2ⁿ))``,
  never below ``base/2``), so reconnecting clients do not stampede in lockstep.

All waiting goes through ``asyncio.sleep``; clocks are injectable for tests.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

Clock = Callable[[], float]


class Backoff:
    """Exponential backoff with full jitter.

    ``next_delay()`` returns the next wait and counts the attempt; ``reset()`` after a success.
    """

    def __init__(
        self,
        base_s: float = 1.0,
        max_s: float = 60.0,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= max_s")
        self.base_s = base_s
        self.max_s = max_s
        self.attempt = 0
        self._rng = rng or random.Random()
        self.last_delay_s = 0.0

    def next_delay(self) -> float:
        """Return the next delay in seconds and count the attempt."""
        ceiling = min(self.max_s, self.base_s * (2.0 ** min(self.attempt, 30)))
        self.attempt += 1
        self.last_delay_s = max(self.base_s / 2.0, self._rng.uniform(0.0, ceiling))
        return self.last_delay_s

    def reset(self) -> None:
        """Forget past failures."""
        self.attempt = 0
        self.last_delay_s = 0.0


class RateLimiter:
    """A token bucket with a penalty box, shared by everyone calling one provider.

    Loop-agnostic (no asyncio primitives are held), so one process-wide instance serves any
    event loop.

    Parameters
    ----------
    name
        The provider, for health reports.
    rate_per_s
        Steady request rate.
    burst
        Requests allowed back to back after a quiet spell.
    """

    def __init__(
        self,
        name: str,
        rate_per_s: float,
        burst: int = 1,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate limiter needs rate_per_s > 0 and burst >= 1")
        self.name = name
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._penalty_until = 0.0
        self.waited_s = 0.0
        self.acquired = 0
        self.penalties = 0

    def configure(self, rate_per_s: float, burst: int) -> None:
        """Tighten the limits (the slowest configuration of a provider wins)."""
        self.rate_per_s = min(self.rate_per_s, rate_per_s)
        self.burst = min(self.burst, burst)
        self._tokens = min(self._tokens, float(self.burst))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a request would be allowed (0 if now)."""
        self._refill()
        wait_tokens = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate_per_s
        return max(self.penalty_remaining_s, wait_tokens)

    async def acquire(self) -> None:
        """Wait until a request is allowed and take a token.

        Tokens are taken up front (the bucket may go into debt), so concurrent callers queue
        in arrival order without a lock; a penalty imposed while one waits is honoured too.
        """
        self._refill()
        self._tokens -= 1.0
        self.acquired += 1
        wait = max(self.penalty_remaining_s, -self._tokens / self.rate_per_s)
        while wait > 0:
            self.waited_s += wait
            await asyncio.sleep(wait)
            wait = self.penalty_remaining_s

    def penalize(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (the provider said "too many requests")."""
        self.penalties += 1
        self._penalty_until = max(self._penalty_until, self._clock() + seconds)
        self._tokens = min(self._tokens, 0.0)

    @property
    def penalty_remaining_s(self) -> float:
        """Seconds left in the penalty box."""
        return max(0.0, self._penalty_until - self._clock())

    def state(self) -> dict[str, Any]:
        """Facts for health reports."""
        self._refill()
        return {
            "rate_per_s": self.rate_per_s,
            "burst": self.burst,
            "tokens": round(self._tokens, 3),
            "penalty_remaining_s": round(self.penalty_remaining_s, 3),
            "penalties": self.penalties,
            "requests": self.acquired,
        }


_LIMITERS: dict[str, RateLimiter] = {}


def limiter(provider: str, rate_per_s: float, burst: int = 1) -> RateLimiter:
    """Return the process-wide limiter of ``provider`` (created on first use).

    A later caller with stricter limits tightens the shared limiter; looser ones never loosen it.
    """
    lim = _LIMITERS.get(provider)
    if lim is None:
        lim = _LIMITERS[provider] = RateLimiter(provider, rate_per_s, burst)
    else:
        lim.configure(rate_per_s, burst)
    return lim


def reset_limiters() -> None:
    """Forget every process-wide limiter (tests)."""
    _LIMITERS.clear()


@dataclass
class BudgetState:
    """Remaining requests in each window and when each window frees up."""

    minute_remaining: int
    day_remaining: int
    minute_resets_in_s: float
    day_resets_in_s: float


class RequestBudget:
    """Hard request quotas: ``per_minute`` in any rolling 60 s, ``per_day`` per calendar day.

    The day window resets at midnight in ``day_tz``. :meth:`exhaust` records a provider saying
    the quota is used up (e.g. another program shares the API key), which blocks that window
    until it resets even if our own count says otherwise.
    """

    def __init__(
        self,
        per_minute: int,
        per_day: int,
        *,
        day_tz: str = "UTC",
        wall: Callable[[], float] = time.time,
    ) -> None:
        if per_minute < 1 or per_day < 1:
            raise ValueError("budgets must allow at least one request")
        self.per_minute = per_minute
        self.per_day = per_day
        self.tz = ZoneInfo(day_tz)
        self._wall = wall
        self._minute: collections.deque[float] = collections.deque()
        self._day_key: dt.date | None = None
        self._day_used = 0
        self._minute_blocked_until = 0.0
        self._day_blocked: dt.date | None = None
        self.spent = 0

    def _today(self, now: float) -> dt.date:
        return dt.datetime.fromtimestamp(now, self.tz).date()

    def _next_midnight(self, now: float) -> float:
        today = self._today(now)
        nxt = dt.datetime.combine(today + dt.timedelta(days=1), dt.time(0, 0), tzinfo=self.tz)
        return nxt.timestamp()

    def _roll(self, now: float) -> None:
        while self._minute and self._minute[0] <= now - 60.0:
            self._minute.popleft()
        today = self._today(now)
        if today != self._day_key:
            self._day_key = today
            self._day_used = 0
        if self._day_blocked is not None and self._day_blocked != today:
            self._day_blocked = None

    def state(self) -> BudgetState:
        """Remaining requests and seconds until each window frees a slot."""
        now = self._wall()
        self._roll(now)
        minute_left = self.per_minute - len(self._minute)
        if now < self._minute_blocked_until:
            minute_left = 0
        day_left = 0 if self._day_blocked is not None else self.per_day - self._day_used
        minute_reset = (
            max(self._minute_blocked_until - now, 0.0)
            if now < self._minute_blocked_until
            else (max(0.0, self._minute[0] + 60.0 - now) if minute_left <= 0 else 0.0)
        )
        return BudgetState(
            minute_remaining=max(0, minute_left),
            day_remaining=max(0, day_left),
            minute_resets_in_s=minute_reset,
            day_resets_in_s=self._next_midnight(now) - now,
        )

    def wait_s(self) -> float:
        """Seconds until one request fits in both windows (0 if now)."""
        st = self.state()
        if st.day_remaining <= 0:
            return st.day_resets_in_s
        if st.minute_remaining <= 0:
            return max(st.minute_resets_in_s, 0.01)
        return 0.0

    def spend(self) -> None:
        """Record one request."""
        now = self._wall()
        self._roll(now)
        self._minute.append(now)
        self._day_used += 1
        self.spent += 1

    def exhaust(self, window: str) -> None:
        """The provider said ``window`` ("minute" or "day") is used up: block it until reset."""
        now = self._wall()
        self._roll(now)
        if window == "day":
            self._day_blocked = self._today(now)
        else:
            self._minute_blocked_until = now + 60.0

    def as_dict(self) -> dict[str, Any]:
        """Facts for health reports."""
        st = self.state()
        return {
            "minute_remaining": st.minute_remaining,
            "minute_limit": self.per_minute,
            "day_remaining": st.day_remaining,
            "day_limit": self.per_day,
            "day_resets_in_s": round(st.day_resets_in_s, 1),
            "spent": self.spent,
        }
