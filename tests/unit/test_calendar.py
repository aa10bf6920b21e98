"""Market calendar: sessions, holidays, early closes and DST, in UTC nanoseconds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tickserver.calendar import NS, MarketCalendar, get_calendar


def ns(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp()) * NS


@pytest.fixture(scope="module")
def xnys() -> MarketCalendar:
    return get_calendar("XNYS")


def test_thanksgiving_is_a_holiday_and_the_market_stays_closed(xnys: MarketCalendar) -> None:
    # Arrange: Thursday 2026-11-26, 11:00 ET
    noon = ns("2026-11-26T11:00:00-05:00")
    # Act / Assert
    assert xnys.is_holiday("2026-11-26")
    assert not xnys.is_open(noon)
    assert not xnys.is_open(noon, "extended")
    assert xnys.local(xnys.next_open(noon)).isoformat() == "2026-11-27T09:30:00-05:00"


def test_weekend_is_not_a_holiday_but_closed(xnys: MarketCalendar) -> None:
    assert not xnys.is_holiday("2026-11-28")
    assert not xnys.is_session("2026-11-28")
    assert not xnys.is_open(ns("2026-11-28T12:00:00-05:00"))


def test_day_after_thanksgiving_closes_early_at_1300(xnys: MarketCalendar) -> None:
    # Arrange
    s = xnys.session("2026-11-27")
    # Act / Assert
    assert s is not None
    assert s.early_close
    assert xnys.local(s.close_ns).time() == dt.time(13, 0)
    assert xnys.is_open(ns("2026-11-27T12:59:00-05:00"))
    assert not xnys.is_open(ns("2026-11-27T13:00:00-05:00"))
    # post-market ends four hours after the early close
    assert xnys.is_open(ns("2026-11-27T16:59:00-05:00"), "extended")
    assert not xnys.is_open(ns("2026-11-27T17:00:00-05:00"), "extended")


def test_session_open_follows_dst_in_utc(xnys: MarketCalendar) -> None:
    # Arrange: DST starts Sunday 2026-03-08 in New York
    before = xnys.session("2026-03-06")
    after = xnys.session("2026-03-09")
    # Assert: 09:30 local is 14:30 UTC in winter and 13:30 UTC in summer
    assert before is not None
    assert after is not None
    assert before.open_ns == ns("2026-03-06T14:30:00+00:00")
    assert after.open_ns == ns("2026-03-09T13:30:00+00:00")
    assert xnys.local(after.open_ns).time() == dt.time(9, 30)


def test_day_boundaries_are_exchange_midnights_across_dst(xnys: MarketCalendar) -> None:
    # Act
    starts = xnys.day_boundaries(ns("2026-03-05T00:00:00+00:00"), ns("2026-03-11T00:00:00+00:00"))
    # Assert: session dates only (no weekend), 05:00 UTC before the change, 04:00 after
    assert starts.dtype == np.int64
    got = [str(np.datetime64(int(x), "ns")) for x in starts]
    assert got == [
        "2026-03-05T05:00:00.000000000",
        "2026-03-06T05:00:00.000000000",
        "2026-03-09T04:00:00.000000000",
        "2026-03-10T04:00:00.000000000",
    ]


def test_holiday_is_not_a_day_boundary(xnys: MarketCalendar) -> None:
    starts = xnys.day_boundaries(ns("2026-11-25T00:00:00+00:00"), ns("2026-11-28T00:00:00+00:00"))
    dates = [xnys.session_date(int(x)).isoformat() for x in starts]
    assert dates == ["2026-11-25", "2026-11-27"]


def test_next_open_outside_hours_and_seconds_until(xnys: MarketCalendar) -> None:
    # Arrange: Friday after the early close
    t = ns("2026-11-27T14:00:00-05:00")
    # Act
    nxt = xnys.next_open(t)
    # Assert: Monday 09:30 ET
    assert xnys.local(nxt).isoformat() == "2026-11-30T09:30:00-05:00"
    assert xnys.seconds_until_open(t) == (nxt - t) / NS
    assert xnys.seconds_until_open(ns("2026-11-30T10:00:00-05:00")) == 0.0


def test_always_hours_are_always_open(xnys: MarketCalendar) -> None:
    t = ns("2026-11-26T03:00:00-05:00")
    assert xnys.is_open(t, "always")
    assert xnys.next_open(t, "always") == t


def test_unknown_calendar_code_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown market calendar 'NOPE'"):
        MarketCalendar("NOPE")
