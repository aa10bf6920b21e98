"""Validation at the source boundary: each check, its policy and its counter."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickserver.benchmarks.validation import make_batch, reference_trades
from tickserver.config import ValidationConfig
from tickserver.events import BookDeltaBatch, Flag, quotes_from_columns, trades_from_columns
from tickserver.metrics import Metrics
from tickserver.sources.validation import Validator


def trades(sym: list[int], ts: list[int], px: list[float], sz: list[float] | None = None):  # type: ignore[no-untyped-def]
    n = len(ts)
    return trades_from_columns("t", sym, ts, px, sz if sz is not None else [1.0] * n, np.arange(n))


def test_non_finite_zero_and_negative_prices_are_rejected_and_counted() -> None:
    # Arrange
    v = Validator("t")
    b = trades([0] * 5, [1, 2, 3, 4, 5], [100.0, np.nan, 0.0, -1.0, np.inf])
    # Act
    out = v.trades(b)
    # Assert
    assert out.price.tolist() == [100.0]
    assert v.counts[("trade", "bad_price", "reject")] == 4


def test_negative_and_nan_sizes_are_rejected_zero_size_passes() -> None:
    v = Validator("t")
    out = v.trades(trades([0] * 3, [1, 2, 3], [10.0, 10.0, 10.0], [-1.0, np.nan, 0.0]))
    assert out.ts_event.tolist() == [3]
    assert v.counts[("trade", "bad_size", "reject")] == 2


def test_out_of_order_trades_are_dropped_per_symbol_across_batches() -> None:
    # Arrange
    v = Validator("t")
    v.trades(trades([0, 1], [100, 50], [10.0, 20.0]))
    # Act: symbol 0 goes back in time, symbol 1 does not
    out = v.trades(trades([0, 1, 0], [99, 60, 101], [10.0, 20.0, 10.1]))
    # Assert
    assert out.ts_event.tolist() == [60, 101]
    assert v.counts[("trade", "out_of_order", "drop")] == 1


def test_out_of_order_inside_a_batch_uses_the_newest_seen_so_far() -> None:
    v = Validator("t")
    out = v.trades(trades([0] * 5, [1, 5, 3, 4, 6], [10.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert out.ts_event.tolist() == [1, 5, 6]


def test_out_of_order_pass_policy_lets_the_core_count_late_trades() -> None:
    v = Validator("t", ValidationConfig(out_of_order="pass"))
    out = v.trades(trades([0] * 3, [5, 3, 6], [10.0] * 3, [1.0, 2.0, 3.0]))
    assert out.ts_event.tolist() == [5, 3, 6]


def test_exact_duplicates_are_dropped_but_same_time_different_trade_passes() -> None:
    # Arrange
    v = Validator("t")
    v.trades(trades([0], [10], [10.0], [5.0]))
    # Act: a resend of the last trade, then a different trade at the same ns
    out = v.trades(trades([0, 0, 0], [10, 10, 10], [10.0, 10.0, 10.01], [5.0, 5.0, 5.0]))
    # Assert
    assert out.price.tolist() == [10.01]
    assert v.counts[("trade", "duplicate", "drop")] == 2


def test_timestamps_a_few_ns_apart_are_not_duplicates() -> None:
    # float64 cannot tell these apart; the check must compare int64
    v = Validator("t")
    base = 1_795_534_220_000_000_000
    out = v.trades(trades([0, 0], [base, base + 7], [10.0, 10.0], [1.0, 1.0]))
    assert len(out) == 2


def test_isolated_bad_print_outside_the_band_is_rejected() -> None:
    # Arrange: a 100x unit slip in the middle of a calm series
    v = Validator("t", ValidationConfig(max_jump_pct=10))
    # Act
    out = v.trades(trades([0] * 4, [1, 2, 3, 4], [100.0, 10_000.0, 100.1, 100.2]))
    # Assert
    assert out.price.tolist() == [100.0, 100.1, 100.2]
    assert v.counts[("trade", "jump", "reject")] == 1


def test_genuine_jump_is_confirmed_by_consecutive_ticks_at_the_new_level() -> None:
    # Arrange
    v = Validator("t", ValidationConfig(max_jump_pct=10, jump_confirm=3))
    v.trades(trades([0], [1], [100.0]))
    # Act: the price gaps to 130 and stays there
    out = v.trades(trades([0] * 4, [2, 3, 4, 5], [130.0, 130.5, 129.8, 130.2]))
    # Assert: two suspects rejected, the third confirms, later ticks compare to 129.8
    assert out.price.tolist() == [129.8, 130.2]
    assert v.counts[("trade", "jump", "reject")] == 2


def test_after_a_steady_trend_a_bad_print_is_judged_against_the_latest_price() -> None:
    # Arrange: a bad print, then a calm climb from 100 to 130, then a print back at 99
    v = Validator("t", ValidationConfig(max_jump_pct=10))
    climb = [100.0 + k for k in range(31)]
    prices = [100.0, 300.0, *climb[1:], 99.0]
    n = len(prices)
    # Act
    out = v.trades(trades(list(np.zeros(n, int)), list(range(1, n + 1)), prices))
    # Assert: 300 and 99 are >10 % away from the price before them; the climb is not
    assert out.price.tolist() == [100.0, *climb[1:]]
    assert v.counts[("trade", "jump", "reject")] == 2


def test_flag_policy_keeps_suspects_with_the_flagged_bit() -> None:
    v = Validator("t", ValidationConfig(max_jump_pct=10, jump_policy="flag"))
    out = v.trades(trades([0] * 3, [1, 2, 3], [100.0, 150.0, 100.5]))
    assert out.price.tolist() == [100.0, 150.0, 100.5]
    assert (out.flags & Flag.FLAGGED).tolist() == [0, Flag.FLAGGED, 0]
    assert v.counts[("trade", "jump", "flag")] == 1


def test_old_reference_does_not_constrain_an_opening_gap() -> None:
    # Arrange: yesterday's last price, then the open 30 % lower after the reference went stale
    v = Validator("t", ValidationConfig(max_jump_pct=10, jump_reference_max_age_s=900))
    v.trades(trades([0], [0], [100.0]))
    # Act
    out = v.trades(trades([0], [16 * 3600 * 10**9], [70.0]))
    # Assert
    assert out.price.tolist() == [70.0]


def test_symbols_are_checked_independently_in_one_batch() -> None:
    v = Validator("t", ValidationConfig(max_jump_pct=10))
    out = v.trades(trades([0, 1, 0, 1], [1, 1, 2, 2], [100.0, 500.0, 101.0, 9.0]))
    assert out.symbol_id.tolist() == [0, 1, 0]
    assert v.counts[("trade", "jump", "reject")] == 1


def test_crossed_quotes_and_bad_sides_are_rejected_empty_side_passes() -> None:
    # Arrange
    v = Validator("t")
    q = quotes_from_columns(
        "t",
        [0, 0, 0, 0],
        [1, 2, 3, 4],
        [10.0, 10.2, np.nan, -1.0],
        [1.0, 1.0, 0.0, 1.0],
        [10.1, 10.1, 10.3, 10.4],
        [1.0, 1.0, 1.0, 1.0],
        np.arange(4),
    )
    # Act
    out = v.quotes(q)
    # Assert: crossed (10.2 > 10.1) and negative bid rejected; one-sided quote kept
    assert out.ts_event.tolist() == [1, 3]
    assert v.counts[("quote", "crossed", "reject")] == 1
    assert v.counts[("quote", "bad_price", "reject")] == 1


def test_book_deltas_with_bad_price_size_or_side_are_rejected() -> None:
    v = Validator("t")
    n = 4
    b = BookDeltaBatch(
        source="t",
        symbol_id=np.zeros(n, np.uint32),
        ts_event=np.arange(n, dtype=np.int64),
        ts_init=np.arange(n, dtype=np.int64),
        side=np.array([0, 1, 2, 0], np.uint8),
        price=np.array([10.0, 10.1, 10.2, np.nan]),
        size=np.array([0.0, -1.0, 1.0, 1.0]),
        seq=np.arange(n, dtype=np.uint64),
        flags=np.zeros(n, np.uint8),
    )
    out = v.book(b)
    assert out.price.tolist() == [10.0]  # size 0 = delete the level: valid
    assert sum(v.counts.values()) == 3


def test_decisions_reach_the_metrics_counter() -> None:
    m = Metrics()
    c = m.counter("v_total", "x", ["source", "type", "check", "action"])
    v = Validator("yf", counter=c)
    v.trades(trades([0, 0], [2, 1], [10.0, -1.0]))
    text = m.render()
    assert (
        'tickserver_v_total{source="yf",type="trade",check="bad_price",action="reject"} 1' in text
    )


@pytest.mark.parametrize("n", [1, 1000])
def test_clean_batches_pass_unchanged(n: int) -> None:
    rng = np.random.default_rng(0)
    v = Validator("t")
    sym = rng.integers(0, 8, n)
    ts = np.arange(n) * 1000 + 1
    px = 100 + np.cumsum(rng.normal(0, 0.01, n))
    b = trades(sym.tolist(), ts.tolist(), px.tolist())
    out = v.trades(b)
    assert len(out) == n
    assert sum(v.counts.values()) == 0


# ----------------------------------------------------------------------------- differential


rows = st.lists(
    st.tuples(
        st.integers(0, 2),  # symbol
        st.integers(0, 30),  # ts (small range: ties, resends and late rows)
        st.sampled_from([100.0, 100.5, 101.0, 130.0, 131.0, 300.0, -1.0, float("nan")]),
        st.sampled_from([1.0, 2.0, 0.0, -1.0]),
    ),
    min_size=1,
    max_size=60,
)
configs = st.builds(
    ValidationConfig,
    max_jump_pct=st.sampled_from([10.0, 25.0]),
    jump_policy=st.sampled_from(["reject", "flag", "off"]),
    jump_confirm=st.integers(1, 3),
    jump_reference_max_age_s=st.sampled_from([1e-8, 900.0]),
    out_of_order=st.sampled_from(["drop", "pass"]),
    duplicates=st.sampled_from(["drop", "pass"]),
)


@settings(max_examples=150, deadline=None)
@given(data=rows, cfg=configs, cuts=st.lists(st.integers(1, 59), max_size=4))
def test_vectorised_checks_equal_the_per_row_reference(
    data: list[tuple[int, int, float, float]], cfg: ValidationConfig, cuts: list[int]
) -> None:
    # Arrange: the same rows, split into batches at random points
    sym, ts, px, sz = (np.array(c) for c in zip(*data, strict=True))
    n = len(sym)
    v = Validator("t", cfg)
    state: dict[int, Any] = {}
    bounds = [0, *sorted({c for c in cuts if c < n}), n]
    kept, flagged, ref_kept, ref_flagged = [], [], [], []
    # Act
    for a, b in itertools.pairwise(bounds):
        out = v.trades(
            trades_from_columns("t", sym[a:b], ts[a:b], px[a:b], sz[a:b], np.arange(a, b))
        )
        kept += out.seq.tolist()
        flagged += out.seq[(out.flags & Flag.FLAGGED) > 0].tolist()
        k, f = reference_trades(cfg, sym[a:b], ts[a:b], px[a:b], sz[a:b], state)
        ref_kept += [a + i for i, x in enumerate(k) if x]
        ref_flagged += [a + i for i, x in enumerate(f) if x and k[i]]
    # Assert
    assert kept == ref_kept
    assert flagged == ref_flagged


def test_benchmark_batches_agree_with_the_reference() -> None:
    cfg = ValidationConfig()
    b = make_batch(5_000, seed=3)
    out = Validator("t", cfg).trades(
        trades_from_columns("t", b["sym"], b["ts"], b["px"], b["sz"], np.arange(5_000))
    )
    keep, _ = reference_trades(cfg, b["sym"], b["ts"], b["px"], b["sz"])
    assert out.seq.tolist() == np.flatnonzero(keep).tolist()
    assert len(out) < 5_000  # the batch does contain bad rows


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[int], list[int], list[float], list[float]]:
    """Mostly clean streams (time strictly increasing, small moves) with rare faults, so
    the no-grouping fast path, the calm stretches and the per-row pass all run."""
    n = draw(st.integers(1, 400))
    sym = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
    moves = draw(st.lists(st.sampled_from([0.0, 0.1, -0.1, 0.2]), min_size=n, max_size=n))
    faults = draw(st.lists(st.integers(0, n - 1), max_size=6))
    ts = np.cumsum(steps).tolist()
    px = (100.0 + np.cumsum(moves)).tolist()
    sz = [1.0] * n
    for k, i in enumerate(faults):
        if k % 3 == 0:
            px[i] *= 3.0  # a bad print (or, repeated, a new level)
        elif k % 3 == 1 and i > 0:
            ts[i] = ts[i - 1] - 1  # late
        elif i > 0:
            sym[i], ts[i], px[i], sz[i] = sym[i - 1], ts[i - 1], px[i - 1], sz[i - 1]  # resend
    return sym, ts, px, sz


# Big examples generate slowly on a busy machine: that is not a failure of the code.
SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]


@settings(max_examples=100, deadline=None, suppress_health_check=SLOW_DATA)
@given(stream=streams(), cfg=configs, cuts=st.lists(st.integers(1, 399), max_size=5))
def test_fast_paths_agree_with_the_per_row_reference_on_mostly_clean_streams(
    stream: tuple[list[int], list[int], list[float], list[float]],
    cfg: ValidationConfig,
    cuts: list[int],
) -> None:
    sym, ts, px, sz = (np.array(c) for c in stream)
    n = len(sym)
    v = Validator("t", cfg)
    state: dict[int, Any] = {}
    bounds = [0, *sorted({c for c in cuts if c < n}), n]
    kept: list[int] = []
    ref_kept: list[int] = []
    for a, b in itertools.pairwise(bounds):
        out = v.trades(
            trades_from_columns("t", sym[a:b], ts[a:b], px[a:b], sz[a:b], np.arange(a, b))
        )
        kept += out.seq.tolist()
        k, _ = reference_trades(cfg, sym[a:b], ts[a:b], px[a:b], sz[a:b], state)
        ref_kept += [a + i for i, x in enumerate(k) if x]
    assert kept == ref_kept


@settings(max_examples=100, deadline=None, suppress_health_check=SLOW_DATA)
@given(stream=streams(), cfg=configs)
def test_one_row_batches_agree_with_the_per_row_reference(
    stream: tuple[list[int], list[int], list[float], list[float]], cfg: ValidationConfig
) -> None:
    # Live sources publish one message at a time: the row-by-row path
    sym, ts, px, sz = (np.array(c) for c in stream)
    v = Validator("t", cfg)
    kept = [
        i
        for i in range(len(sym))
        if len(
            v.trades(
                trades_from_columns(
                    "t", sym[i : i + 1], ts[i : i + 1], px[i : i + 1], sz[i : i + 1], [i]
                )
            )
        )
    ]
    keep, _ = reference_trades(cfg, sym, ts, px, sz)
    assert kept == np.flatnonzero(keep).tolist()
