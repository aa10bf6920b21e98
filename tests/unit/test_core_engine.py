"""The Engine of tickserver._core: ingest, rejects, bars, indicators, signals, books, errors."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest

from tickserver import _core

talib = pytest.importorskip("talib")

M = 60_000_000_000
S = 1_000_000_000


def registry(*names: str) -> Any:
    reg = _core.SymbolRegistry()
    for n in names or ("AAPL", "MSFT"):
        reg.intern(n)
    return reg


def specs(interval: int = 0) -> list[Any]:
    return [
        _core.IndicatorSpec("sma20", "sma", interval, period=20),
        _core.IndicatorSpec("ema10", "ema", interval, period=10),
        _core.IndicatorSpec("rsi14", "rsi", interval, period=14),
        _core.IndicatorSpec("macd", "macd", interval, fast=12, slow=26, signal=9),
        _core.IndicatorSpec("bb", "bbands", interval, period=20, k=2.0),
        _core.IndicatorSpec("atr14", "atr", interval, period=14),
        _core.IndicatorSpec("vwap", "vwap", interval),
        _core.IndicatorSpec("sd20", "stddev", interval, period=20),
        _core.IndicatorSpec("z20", "zscore", interval, period=20),
    ]


def rules(interval: int = 0) -> list[Any]:
    return [
        _core.RuleSpec("px_x_ema", "crossover", interval, a="close", b="ema10"),
        _core.RuleSpec("rsi_levels", "threshold", interval, a="rsi14", above=70.0, below=30.0),
        _core.RuleSpec("bb_break", "breakout", interval, a="bb"),
    ]


def engine(reg: Any | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "ring_capacity": 4096,
        "bar_capacity": 4096,
        "intervals": [M],
        "indicators": [*specs(0), _core.IndicatorSpec("m_sma5", "sma", M, period=5)],
        "rules": rules(0),
    }
    args.update(kw)
    return _core.Engine(reg if reg is not None else registry(), **args)


def stream(n: int, n_symbols: int = 2, seed: int = 0, step_ns: int = 700_000_000) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, n_symbols, n).astype(np.uint32)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    return {
        "symbol_id": sym,
        "ts_event": (np.arange(n, dtype=np.int64) * step_ns + 5 * S),
        "price": price,
        "size": rng.uniform(0.0, 100.0, n),
        "seq": np.arange(n, dtype=np.uint64),
        "flags": np.zeros(n, dtype=np.uint8),
    }


def test_rejected_rows_are_reported_with_reasons_and_valid_rows_processed() -> None:
    # Arrange
    e = engine()
    b = stream(8)
    b["price"][1] = np.nan
    b["price"][2] = 0.0
    b["size"][3] = -1.0
    b["size"][4] = np.inf
    b["symbol_id"][5] = 99
    # Act
    r = e.on_trades(**b)
    # Assert
    assert list(r.rejected) == [1, 2, 3, 4, 5]
    assert [_core.reject_reason_name(int(c)) for c in r.reject_reason] == [
        "price must be finite and positive",
        "price must be finite and positive",
        "size must be finite and non-negative",
        "size must be finite and non-negative",
        "unknown symbol id",
    ]
    assert r.n_rejected == 5
    assert e.counters()["trades"] == 3
    assert e.counters()["trades_rejected"] == 5


def test_batch_and_single_calls_are_equivalent() -> None:
    # Arrange
    b = stream(3000, seed=1)
    batch, single = engine(), engine()
    # Act
    rb = batch.on_trades(**b)
    bars: list[Any] = []
    signals: list[Any] = []
    indicators: list[Any] = []
    for i in range(3000):
        r = single.on_trade(
            int(b["symbol_id"][i]), int(b["ts_event"][i]), float(b["price"][i]), float(b["size"][i])
        )
        if r is not None:
            bars.append(r.bars)
            signals.append(r.signals)
            indicators.append(r.indicators)
    # Assert
    for key in ("ts_event", "symbol_id", "open", "high", "low", "close", "volume", "vwap"):
        np.testing.assert_array_equal(rb.bars[key], np.concatenate([x[key] for x in bars]))
    for key in ("rule_id", "symbol_id", "ts_event", "direction", "value"):
        np.testing.assert_array_equal(rb.signals[key], np.concatenate([x[key] for x in signals]))
    for key in ("output_id", "value", "ts_event"):
        np.testing.assert_array_equal(
            rb.indicators[key], np.concatenate([x[key] for x in indicators])
        )
    for s in (0, 1):
        np.testing.assert_array_equal(batch.indicator_values(s, 0), single.indicator_values(s, 0))
        np.testing.assert_array_equal(batch.indicator_values(s, M), single.indicator_values(s, M))


@pytest.mark.parametrize(
    ("n_symbols", "ring_capacity", "batch_rows"),
    [
        (1, 4096, 3000),  # one symbol: a long run processed in blocks
        (3, 4096, 3000),  # grouped by symbol straight into the rings
        (3, 512, 3000),  # grouped through scratch columns (a symbol's rows exceed its ring)
        (3, 4096, 100),  # small interleaved batches: short runs, trade by trade
    ],
)
def test_every_batch_shape_equals_single_calls(
    n_symbols: int, ring_capacity: int, batch_rows: int
) -> None:
    # Arrange
    names = [f"S{i}" for i in range(n_symbols)]
    b = stream(3000, n_symbols=n_symbols, seed=5, step_ns=300_000_000)
    batch = engine(registry(*names), ring_capacity=ring_capacity)
    single = engine(registry(*names), ring_capacity=ring_capacity)
    # Act
    parts = [
        batch.on_trades(**{k: v[lo : lo + batch_rows] for k, v in b.items()})
        for lo in range(0, 3000, batch_rows)
    ]
    ones = [
        single.on_trade(
            int(b["symbol_id"][i]), int(b["ts_event"][i]), float(b["price"][i]), float(b["size"][i])
        )
        for i in range(3000)
    ]
    # Assert
    got = [p for p in parts if p.n_signals + p.n_bars > 0]
    want = [r for r in ones if r is not None]
    for field, keys in (
        ("signals", ("rule_id", "symbol_id", "ts_event", "direction", "value")),
        ("bars", ("symbol_id", "ts_event", "close", "volume", "vwap", "trades")),
        ("indicators", ("symbol_id", "output_id", "value")),
    ):
        for key in keys:
            np.testing.assert_array_equal(
                np.concatenate([getattr(r, field)[key] for r in got]),
                np.concatenate([getattr(r, field)[key] for r in want]),
            )
    assert sum(p.n_signals for p in parts) > 100
    for s in range(n_symbols):
        np.testing.assert_array_equal(batch.indicator_values(s, 0), single.indicator_values(s, 0))
        np.testing.assert_array_equal(batch.indicator_values(s, M), single.indicator_values(s, M))
        np.testing.assert_array_equal(
            batch.last_trades(s, 10)["price"], single.last_trades(s, 10)["price"]
        )


def test_single_trade_returns_none_when_nothing_was_produced() -> None:
    # Arrange
    e = engine(rules=[])
    # Act
    first = e.on_trade(0, 1 * S, 100.0, 1.0)
    closing = e.on_trade(0, M + 1, 101.0, 1.0)
    # Assert
    assert first is None
    assert closing is not None
    assert closing.n_bars == 1


def test_single_trade_raises_for_an_invalid_row() -> None:
    e = engine()
    with pytest.raises(ValueError, match="price must be finite and positive"):
        e.on_trade(0, 1, float("nan"), 1.0)
    with pytest.raises(ValueError, match="unknown symbol id"):
        e.on_trade(7, 1, 1.0, 1.0)


def test_tick_indicators_equal_talib_on_the_trade_prices() -> None:
    # Arrange
    b = stream(2000, n_symbols=1, seed=2)
    e = engine(reg=registry("AAPL"))
    x = b["price"]
    # Act
    e.on_trades(**b)
    values = dict(zip(e.indicator_names(0), e.indicator_values(0, 0), strict=True))
    # Assert
    macd = talib.MACD(x, 12, 26, 9)
    upper, middle, lower = talib.BBANDS(x, 20, 2.0, 2.0)
    expected = {
        "sma20": talib.SMA(x, 20)[-1],
        "ema10": talib.EMA(x, 10)[-1],
        "rsi14": talib.RSI(x, 14)[-1],
        "macd": macd[0][-1],
        "macd.signal": macd[1][-1],
        "macd.hist": macd[2][-1],
        "bb.upper": upper[-1],
        "bb.middle": middle[-1],
        "bb.lower": lower[-1],
        "atr14": talib.ATR(x, x, x, 14)[-1],
        "vwap": np.sum(x * b["size"]) / np.sum(b["size"]),
        "sd20": talib.STDDEV(x, 20, 1.0)[-1],
        "z20": (x[-1] - talib.SMA(x, 20)[-1]) / talib.STDDEV(x, 20, 1.0)[-1],
    }
    for name, want in expected.items():
        assert values[name] == pytest.approx(want, rel=1e-9), name


def test_bar_indicators_see_only_real_bars_and_equal_talib_on_their_closes() -> None:
    # Arrange: trades with gaps of several empty minutes
    rng = np.random.default_rng(4)
    n = 4000
    gaps = rng.choice([1 * S, 20 * S, 7 * M], size=n, p=[0.6, 0.39, 0.01])
    ts = (np.cumsum(gaps) + 5 * S).astype(np.int64)
    b = stream(n, n_symbols=1, seed=4)
    b["ts_event"] = ts
    e = _core.Engine(
        registry("AAPL"),
        ring_capacity=64,
        bar_capacity=4096,
        intervals=[M],
        indicators=specs(M),
        rules=[],
    )
    # Act
    r = e.on_trades(**b)
    # Assert
    closes = r.bars["close"]
    assert np.any(np.diff(r.bars["ts_event"]) > M)  # there were empty intervals
    names = e.indicator_names(M)
    got = {
        names[o]: r.indicators["value"][r.indicators["output_id"] == o] for o in range(len(names))
    }
    sma = talib.SMA(closes, 20)
    np.testing.assert_allclose(got["sma20"], sma[~np.isnan(sma)], rtol=1e-9)
    ema = talib.EMA(closes, 10)
    np.testing.assert_allclose(got["ema10"], ema[~np.isnan(ema)], rtol=1e-9)
    atr = talib.ATR(r.bars["high"], r.bars["low"], closes, 14)
    np.testing.assert_allclose(got["atr14"], atr[~np.isnan(atr)], rtol=1e-9)
    hist = talib.MACD(closes, 12, 26, 9)[2]
    np.testing.assert_allclose(got["macd.hist"], hist[~np.isnan(hist)], rtol=1e-9, atol=1e-12)
    # The forming bar's provisional values equal TA-Lib on the closes plus the forming close.
    forming = e.forming_bar(0, M)
    assert forming is not None
    with_forming = np.append(closes, forming["close"])
    provisional = dict(zip(names, e.indicator_values(0, M, forming=True), strict=True))
    committed = dict(zip(names, e.indicator_values(0, M, forming=False), strict=True))
    assert provisional["sma20"] == pytest.approx(talib.SMA(with_forming, 20)[-1], rel=1e-9)
    assert provisional["rsi14"] == pytest.approx(talib.RSI(with_forming, 14)[-1], rel=1e-9)
    assert committed["sma20"] == pytest.approx(sma[-1], rel=1e-9)


def test_crossover_signals_match_a_numpy_reference() -> None:
    # Arrange
    b = stream(3000, n_symbols=1, seed=5)
    e = engine(reg=registry("AAPL"), rules=[rules(0)[0]], intervals=[], indicators=specs(0))
    x = b["price"]
    # Act
    r = e.on_trades(**b)
    # Assert
    d = x - talib.EMA(x, 10)
    side = np.sign(d)
    expected_idx, expected_dir, prev = [], [], 0.0
    for i, s in enumerate(side):
        if np.isnan(s) or s == 0:
            continue
        if prev != 0 and s != prev:
            expected_idx.append(i)
            expected_dir.append(int(s))
        prev = s
    np.testing.assert_array_equal(r.signals["ts_event"], b["ts_event"][expected_idx])
    np.testing.assert_array_equal(r.signals["direction"], expected_dir)
    np.testing.assert_array_equal(r.signals["value"], x[expected_idx])
    assert e.rule_names() == ["px_x_ema"]


def test_result_views_are_read_only_and_outlive_the_result_object() -> None:
    # Arrange
    e = engine()
    r = e.on_trades(**stream(500))
    bars = r.bars
    rejected = r.rejected
    # Act
    del r
    gc.collect()
    # Assert
    assert bars["close"].sum() > 0
    assert not bars["close"].flags.writeable
    assert rejected.dtype == np.int64
    assert bars["trades"].dtype == np.uint64
    assert bars["symbol_id"].dtype == np.uint32


@pytest.mark.parametrize(
    ("column", "bad", "error", "message"),
    [
        ("price", np.ones(4, dtype=np.float32), TypeError, r"'price' must have dtype float64"),
        (
            "symbol_id",
            np.zeros(4, dtype=np.int64),
            TypeError,
            r"'symbol_id' must have dtype uint32",
        ),
        ("flags", np.zeros(4, dtype=np.int8), TypeError, r"'flags' must have dtype uint8"),
        ("ts_event", np.zeros((2, 2), dtype=np.int64), ValueError, r"'ts_event' must be 1-D"),
        ("size", np.ones(3), ValueError, r"'size' has 3 rows, expected 4"),
        ("seq", np.zeros(5, dtype=np.uint64), ValueError, r"'seq' has 5 rows, expected 4"),
    ],
)
def test_wrong_dtype_shape_or_length_names_the_argument(
    column: str, bad: Any, error: type[Exception], message: str
) -> None:
    # Arrange
    e = engine()
    b = stream(4)
    b[column] = bad
    # Act / Assert
    with pytest.raises(error, match=message):
        e.on_trades(**b)


def test_non_contiguous_column_is_rejected_naming_the_argument() -> None:
    e = engine()
    b = stream(8)
    b["price"] = np.repeat(b["price"], 2)[::2]
    with pytest.raises(ValueError, match=r"'price' must be C-contiguous"):
        e.on_trades(**b)


def test_symbols_interned_after_construction_are_accepted() -> None:
    # Arrange
    reg = registry("AAPL")
    e = engine(reg=reg)
    nvda = reg.intern("NVDA")
    # Act
    r = e.on_trades(**{**stream(3, n_symbols=1), "symbol_id": np.full(3, nvda, dtype=np.uint32)})
    # Assert
    assert r.n_rejected == 0
    assert e.trade_count(nvda) == 3
    assert e.symbol_count == 2


def test_book_deltas_report_changed_tops_once_and_unknown_symbols() -> None:
    # Arrange
    e = engine()
    cols = {
        "symbol_id": np.array([0, 0, 1, 9, 0], dtype=np.uint32),
        "side": np.array([0, 1, 0, 0, 1], dtype=np.uint8),
        "price": np.array([10.0, 10.5, 20.0, 1.0, 10.0], dtype=np.float64),
        "size": np.array([1.0, 2.0, 3.0, 1.0, 1.0], dtype=np.float64),
        "seq": np.zeros(5, dtype=np.uint64),
    }
    # Act
    r = e.on_book_deltas(**cols)
    # Assert
    assert list(r.rejected) == [3, 4]
    assert _core.book_reject_reason_name(int(r.reasons[0])) == "unknown symbol id"
    assert "cross" in _core.book_reject_reason_name(int(r.reasons[1]))
    assert list(r.changed) == [0, 1]
    bid_px, _, ask_px, _ = e.book_top(0, 5)
    assert (list(bid_px), list(ask_px)) == ([10.0], [10.5])
    stats = e.book_stats(0)
    assert stats["mid"] == pytest.approx(10.25)
    assert stats["bid_depth"] == 1
    assert np.isnan(e.book_stats(1)["ask_px"])


def test_quotes_replace_the_book_with_one_level_per_side() -> None:
    # Arrange
    e = engine()
    e.on_book_deltas(
        np.array([0, 0], dtype=np.uint32),
        np.array([0, 0], dtype=np.uint8),
        np.array([9.0, 9.5], dtype=np.float64),
        np.array([1.0, 1.0], dtype=np.float64),
        np.zeros(2, dtype=np.uint64),
    )
    # Act
    r = e.on_quotes(
        np.array([0], dtype=np.uint32),
        np.array([10.0]),
        np.array([2.0]),
        np.array([10.1]),
        np.array([0.0]),  # size 0: empty ask side
        np.zeros(1, dtype=np.uint64),
    )
    # Assert
    assert list(r.changed) == [0]
    bid_px, bid_sz, ask_px, _ = e.book_top(0, 5)
    assert (list(bid_px), list(bid_sz), list(ask_px)) == ([10.0], [2.0], [])


def test_book_snapshot_raises_book_error_and_leaves_the_book_unchanged() -> None:
    # Arrange
    e = engine()
    e.book_snapshot(0, np.array([10.0]), np.array([1.0]), np.array([10.2]), np.array([1.0]))
    # Act / Assert
    with pytest.raises(_core.BookError, match="cross"):
        e.book_snapshot(0, np.array([10.3]), np.array([1.0]), np.array([10.2]), np.array([1.0]))
    assert e.book_stats(0)["bid_px"] == 10.0


def test_configuration_errors_name_what_is_wrong() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="unknown indicator kind 'wma'"):
        _core.IndicatorSpec("w", "wma", 0)
    with pytest.raises(ValueError, match="unknown rule kind"):
        _core.RuleSpec("r", "cross", 0)
    with pytest.raises(ValueError, match="duplicate bar interval"):
        engine(reg, intervals=[M, M])
    with pytest.raises(ValueError, match="indicator 'x' has interval"):
        engine(reg, indicators=[_core.IndicatorSpec("x", "ema", 5 * M, period=3)])
    with pytest.raises(ValueError, match="no output 'nope'"):
        engine(reg, rules=[_core.RuleSpec("r", "crossover", 0, a="close", b="nope")])
    with pytest.raises(ValueError, match="bbands"):
        engine(reg, rules=[_core.RuleSpec("r", "breakout", 0, a="ema10")])
    with pytest.raises(ValueError, match="period must be in"):
        engine(reg, indicators=[_core.IndicatorSpec("r", "rsi", 0, period=1)])
    with pytest.raises(ValueError, match="duplicate indicator name"):
        engine(
            reg, indicators=[_core.IndicatorSpec("a", "ema", 0), _core.IndicatorSpec("a", "sma", 0)]
        )


def test_snapshots_reject_unknown_symbols_and_intervals() -> None:
    e = engine()
    with pytest.raises(IndexError, match="unknown symbol id 5"):
        e.last_trades(5, 1)
    with pytest.raises(ValueError, match="unknown interval"):
        e.bars(0, 7, 1)
    with pytest.raises(ValueError, match="no bars"):
        e.bars(0, 0, 1)


def test_counters_intervals_and_memory_describe_the_engine() -> None:
    # Arrange
    e = engine(ring_capacity=1000)
    # Act
    e.on_trades(**stream(100))
    # Assert
    assert e.intervals() == [M]
    assert e.counters()["trades"] == 100
    assert e.memory_bytes() >= 2 * 1000 * 33
    assert e.trade_count(0) + e.trade_count(1) == 100


def test_one_indicator_name_may_run_at_several_intervals() -> None:
    # Arrange
    specs = [
        _core.IndicatorSpec("ema12", "ema", 0, period=12),
        _core.IndicatorSpec("ema12", "ema", M, period=12),
    ]
    rule = _core.RuleSpec("x", "crossover", M, a="close", b="ema12")
    # Act
    e = engine(indicators=specs, rules=[rule])
    # Assert
    assert e.indicator_names(0) == ["ema12"]
    assert e.indicator_names(M) == ["ema12"]


def test_backfilled_trades_after_a_symbols_last_bar_open_bars_even_behind_the_clock() -> None:
    # Arrange: 1m bars; the clock has advanced to 10:05:30 while AAA had a bar only at 10:00
    # and BBB had none (a reconnect gap, then a backfill from history).
    M = 60 * 10**9
    t0 = 1_795_600_000 * 10**9 // M * M
    reg = _core.SymbolRegistry()
    reg.intern("AAA")
    reg.intern("BBB")
    eng = _core.Engine(
        reg, ring_capacity=64, bar_capacity=64, intervals=[M], indicators=[], rules=[]
    )
    eng.on_trade(0, t0 + 5 * 10**9, 10.0, 1.0)
    eng.advance(t0 + 5 * M + 30 * 10**9)
    # Act: backfill 10:01 and 10:02 for both symbols, then a trade older than AAA's last bar
    for sid in (0, 1):
        eng.on_trade(sid, t0 + M + 10**9, 11.0, 1.0)
        eng.on_trade(sid, t0 + 2 * M + 10**9, 12.0, 1.0)
    late = eng.on_trade(0, t0 + 30 * 10**9, 9.0, 1.0)
    eng.advance(t0 + 5 * M + 31 * 10**9)
    # Assert: the backfilled minutes became bars; the trade inside a published bar is late
    assert eng.bars(0, M, 10)["ts_event"].tolist() == [t0, t0 + M, t0 + 2 * M]
    assert eng.bars(1, M, 10)["ts_event"].tolist() == [t0 + M, t0 + 2 * M]
    assert late is not None
    assert late.late == 1
