"""yfinance stream messages -> trades and quotes: wire decoding, trade sizes, garbage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.yahoo import GARBAGE, pricing_frame, recorded_frames
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import QuoteBatch, TradeBatch
from tickserver.metrics import Metrics
from tickserver.sources.base import SourceContext
from tickserver.sources.yfinance import FrameError, YFinanceConfig, YFinanceSource, decode_frame
from tickserver.symbols import Symbols

T0 = 1_795_534_200_000  # 2026-11-24 15:30:00 UTC in ms (in session)


class Collected(YFinanceSource):
    """The source with what it published."""

    trades: list[TradeBatch]
    quotes: list[QuoteBatch]


@pytest.fixture
def source() -> Collected:
    ctx = SourceContext(
        config=load_config(environ={}), bus=Bus(), symbols=Symbols(), metrics=Metrics()
    )
    src = Collected(ctx, YFinanceConfig(symbols=["AAPL", "MSFT"], backfill=False))
    src.trades, src.quotes = [], []
    ctx.bus.attach(Topic.RAW_TRADES, src.trades.append, name="t")
    ctx.bus.attach(Topic.RAW_QUOTES, src.quotes.append, name="q")
    return src


def trades_of(src: Collected) -> list[tuple[int, float, float]]:
    return [
        (int(t), float(p), float(s))
        for b in src.trades
        for t, p, s in zip(b.ts_event, b.price, b.size, strict=True)
    ]


def test_recorded_frames_decode_with_yfinance_protobuf() -> None:
    # Act
    msgs = [decode_frame(f) for f in recorded_frames()]
    # Assert
    assert {m.id for m in msgs} == {"AAPL", "MSFT", ""}
    first = msgs[0]
    assert first.id == "AAPL"
    assert first.time == T0
    assert first.price > 0


@pytest.mark.parametrize("frame", GARBAGE)
def test_garbage_frames_raise_frame_error(frame: str) -> None:
    with pytest.raises(FrameError):
        decode_frame(frame)


def test_trade_size_is_the_day_volume_increase_since_the_previous_message(
    source: Collected,
) -> None:
    # Arrange: first message of the connection, then +300 and +0 volume
    frames = [
        pricing_frame("AAPL", 230.10, T0, day_volume=1_000_000),
        pricing_frame("AAPL", 230.12, T0 + 500, day_volume=1_000_300),
        pricing_frame("AAPL", 230.11, T0 + 900, day_volume=1_000_300),
        pricing_frame("AAPL", 230.11, T0 + 1000, day_volume=1_000_300),  # nothing new
    ]
    # Act
    for f in frames:
        source._on_frame(f)
    # Assert: the first size is unknown (0); the unchanged repeat is not a trade
    assert trades_of(source) == [
        (T0 * 10**6, 230.10, 0.0),
        ((T0 + 500) * 10**6, 230.12, 300.0),
        ((T0 + 900) * 10**6, 230.11, 0.0),
    ]


def test_last_size_wins_over_volume_delta(source: Collected) -> None:
    source._on_frame(pricing_frame("AAPL", 230.10, T0, day_volume=100))
    source._on_frame(pricing_frame("AAPL", 230.20, T0 + 1, day_volume=900, last_size=25))
    assert trades_of(source)[-1][2] == 25.0


def test_volume_reset_starts_a_new_baseline_without_negative_size(source: Collected) -> None:
    source._on_frame(pricing_frame("AAPL", 230.10, T0, day_volume=5_000_000))
    source._on_frame(pricing_frame("AAPL", 231.00, T0 + 1, day_volume=1_000))  # new day
    source._on_frame(pricing_frame("AAPL", 231.05, T0 + 2, day_volume=1_500))
    assert [s for _, _, s in trades_of(source)] == [0.0, 0.0, 500.0]


def test_float32_price_is_rounded_to_the_price_hint(source: Collected) -> None:
    source._on_frame(pricing_frame("AAPL", 230.1, T0))
    assert trades_of(source)[0][1] == 230.1  # not 230.10000610351562


def test_bid_and_ask_become_a_quote(source: Collected) -> None:
    source._on_frame(
        pricing_frame("AAPL", 230.1, T0, bid=230.09, ask=230.11, bid_size=300, ask_size=200)
    )
    (q,) = source.quotes
    assert (q.bid_px[0], q.bid_sz[0], q.ask_px[0], q.ask_sz[0]) == (230.09, 300.0, 230.11, 200.0)


def test_garbage_and_unknown_symbols_are_counted_not_fatal(source: Collected) -> None:
    # Act
    for g in GARBAGE:
        assert source._on_frame(g) is False
    source._on_frame(pricing_frame("NOTSUBSCRIBED", 1.0, T0))
    source._on_frame(pricing_frame("AAPL", 230.1, T0))
    # Assert
    assert source.errors["decode"] == len(GARBAGE)
    assert source.stats.unknown_symbol == 1
    assert len(trades_of(source)) == 1


def test_ticks_outside_the_session_are_dropped_with_regular_hours(source: Collected) -> None:
    # 2026-11-24 22:00 UTC = 17:00 ET, after the close
    source._on_frame(pricing_frame("AAPL", 230.1, T0 + 6 * 3600 * 1000 + 1_800_000))
    assert trades_of(source) == []
    assert source.stats.outside_hours == 1


def test_heartbeat_is_not_a_trade(source: Collected) -> None:
    hb = [f for f in recorded_frames() if decode_frame(f).quote_type == 7]
    assert hb
    assert source._on_frame(hb[0]) is True
    assert trades_of(source) == []
    assert json.loads(hb[0])["type"] == "pricing"
    assert np.isfinite(decode_frame(hb[0]).time)
