"""Standalone indicators of tickserver._core against TA-Lib 0.8's batch functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from tickserver import _core

talib = pytest.importorskip("talib")
abstract = pytest.importorskip("talib.abstract")

RTOL = 1e-9
SEEDS = [0, 1, 7, 42]
DAY = 86_400_000_000_000

Array = NDArray[np.float64]


def walk(seed: int, n: int = 3000, start: float = 100.0, vol: float = 0.002) -> Array:
    """A geometric random walk, like a price series."""
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def ohlc(seed: int, n: int = 2000) -> tuple[Array, Array, Array]:
    """Random bars: high >= max(open, close), low <= min(open, close)."""
    rng = np.random.default_rng(seed)
    close = walk(seed, n)
    spread = close * rng.uniform(0.0, 0.004, n)
    high = close + spread * rng.uniform(0.0, 1.0, n)
    low = close - spread * rng.uniform(0.0, 1.0, n)
    return high, low, close


def assert_matches(ours: Array, ref: Array) -> None:
    """Same NaN positions, values equal to RTOL."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0.0, equal_nan=True)


SINGLE: list[tuple[str, Callable[[int], Any], Callable[..., Array]]] = [
    ("sma", _core.Sma, lambda x, p: talib.SMA(x, timeperiod=p)),
    ("ema", _core.Ema, lambda x, p: talib.EMA(x, timeperiod=p)),
    ("rsi", _core.Rsi, lambda x, p: talib.RSI(x, timeperiod=p)),
    ("stddev", _core.StdDev, lambda x, p: talib.STDDEV(x, timeperiod=p, nbdev=1.0)),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [2, 5, 14, 30, 200])
@pytest.mark.parametrize(("name", "cls", "ref"), SINGLE, ids=[s[0] for s in SINGLE])
def test_single_input_indicator_matches_talib_after_warmup(
    name: str, cls: Callable[[int], Any], ref: Callable[..., Array], period: int, seed: int
) -> None:
    # Arrange
    x = walk(seed)
    # Act
    ours = cls(period).update_many(x)
    # Assert
    assert_matches(ours, ref(x, period))


@pytest.mark.parametrize("seed", SEEDS)
def test_ema_matches_talib_after_warmup_when_updated_one_at_a_time(seed: int) -> None:
    # Arrange
    x = walk(seed, 1000)
    ema = _core.Ema(20)
    # Act
    ours = np.array([ema.update(v) for v in x])
    # Assert
    assert_matches(ours, talib.EMA(x, timeperiod=20))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (26, 12, 9), (3, 10, 1)]
)
def test_macd_matches_talib_after_warmup(seed: int, fast: int, slow: int, signal: int) -> None:
    # Arrange
    x = walk(seed)
    # Act
    ours = _core.Macd(fast, slow, signal).update_many(x)
    ref = talib.MACD(x, fastperiod=fast, slowperiod=slow, signalperiod=signal)
    # Assert
    for o, r in zip(ours, ref, strict=True):
        assert_matches(o, r)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.0), (10, 2.5), (50, 0.5)])
def test_bbands_matches_talib_after_warmup(seed: int, period: int, k: float) -> None:
    # Arrange
    x = walk(seed)
    # Act
    ours = _core.BBands(period, k).update_many(x)
    ref = talib.BBANDS(x, timeperiod=period, nbdevup=k, nbdevdn=k, matype=0)
    # Assert
    for o, r in zip(ours, ref, strict=True):
        assert_matches(o, r)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 2, 14, 30])
def test_atr_matches_talib_after_warmup(seed: int, period: int) -> None:
    # Arrange
    high, low, close = ohlc(seed)
    # Act
    ours = _core.Atr(period).update_many(high, low, close)
    # Assert
    assert_matches(ours, talib.ATR(high, low, close, timeperiod=period))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [2, 20, 60])
def test_zscore_equals_distance_from_talib_sma_in_talib_stddevs(seed: int, period: int) -> None:
    # Arrange
    x = walk(seed)
    # Act
    ours = _core.ZScore(period).update_many(x)
    # Assert
    ref = (x - talib.SMA(x, timeperiod=period)) / talib.STDDEV(x, timeperiod=period, nbdev=1.0)
    assert_matches(ours, ref)


