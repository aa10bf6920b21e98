"""Rate limiting: token bucket with penalty box, request budgets, jittered backoff."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from tickserver.sources.ratelimit import (
    Backoff,
    RateLimiter,
    RequestBudget,
    limiter,
    reset_limiters,
)


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    # Arrange
    b = Backoff(1.0, 8.0, rng=random.Random(1))
    # Act
    delays = [b.next_delay() for _ in range(10)]
    # Assert: each delay lies in [base/2, min(cap, base*2^n)]
    for n, d in enumerate(delays):
        assert 0.5 <= d <= min(8.0, 2.0**n)
    assert max(delays[5:]) <= 8.0
    assert b.attempt == 10


def test_backoff_reset_starts_over() -> None:
    b = Backoff(2.0, 100.0, rng=random.Random(3))
    for _ in range(6):
        b.next_delay()
    b.reset()
    assert b.attempt == 0
    assert b.next_delay() <= 2.0


def test_backoff_jitter_spreads_clients_apart() -> None:
    # Two clients failing in lockstep do not retry at the same moment.
    a, b = Backoff(1.0, 60.0, rng=random.Random(1)), Backoff(1.0, 60.0, rng=random.Random(2))
    da = [a.next_delay() for _ in range(6)]
    db = [b.next_delay() for _ in range(6)]
    assert da != db


def test_limiter_allows_burst_then_paces_at_rate() -> None:
    # Arrange
    clock = FakeClock()
    lim = RateLimiter("p", rate_per_s=2.0, burst=3, clock=clock)
    # Act / Assert: three immediate tokens, then one every 0.5 s
    for _ in range(3):
        assert lim.delay() == 0
        lim._refill()
        lim._tokens -= 1
    assert lim.delay() == pytest.approx(0.5)
    clock.t += 0.5
    assert lim.delay() == 0


async def test_limiter_penalty_holds_every_caller() -> None:
    # Arrange
    lim = RateLimiter("p", rate_per_s=1000.0, burst=10)
    lim.penalize(0.05)
    # Act
    results = await asyncio.gather(_acquire_then_penalty(lim), _acquire_then_penalty(lim))
    # Assert: both callers came out only once the penalty was over
    assert lim.penalties == 1
    assert results == [0.0, 0.0]
    assert lim.waited_s > 0
    assert lim.acquired == 2


async def _acquire_then_penalty(lim: RateLimiter) -> float:
    await lim.acquire()
    return lim.penalty_remaining_s


def test_one_limiter_per_provider_and_stricter_settings_win() -> None:
    reset_limiters()
    a = limiter("yahoo-test", 1.0, 5)
    b = limiter("yahoo-test", 0.5, 10)
    assert a is b
    assert a.rate_per_s == 0.5
    assert a.burst == 5
    reset_limiters()


def test_budget_counts_minute_and_day_windows() -> None:
    # Arrange
    clock = FakeClock(dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC).timestamp())
    b = RequestBudget(per_minute=2, per_day=3, wall=clock)
    # Act
    b.spend()
    b.spend()
    # Assert: the minute is full; it frees 60 s after the first request
    assert b.state().minute_remaining == 0
    assert b.wait_s() == pytest.approx(60.0)
    clock.t += 60.0
    assert b.wait_s() == 0.0
    b.spend()
    st = b.state()
    assert st.day_remaining == 0
    assert b.wait_s() == pytest.approx(9 * 3600.0 - 60.0)  # until midnight UTC


def test_budget_day_resets_at_midnight_in_its_time_zone() -> None:
    clock = FakeClock(dt.datetime(2026, 11, 24, 23, 59, tzinfo=dt.UTC).timestamp())
    b = RequestBudget(per_minute=5, per_day=1, wall=clock)
    b.spend()
    assert b.state().day_remaining == 0
    clock.t += 120
    assert b.state().day_remaining == 1


def test_provider_saying_exhausted_blocks_the_window_until_reset() -> None:
    # Arrange: our count says 24 left, the provider says the day is used up (shared key)
    clock = FakeClock(dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp())
    b = RequestBudget(per_minute=5, per_day=25, wall=clock)
    b.spend()
    # Act
    b.exhaust("day")
    # Assert
    assert b.state().day_remaining == 0
    assert b.wait_s() == pytest.approx(12 * 3600.0)
    clock.t += 12 * 3600.0
    assert b.state().day_remaining == 25


def test_minute_quota_reply_blocks_sixty_seconds() -> None:
    clock = FakeClock(5000.0)
    b = RequestBudget(per_minute=5, per_day=25, wall=clock)
    b.exhaust("minute")
    assert b.wait_s() == pytest.approx(60.0)
    clock.t += 60.0
    assert b.wait_s() == 0.0
