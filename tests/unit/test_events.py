"""Event batches: dtype and length checks, selection, concatenation, bars to trades."""

from __future__ import annotations

import numpy as np
import pytest

from tickserver.events import Flag, TradeBatch, bars_to_trades, trades_from_columns


def _trades(n: int) -> TradeBatch:
    return trades_from_columns(
        "t", np.zeros(n), np.arange(n), np.full(n, 10.0), np.ones(n), np.arange(1, n + 1)
    )


def test_batch_rejects_wrong_dtype_naming_the_column() -> None:
    with pytest.raises(TypeError, match=r"TradeBatch\.price: expected 1-D float64"):
        TradeBatch(
            source="t",
            symbol_id=np.zeros(1, np.uint32),
            ts_event=np.zeros(1, np.int64),
            ts_init=np.zeros(1, np.int64),
            price=np.zeros(1, np.float32),
            size=np.zeros(1),
            seq=np.zeros(1, np.uint64),
            flags=np.zeros(1, np.uint8),
        )


def test_batch_rejects_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="length 2 differs from 1"):
        TradeBatch(
            source="t",
            symbol_id=np.zeros(1, np.uint32),
            ts_event=np.zeros(2, np.int64),
            ts_init=np.zeros(1, np.int64),
            price=np.zeros(1),
            size=np.zeros(1),
            seq=np.zeros(1, np.uint64),
            flags=np.zeros(1, np.uint8),
        )


def test_take_and_concat_keep_rows_and_scalars() -> None:
    # Arrange
    a, b = _trades(3), _trades(2)
    # Act
    both = TradeBatch.concat([a, b])
    picked = both.take(np.array([0, 4]))
    # Assert
    assert len(both) == 5
    assert both.source == "t"
    assert picked.seq.tolist() == [1, 2]


def test_bars_to_trades_rebuilds_ohlcv_in_order() -> None:
    # Arrange: one up bar, one down bar
    ts = np.array([0, 60_000_000_000], dtype=np.int64)
    o, hi, lo, c = (
        np.array(x, dtype=float) for x in ([10, 12], [11, 12.5], [9.5, 10], [10.5, 10.2])
    )
    v = np.array([400.0, 800.0])
    # Act
    t = bars_to_trades("s", 3, ts, 60_000_000_000, o, hi, lo, c, v, first_seq=7)
    # Assert
    assert t.price.tolist() == [10, 9.5, 11, 10.5, 12, 12.5, 10, 10.2]
    assert np.all(np.diff(t.ts_event) > 0)
    assert t.size.reshape(2, 4).sum(axis=1).tolist() == [400.0, 800.0]
    assert t.seq.tolist() == list(range(7, 15))
    assert np.all(t.flags == Flag.SYNTHETIC)
    assert np.all(t.symbol_id == 3)
