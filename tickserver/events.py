"""Event batches: immutable, typed, columnar (numpy), timestamped in integer nanoseconds.

Batches, not single events, cross boundaries on the hot path: a source hands the engine one
``TradeBatch`` holding many trades of many symbols; the engine hands the bus ``BarBatch`` and
``SignalBatch`` objects. Every batch carries:

- ``symbol_id``: ids from the process-wide :class:`tickserver.symbols.Symbols` table,
- ``ts_event``: when the event happened, per the source (UTC ns since the epoch),
- ``ts_init``: when tickserver received it (UTC ns),
- ``seq``: the per-source sequence number (``uint64``; gap-free per source), so a consumer
  downstream (Kafka, the store) can prove nothing is missing.

Arrays are never mutated after construction; treat them as read-only.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
I8 = NDArray[np.int8]
U32 = NDArray[np.uint32]
I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]
F64 = NDArray[np.float64]


class Flag(enum.IntFlag):
    """Bits of the ``flags`` column."""

    NONE = 0
    BUY = 1  # aggressor bought (trade at/above the ask)
    SELL = 2  # aggressor sold
    BACKFILL = 4  # filled in from history after a gap, not received live
    SYNTHETIC = 8  # derived from a bar (OHLC ticks), not a real trade
    REPLAY = 16  # read from a file by the replay source
    FLAGGED = 32  # passed validation but looked suspicious (see sources.validation)


def now_ns() -> int:
    """Return the wall clock as UTC nanoseconds since the epoch."""
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class _Columnar:
    """Shared behaviour: length checks, row selection, concatenation."""

    _dtypes: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        n = -1
        for name, dtype in self._dtypes.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.ndim != 1:
                got = (
                    f"{arr.dtype}[{arr.ndim}d]"
                    if isinstance(arr, np.ndarray)
                    else type(arr).__name__
                )
                raise TypeError(
                    f"{type(self).__name__}.{name}: expected 1-D {np.dtype(dtype)}, got {got}"
                )
            if n < 0:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(
                    f"{type(self).__name__}.{name}: length {len(arr)} differs from {n}"
                )

    def __len__(self) -> int:
        first = next(iter(self._dtypes))
        return len(getattr(self, first))

    def _scalars(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self._dtypes}

    def take(self, rows: NDArray[Any]) -> Self:
        """Return the rows selected by an index array or boolean mask."""
        cols = {name: getattr(self, name)[rows] for name in self._dtypes}
        return type(self)(**self._scalars(), **cols)

    @classmethod
    def concat(cls, batches: list[Self]) -> Self:
        """Concatenate batches of the same kind (scalars taken from the first)."""
        if not batches:
            raise ValueError(f"{cls.__name__}.concat needs at least one batch")
        if len(batches) == 1:
            return batches[0]
        cols = {name: np.concatenate([getattr(b, name) for b in batches]) for name in cls._dtypes}
        return cls(**batches[0]._scalars(), **cols)


@dataclass(frozen=True, slots=True)
class TradeBatch(_Columnar):
    """Trades (ticks)."""

    source: str
    symbol_id: U32
    ts_event: I64
    ts_init: I64
    price: F64
    size: F64
    seq: U64
    flags: U8

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "ts_init": np.int64,
        "price": np.float64,
        "size": np.float64,
        "seq": np.uint64,
        "flags": np.uint8,
    }


@dataclass(frozen=True, slots=True)
class QuoteBatch(_Columnar):
    """Top-of-book quotes (best bid/ask with sizes)."""

    source: str
    symbol_id: U32
    ts_event: I64
    ts_init: I64
    bid_px: F64
    bid_sz: F64
    ask_px: F64
    ask_sz: F64
    seq: U64
    flags: U8

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "ts_init": np.int64,
        "bid_px": np.float64,
        "bid_sz": np.float64,
        "ask_px": np.float64,
        "ask_sz": np.float64,
        "seq": np.uint64,
        "flags": np.uint8,
    }


@dataclass(frozen=True, slots=True)
class BookDeltaBatch(_Columnar):
    """L2 deltas: set the level at ``price`` on ``side`` (0 bid, 1 ask) to ``size`` (0 = delete).

    ``seq`` here is the per-symbol *book* sequence (gap detection in the book), which is what
    an exchange's incremental feed carries.
    """

    source: str
    symbol_id: U32
    ts_event: I64
    ts_init: I64
    side: U8
    price: F64
    size: F64
    seq: U64
    flags: U8

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "ts_init": np.int64,
        "side": np.uint8,
        "price": np.float64,
        "size": np.float64,
        "seq": np.uint64,
        "flags": np.uint8,
    }


@dataclass(frozen=True, slots=True)
class BarBatch(_Columnar):
    """Bars of one interval. ``ts_event`` is the bar's open time; it covers
    ``[ts_event, ts_event + interval)``. ``final`` is False for a forming-bar update."""

    interval: str
    final: bool
    symbol_id: U32
    ts_event: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    vwap: F64
    trades: U64

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "open": np.float64,
        "high": np.float64,
        "low": np.float64,
        "close": np.float64,
        "volume": np.float64,
        "vwap": np.float64,
        "trades": np.uint64,
    }


@dataclass(frozen=True, slots=True)
class SignalBatch(_Columnar):
    """Trading-signal firings. ``rule_id`` indexes ``rules`` (the engine's rule names);
    ``direction`` is +1 (bullish) or -1 (bearish); ``value`` is the indicator value that fired."""

    rules: tuple[str, ...]
    symbol_id: U32
    ts_event: I64
    rule_id: NDArray[np.uint16]
    direction: I8
    value: F64

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "rule_id": np.uint16,
        "direction": np.int8,
        "value": np.float64,
    }


@dataclass(frozen=True, slots=True)
class IndicatorBatch(_Columnar):
    """Indicator values of one interval at bar close (or forming, when ``final`` is False).
    ``output_id`` indexes ``outputs`` (the indicator output names of that interval)."""

    interval: str
    final: bool
    outputs: tuple[str, ...]
    symbol_id: U32
    ts_event: I64
    output_id: NDArray[np.uint16]
    value: F64

    _dtypes: ClassVar[dict[str, Any]] = {
        "symbol_id": np.uint32,
        "ts_event": np.int64,
        "output_id": np.uint16,
        "value": np.float64,
    }


def trades_from_columns(
    source: str,
    symbol_id: Any,
    ts_event: Any,
    price: Any,
    size: Any,
    seq: Any,
    *,
    flags: Any = 0,
    ts_init: int | Any | None = None,
) -> TradeBatch:
    """Build a TradeBatch from array-likes, casting to the canonical dtypes."""
    n = len(price)
    ts = now_ns() if ts_init is None else ts_init
    return TradeBatch(
        source=source,
        symbol_id=np.ascontiguousarray(symbol_id, dtype=np.uint32),
        ts_event=np.ascontiguousarray(ts_event, dtype=np.int64),
        ts_init=np.ascontiguousarray(np.broadcast_to(np.asarray(ts, dtype=np.int64), (n,))),
        price=np.ascontiguousarray(price, dtype=np.float64),
        size=np.ascontiguousarray(size, dtype=np.float64),
        seq=np.ascontiguousarray(seq, dtype=np.uint64),
        flags=np.ascontiguousarray(np.broadcast_to(np.asarray(flags, dtype=np.uint8), (n,))),
    )


def quotes_from_columns(
    source: str,
    symbol_id: Any,
    ts_event: Any,
    bid_px: Any,
    bid_sz: Any,
    ask_px: Any,
    ask_sz: Any,
    seq: Any,
    *,
    flags: Any = 0,
    ts_init: int | Any | None = None,
) -> QuoteBatch:
    """Build a QuoteBatch from array-likes, casting to the canonical dtypes."""
    n = len(bid_px)
    ts = now_ns() if ts_init is None else ts_init
    return QuoteBatch(
        source=source,
        symbol_id=np.ascontiguousarray(symbol_id, dtype=np.uint32),
        ts_event=np.ascontiguousarray(ts_event, dtype=np.int64),
        ts_init=np.ascontiguousarray(np.broadcast_to(np.asarray(ts, dtype=np.int64), (n,))),
        bid_px=np.ascontiguousarray(bid_px, dtype=np.float64),
        bid_sz=np.ascontiguousarray(bid_sz, dtype=np.float64),
        ask_px=np.ascontiguousarray(ask_px, dtype=np.float64),
        ask_sz=np.ascontiguousarray(ask_sz, dtype=np.float64),
        seq=np.ascontiguousarray(seq, dtype=np.uint64),
        flags=np.ascontiguousarray(np.broadcast_to(np.asarray(flags, dtype=np.uint8), (n,))),
    )


def bars_to_trades(
    source: str,
    symbol_id: int,
    ts_open: I64,
    interval_ns: int,
    open_: F64,
    high: F64,
    low: F64,
    close: F64,
    volume: F64,
    first_seq: int,
    *,
    flags: int = Flag.SYNTHETIC,
) -> TradeBatch:
    """Turn OHLCV bars into four synthetic trades each (O, H, L, C; the order of H and L
    follows the bar's direction), so bars of that interval or longer rebuild exactly.

    Volume is split evenly over the four trades; trade counts and VWAP of rebuilt bars are
    approximations, and the trades carry ``Flag.SYNTHETIC``.
    """
    n = len(ts_open)
    step = interval_ns // 4
    up = close >= open_
    mid1 = np.where(up, low, high)
    mid2 = np.where(up, high, low)
    price = np.column_stack([open_, mid1, mid2, close]).ravel()
    ts = (ts_open[:, None] + np.arange(4, dtype=np.int64)[None, :] * step).ravel()
    size = np.repeat(volume / 4.0, 4)
    return trades_from_columns(
        source,
        np.full(4 * n, symbol_id, dtype=np.uint32),
        ts,
        price,
        size,
        np.arange(first_seq, first_seq + 4 * n, dtype=np.uint64),
        flags=flags,
    )