def test_vwap_is_cumulative_notional_over_volume_per_utc_day() -> None:
    # Arrange
    rng = np.random.default_rng(3)
    n = 2000
    ts = np.sort(rng.integers(0, 3 * DAY, n)).astype(np.int64)
    price = walk(3, n)
    size = rng.uniform(0.0, 10.0, n)
    # Act
    ours = _core.Vwap().update_many(price, size, ts)
    # Assert
    day = ts // DAY
    ref = np.empty(n)
    for d in np.unique(day):
        m = day == d
        ref[m] = np.cumsum(price[m] * size[m]) / np.cumsum(size[m])
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_vwap_follows_day_boundaries_and_ignores_trades_from_before_the_session() -> None:
    # Arrange
    open_ = 14 * 3_600_000_000_000
    v = _core.Vwap()
    v.set_day_boundaries(np.array([open_, open_ + DAY], dtype=np.int64))
    # Act
    before = v.update(10.0, 1.0, open_ - 1)
    first = v.update(20.0, 1.0, open_)
    late = v.update(99.0, 1.0, open_ - 5)
    second = v.update(40.0, 1.0, open_ + 60)
    # Assert
    assert (before, first, late, second) == (10.0, 20.0, 20.0, 30.0)


LOOKBACKS: list[tuple[Callable[[], Any], str, dict[str, Any]]] = [
    (lambda: _core.Sma(10), "SMA", {"timeperiod": 10}),
    (lambda: _core.Ema(10), "EMA", {"timeperiod": 10}),
    (lambda: _core.Rsi(14), "RSI", {"timeperiod": 14}),
    (lambda: _core.StdDev(7), "STDDEV", {"timeperiod": 7}),
    (lambda: _core.BBands(20, 2.0), "BBANDS", {"timeperiod": 20}),
    (
        lambda: _core.Macd(12, 26, 9),
        "MACD",
        {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9},
    ),
    (lambda: _core.Atr(14), "ATR", {"timeperiod": 14}),
]


@pytest.mark.parametrize(("make", "name", "params"), LOOKBACKS, ids=[x[1] for x in LOOKBACKS])
def test_warmup_nan_count_equals_talib_lookback(
    make: Callable[[], Any], name: str, params: dict[str, Any]
) -> None:
    # Arrange
    ind = make()
    high, low, close = ohlc(5, 100)
    # Act
    out = ind.update_many(high, low, close) if name == "ATR" else ind.update_many(close)
    first = out[0] if isinstance(out, tuple) else out
    leading_nans = int(np.argmax(~np.isnan(first)))
    # Assert
    expected = abstract.Function(name, **params).lookback
    assert ind.lookback == expected
    assert leading_nans == expected


@pytest.mark.parametrize(("name", "cls", "ref"), SINGLE, ids=[s[0] for s in SINGLE])
def test_constant_prices_match_talib(
    name: str, cls: Callable[[int], Any], ref: Callable[..., Array]
) -> None:
    # Arrange
    x = np.full(100, 42.125)
    # Act
    ours = cls(10).update_many(x)
    # Assert
    assert_matches(ours, ref(x, 10))


def test_constant_prices_give_flat_bands_zero_atr_and_nan_zscore() -> None:
    # Arrange
    x = np.full(60, 7.5)
    # Act
    upper, middle, lower = _core.BBands(20, 2.0).update_many(x)
    atr = _core.Atr(14).update_many(x, x, x)
    z = _core.ZScore(20).update_many(x)
    macd = _core.Macd().update_many(x)
    # Assert
    assert_matches(upper, talib.BBANDS(x, 20, 2.0, 2.0)[0])
    assert_matches(atr, talib.ATR(x, x, x, 14))
    for o, r in zip(macd, talib.MACD(x), strict=True):
        assert_matches(o, r)
    assert upper[-1] == middle[-1] == lower[-1] == 7.5
    assert np.isnan(z).all()


@pytest.mark.parametrize("period", [1, 2, 10])
def test_single_tick_is_nan_unless_the_period_is_one(period: int) -> None:
    # Arrange
    x = np.array([101.5])
    # Act
    sma = _core.Sma(period).update(101.5)
    ema = _core.Ema(period).update(101.5)
    # Assert
    assert_matches(np.array([sma]), talib.SMA(x, timeperiod=period))
    assert_matches(np.array([ema]), talib.EMA(x, timeperiod=period))


MANY: dict[
    str, tuple[Callable[[], Any], Callable[[Any, Array], Any], Callable[[Any, float], Any]]
] = {
    "sma": (lambda: _core.Sma(7), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
    "ema": (lambda: _core.Ema(7), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
    "rsi": (lambda: _core.Rsi(7), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
    "macd": (lambda: _core.Macd(3, 8, 4), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
    "bbands": (
        lambda: _core.BBands(7, 2.0),
        lambda o, x: o.update_many(x),
        lambda o, v: o.update(v),
    ),
    "atr": (
        lambda: _core.Atr(7),
        lambda o, x: o.update_many(x * 1.001, x * 0.999, x),
        lambda o, v: o.update(v * 1.001, v * 0.999, v),
    ),
    "stddev": (lambda: _core.StdDev(7), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
    "zscore": (lambda: _core.ZScore(7), lambda o, x: o.update_many(x), lambda o, v: o.update(v)),
}


@pytest.mark.parametrize("kind", sorted(MANY))
@pytest.mark.parametrize("split", [0, 1, 5, 9, 300])
def test_update_many_equals_repeated_update(kind: str, split: int) -> None:
    # Arrange: a batch that starts after `split` single updates (warm-up crossed in either)
    make, many, one = MANY[kind]
    x = walk(11, 500)
    a, b = make(), make()
    for v in x[:split]:
        one(a, float(v))
    # Act
    batch = many(a, x[split:])
    single = [one(b, float(v)) for v in x][split:]
    # Assert
    np.testing.assert_array_equal(
        np.asarray(batch).T if isinstance(batch, tuple) else batch, np.asarray(single)
    )
    assert a.count == b.count == 500
    np.testing.assert_array_equal(np.asarray(a.value), np.asarray(b.value))
    np.testing.assert_array_equal(
        np.asarray(many(a, x[:50])).T if kind in ("macd", "bbands") else many(a, x[:50]),
        np.asarray([one(b, float(v)) for v in x[:50]]),
    )


def _step(ind: Any, kind: str, x: float, peek: bool) -> Any:
    fn = ind.peek if peek else ind.update
    if kind == "atr":
        return fn(x * 1.001, x * 0.999, x)
    if kind == "vwap":
        return fn(x, 1.0 + x % 3, 1)
    return fn(x)


KINDS: dict[str, Callable[[], Any]] = {
    "sma": lambda: _core.Sma(5),
    "ema": lambda: _core.Ema(5),
    "rsi": lambda: _core.Rsi(5),
    "macd": lambda: _core.Macd(3, 6, 3),
    "bbands": lambda: _core.BBands(5, 2.0),
    "atr": lambda: _core.Atr(5),
    "stddev": lambda: _core.StdDev(5),
    "zscore": lambda: _core.ZScore(5),
    "vwap": lambda: _core.Vwap(),
}

prices = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(prices, st.lists(prices, max_size=3)), min_size=1, max_size=40))
def test_peek_then_update_equals_update(kind: str, steps: list[tuple[float, list[float]]]) -> None:
    # Arrange: one indicator sees provisional (peeked) values before each commit, a twin does not
    revised, plain = KINDS[kind](), KINDS[kind]()
    for committed, provisional in steps:
        # Act
        peeked = [_step(revised, kind, p, peek=True) for p in provisional]
        expected_peek = _step(revised, kind, committed, peek=True)
        got = _step(revised, kind, committed, peek=False)
        want = _step(plain, kind, committed, peek=False)
        # Assert
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        np.testing.assert_array_equal(np.asarray(expected_peek), np.asarray(got))
        assert len(peeked) == len(provisional)


def test_update_many_rejects_wrong_dtype_naming_the_argument() -> None:
    with pytest.raises(TypeError, match=r"'x' must have dtype float64, got float32"):
        _core.Sma(5).update_many(np.ones(10, dtype=np.float32))


def test_update_many_rejects_wrong_shape_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=r"'x' must be 1-D"):
        _core.Ema(5).update_many(np.ones((2, 5)))


def test_update_many_rejects_mismatched_lengths_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=r"'close' has 4 rows, expected 5"):
        _core.Atr(3).update_many(np.ones(5), np.ones(5), np.ones(4))


def test_update_many_rejects_int64_timestamps_of_the_wrong_dtype() -> None:
    with pytest.raises(TypeError, match=r"'ts_event' must have dtype int64"):
        _core.Vwap().update_many(np.ones(3), np.ones(3), np.ones(3))


@pytest.mark.parametrize(
    "make",
    [
        lambda: _core.Sma(0),
        lambda: _core.Rsi(1),
        lambda: _core.StdDev(1),
        lambda: _core.BBands(1, 2.0),
        lambda: _core.Macd(1, 26, 9),
        lambda: _core.Ema(100_001),
    ],
)
def test_periods_outside_talib_ranges_are_rejected(make: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match="must be in"):
        make()
