"""
tickserver's C++ core: symbol registry, ring buffers, L2 books, bars, indicators, signals.
"""

from collections.abc import Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


class SymbolRegistry:
    """Map symbol strings to dense integer ids (0, 1, 2, ...) and back."""

    def __init__(self) -> None: ...

    def intern(self, name: str) -> int:
        """Return the id of ``name``, adding it if it is new."""

    def lookup(self, name: str) -> int | None:
        """Return the id of ``name``, or None if it is not registered."""

    def name(self, id: int) -> str:
        """Return the symbol string of ``id``."""

    def names(self) -> list[str]:
        """Return all symbols, indexed by id."""

    def __len__(self) -> int: ...

    def __contains__(self, arg: str, /) -> bool: ...

class BookError(ValueError):
    pass

def book_status_name(code: int) -> str:
    """Describe a book status code (as returned in rejected-row reasons)."""

class OrderBook:
    """
    An L2 order book for one instrument.

    Prices are kept on the tick grid: a price must be a positive multiple of
    ``tick_size`` (within floating-point noise). A locked result (bid == ask) is
    rejected as crossed. ``seq`` 0 means unsequenced. Raise ValueError for a
    ``tick_size`` that is not finite and positive.
    """

    def __init__(self, tick_size: float = 0.0001) -> None: ...

    def apply(self, side: int, price: float, size: float, seq: int = 0) -> int:
        """
        Set the level at ``price`` on ``side`` (0 bid, 1 ask) to ``size``; size 0 deletes it.

        Return 0, or 1 when the sequence number skipped ahead (applied, gap counted). Raise
        BookError, leaving the book unchanged, for a crossed result, a bad price or size,
        an off-tick price, a stale sequence number or a delete of an absent level.
        """

    def apply_deltas(self, side: Annotated[NDArray, dict(device='cpu', writable=False)], price: Annotated[NDArray, dict(device='cpu', writable=False)], size: Annotated[NDArray, dict(device='cpu', writable=False)], seq: Annotated[NDArray, dict(device='cpu', writable=False)], checked: bool = True) -> tuple[Annotated[NDArray[numpy.int64], dict(shape=(None,))], Annotated[NDArray[numpy.uint8], dict(shape=(None,))]]:
        """
        Apply many deltas with the GIL released.

        With ``checked`` each row is validated like ``apply``. Return ``(rejected_rows,
        reasons)``: indices of the rows that were rejected (the book is unchanged by them)
        and their status codes (see ``book_status_name``); the other rows are applied in
        order. ``checked=False`` skips validation and the cross check (for pre-validated
        data: garbage makes a meaningless book) and returns empty arrays. Raise TypeError
        or ValueError naming the argument for a wrong dtype, shape or length, and
        RuntimeError if another thread is applying a batch to this book.
        """

    def snapshot(self, bid_px: Annotated[NDArray, dict(device='cpu', writable=False)], bid_sz: Annotated[NDArray, dict(device='cpu', writable=False)], ask_px: Annotated[NDArray, dict(device='cpu', writable=False)], ask_sz: Annotated[NDArray, dict(device='cpu', writable=False)], seq: int = 0) -> None:
        """
        Replace the whole book, levels in any order (all-or-nothing: BookError leaves it
        unchanged). Zero-size levels are skipped; a price listed twice on a side, a crossed
        or locked result, a bad or off-tick price, a bad size or a stale ``seq`` raise.
        """

    def top(self, depth: int = 10) -> tuple[Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))]]:
        """
        Return ``(bid_px, bid_sz, ask_px, ask_sz)`` of the best ``depth`` levels, best first.
        """

    def clear(self) -> None:
        """
        Remove every level (``last_seq``, ``gaps`` and ``snapshots`` are kept).
        """

    @property
    def tick_size(self) -> float: ...

    @property
    def last_seq(self) -> int: ...

    @property
    def gaps(self) -> int: ...

    @property
    def snapshots(self) -> int: ...

    @property
    def best_bid_px(self) -> float: ...

    @property
    def best_bid_sz(self) -> float: ...

    @property
    def best_ask_px(self) -> float: ...

    @property
    def best_ask_sz(self) -> float: ...

    @property
    def mid(self) -> float: ...

    @property
    def spread(self) -> float: ...

    @property
    def microprice(self) -> float: ...

    @property
    def imbalance(self) -> float: ...

    @property
    def bid_depth(self) -> int: ...

    @property
    def ask_depth(self) -> int: ...

class Sma:
    """Simple moving average, equal to TA-Lib's SMA."""

    def __init__(self, period: int) -> None: ...

    def update(self, x: float) -> float:
        """Commit one input and return the output (NaN during warm-up)."""

    def peek(self, x: float) -> float:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Commit every input in order (GIL released); return the outputs, one per input.
        """

    @property
    def value(self) -> float:
        """The last committed output (NaN during warm-up)."""

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int:
        """Number of leading NaN outputs (TA-Lib's lookback)."""

    @property
    def count(self) -> int:
        """Inputs committed so far."""

    def reset(self) -> None:
        """Forget every input."""

class Ema:
    """
    Exponential moving average seeded by the SMA of the first ``period`` inputs, equal to TA-Lib's EMA.
    """

    def __init__(self, period: int) -> None: ...

    def update(self, x: float) -> float:
        """Commit one input and return the output (NaN during warm-up)."""

    def peek(self, x: float) -> float:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Commit every input in order (GIL released); return the outputs, one per input.
        """

    @property
    def value(self) -> float:
        """The last committed output (NaN during warm-up)."""

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int:
        """Number of leading NaN outputs (TA-Lib's lookback)."""

    @property
    def count(self) -> int:
        """Inputs committed so far."""

    def reset(self) -> None:
        """Forget every input."""

class Rsi:
    """Relative strength index (Wilder), equal to TA-Lib's RSI."""

    def __init__(self, period: int) -> None: ...

    def update(self, x: float) -> float:
        """Commit one input and return the output (NaN during warm-up)."""

    def peek(self, x: float) -> float:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Commit every input in order (GIL released); return the outputs, one per input.
        """

    @property
    def value(self) -> float:
        """The last committed output (NaN during warm-up)."""

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int:
        """Number of leading NaN outputs (TA-Lib's lookback)."""

    @property
    def count(self) -> int:
        """Inputs committed so far."""

    def reset(self) -> None:
        """Forget every input."""

class StdDev:
    """
    Rolling population standard deviation, equal to TA-Lib's STDDEV (nbdev 1).
    """

    def __init__(self, period: int) -> None: ...

    def update(self, x: float) -> float:
        """Commit one input and return the output (NaN during warm-up)."""

    def peek(self, x: float) -> float:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Commit every input in order (GIL released); return the outputs, one per input.
        """

    @property
    def value(self) -> float:
        """The last committed output (NaN during warm-up)."""

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int:
        """Number of leading NaN outputs (TA-Lib's lookback)."""

    @property
    def count(self) -> int:
        """Inputs committed so far."""

    def reset(self) -> None:
        """Forget every input."""

class ZScore:
    """
    Rolling z-score (x - SMA) / STDDEV over ``period`` inputs; NaN when the window is flat.
    """

    def __init__(self, period: int) -> None: ...

    def update(self, x: float) -> float:
        """Commit one input and return the output (NaN during warm-up)."""

    def peek(self, x: float) -> float:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Commit every input in order (GIL released); return the outputs, one per input.
        """

    @property
    def value(self) -> float:
        """The last committed output (NaN during warm-up)."""

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int:
        """Number of leading NaN outputs (TA-Lib's lookback)."""

    @property
    def count(self) -> int:
        """Inputs committed so far."""

    def reset(self) -> None:
        """Forget every input."""

class Macd:
    """MACD line, signal and histogram, equal to TA-Lib's MACD."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None: ...

    def update(self, x: float) -> tuple[float, float, float]:
        """Commit one input; return ``(macd, signal, hist)``."""

    def peek(self, x: float) -> tuple[float, float, float]:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> tuple[Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))]]:
        """
        Commit every input (GIL released); return ``(macd, signal, hist)`` arrays.
        """

    @property
    def value(self) -> tuple[float, float, float]: ...

    @property
    def fast(self) -> int: ...

    @property
    def slow(self) -> int: ...

    @property
    def signal(self) -> int: ...

    @property
    def lookback(self) -> int: ...

    @property
    def count(self) -> int: ...

    def reset(self) -> None: ...

class BBands:
    """
    Bollinger bands around the SMA at ``k`` population standard deviations, equal to TA-Lib's BBANDS.
    """

    def __init__(self, period: int = 20, k: float = 2.0) -> None: ...

    def update(self, x: float) -> tuple[float, float, float]:
        """Commit one input; return ``(upper, middle, lower)``."""

    def peek(self, x: float) -> tuple[float, float, float]:
        """Return what ``update(x)`` would return, without changing state."""

    def update_many(self, x: Annotated[NDArray, dict(device='cpu', writable=False)]) -> tuple[Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))]]:
        """
        Commit every input (GIL released); return ``(upper, middle, lower)`` arrays.
        """

    @property
    def value(self) -> tuple[float, float, float]: ...

    @property
    def period(self) -> int: ...

    @property
    def k(self) -> float: ...

    @property
    def lookback(self) -> int: ...

    @property
    def count(self) -> int: ...

    def reset(self) -> None: ...

class Atr:
    """Average true range (Wilder), equal to TA-Lib's ATR."""

    def __init__(self, period: int = 14) -> None: ...

    def update(self, high: float, low: float, close: float) -> float:
        """Commit one bar; return the ATR (NaN during warm-up)."""

    def peek(self, high: float, low: float, close: float) -> float:
        """
        Return what ``update(high, low, close)`` would return, without changing state.
        """

    def update_many(self, high: Annotated[NDArray, dict(device='cpu', writable=False)], low: Annotated[NDArray, dict(device='cpu', writable=False)], close: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """Commit every bar (GIL released); return the outputs."""

    @property
    def value(self) -> float: ...

    @property
    def period(self) -> int: ...

    @property
    def lookback(self) -> int: ...

    @property
    def count(self) -> int: ...

    def reset(self) -> None: ...

class Vwap:
    """
    Session VWAP: sum(price*size)/sum(size) since the session start (UTC midnight unless ``set_day_boundaries``). Trades stamped before the current session are ignored.
    """

    def __init__(self) -> None: ...

    def update(self, price: float, size: float, ts_event: int) -> float:
        """
        Commit one trade; return the session VWAP (NaN until the session has volume).
        """

    def peek(self, price: float, size: float, ts_event: int) -> float:
        """Return what ``update`` would return, without changing state."""

    def update_many(self, price: Annotated[NDArray, dict(device='cpu', writable=False)], size: Annotated[NDArray, dict(device='cpu', writable=False)], ts_event: Annotated[NDArray, dict(device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """Commit every trade (GIL released); return the outputs."""

    def set_day_boundaries(self, starts: Annotated[NDArray, dict(device='cpu', writable=False)]) -> None:
        """
        Start sessions at these times (UTC ns, strictly increasing) instead of UTC midnight.
        """

    @property
    def value(self) -> float: ...

    @property
    def lookback(self) -> int: ...

    def reset(self) -> None: ...

def reject_reason_name(code: int) -> str:
    """Describe a trade reject code (``IngestResult.reject_reason``)."""

def book_reject_reason_name(code: int) -> str:
    """
    Describe a ``BookResult.reasons`` code: a book status code, or 255 for an unknown symbol.
    """

class IndicatorSpec:
    """One indicator of an Engine."""

    def __init__(self, name: str, kind: str, interval: int, period: int = 14, fast: int = 12, slow: int = 26, signal: int = 9, k: float = 2.0) -> None:
        """
        ``kind``: sma, ema, rsi, macd, bbands, atr, vwap, stddev or zscore; ``interval`` in ns (0 = every trade).
        """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def interval(self) -> int: ...

    @property
    def period(self) -> int: ...

    @property
    def fast(self) -> int: ...

    @property
    def slow(self) -> int: ...

    @property
    def signal(self) -> int: ...

    @property
    def k(self) -> float: ...

    def __repr__(self) -> str: ...

class RuleSpec:
    """One signal rule of an Engine."""

    def __init__(self, name: str, kind: str, interval: int, a: str = '', b: str = '', above: float = float('nan'), below: float = float('nan')) -> None:
        """
        ``kind``: crossover (outputs a, b), threshold (output a; levels above/below) or breakout (a = a bbands indicator). Outputs are indicator output names of the same interval, or 'close'.
        """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def interval(self) -> int: ...

    @property
    def a(self) -> str: ...

    @property
    def b(self) -> str: ...

    @property
    def above(self) -> float: ...

    @property
    def below(self) -> float: ...

    def __repr__(self) -> str: ...

class IngestResult:
    """
    What one ingest call produced. Array properties are read-only views into memory owned by this object.
    """

    @property
    def rejected(self) -> Annotated[NDArray[numpy.int64], dict(shape=(None,), writable=False)]:
        """Indices of rejected rows (int64)."""

    @property
    def reject_reason(self) -> Annotated[NDArray[numpy.uint8], dict(shape=(None,), writable=False)]:
        """Reject codes of those rows (uint8, see ``reject_reason_name``)."""

    @property
    def late(self) -> int:
        """
        Trades older than the forming bar of at least one interval (kept in the ring and tick indicators, never in a bar).
        """

    @property
    def bars(self) -> dict[str, NDArray]:
        """
        Closed bars: interval, symbol_id, ts_event (bar open), open, high, low, close, volume, vwap, trades.
        """

    @property
    def signals(self) -> dict[str, NDArray]:
        """Signals: rule_id, symbol_id, ts_event, direction, value."""

    @property
    def indicators(self) -> dict[str, NDArray]:
        """
        Indicator values at bar close: interval, symbol_id, ts_event (bar open), output_id (index into Engine.indicator_names(interval)), value.
        """

    @property
    def n_bars(self) -> int: ...

    @property
    def n_signals(self) -> int: ...

    @property
    def n_indicators(self) -> int: ...

    @property
    def n_rejected(self) -> int: ...

    def __repr__(self) -> str: ...

class BookResult:
    """What one book call produced (read-only views)."""

    @property
    def rejected(self) -> Annotated[NDArray[numpy.int64], dict(shape=(None,), writable=False)]:
        """Indices of rejected rows (int64); the book is unchanged by them."""

    @property
    def reasons(self) -> Annotated[NDArray[numpy.uint8], dict(shape=(None,), writable=False)]:
        """Their codes (uint8, see ``book_reject_reason_name``)."""

    @property
    def changed(self) -> Annotated[NDArray[numpy.uint32], dict(shape=(None,), writable=False)]:
        """Symbol ids (uint32) whose top of book changed, each once."""

    def __repr__(self) -> str: ...

class Engine:
    """
    Per-symbol trade rings, L2 books, bars, indicators and signal rules, fed by columnar batches. Not for concurrent use: a call that overlaps a running batch call raises RuntimeError.
    """

    def __init__(self, registry: SymbolRegistry, *, ring_capacity: int, bar_capacity: int, intervals: Sequence[int], indicators: Sequence[IndicatorSpec], rules: Sequence[RuleSpec], tick_size: float = 0.0001) -> None:
        """
        ``intervals``: bar intervals in ns; indicators and rules of interval 0 run on every trade.
        """

    def on_trades(self, symbol_id: Annotated[NDArray, dict(device='cpu', writable=False)], ts_event: Annotated[NDArray, dict(device='cpu', writable=False)], price: Annotated[NDArray, dict(device='cpu', writable=False)], size: Annotated[NDArray, dict(device='cpu', writable=False)], seq: Annotated[NDArray, dict(device='cpu', writable=False)], flags: Annotated[NDArray, dict(device='cpu', writable=False)]) -> IngestResult:
        """
        Ingest a batch of trades (GIL released). Invalid rows (unknown symbol id, non-finite or non-positive price, negative or non-finite size) are rejected and reported; the others are processed.
        """

    def on_trade(self, symbol_id: int, ts_event: int, price: float, size: float, seq: int = 0, flags: int = 0) -> IngestResult | None:
        """
        Ingest one trade. Return None when it produced nothing (no bar, signal or late trade); raise ValueError for an invalid trade.
        """

    def advance(self, now_ns: int) -> IngestResult:
        """
        Close every forming bar whose end is at or before ``now_ns``; trades later stamped in an interval closed this way are late.
        """

    def on_book_deltas(self, symbol_id: Annotated[NDArray, dict(device='cpu', writable=False)], side: Annotated[NDArray, dict(device='cpu', writable=False)], price: Annotated[NDArray, dict(device='cpu', writable=False)], size: Annotated[NDArray, dict(device='cpu', writable=False)], seq: Annotated[NDArray, dict(device='cpu', writable=False)], checked: bool = True) -> BookResult:
        """
        Apply L2 deltas (side 0 bid, 1 ask; size 0 deletes a level) with the GIL released.
        """

    def on_quotes(self, symbol_id: Annotated[NDArray, dict(device='cpu', writable=False)], bid_px: Annotated[NDArray, dict(device='cpu', writable=False)], bid_sz: Annotated[NDArray, dict(device='cpu', writable=False)], ask_px: Annotated[NDArray, dict(device='cpu', writable=False)], ask_sz: Annotated[NDArray, dict(device='cpu', writable=False)], seq: Annotated[NDArray, dict(device='cpu', writable=False)]) -> BookResult:
        """
        Top-of-book quotes: each row replaces the symbol's book with one level per side (a side with size 0 is empty).
        """

    def book_snapshot(self, symbol_id: int, bid_px: Annotated[NDArray, dict(device='cpu', writable=False)], bid_sz: Annotated[NDArray, dict(device='cpu', writable=False)], ask_px: Annotated[NDArray, dict(device='cpu', writable=False)], ask_sz: Annotated[NDArray, dict(device='cpu', writable=False)], seq: int = 0) -> None:
        """
        Replace a symbol's book (all-or-nothing; BookError leaves it unchanged).
        """

    def last_trades(self, symbol_id: int, n: int) -> dict[str, NDArray]:
        """The last ``n`` trades in the ring, oldest first (copies)."""

    def last_trade(self, symbol_id: int) -> tuple[int, float, float] | None:
        """``(ts_event, price, size)`` of the newest trade, or None."""

    def trade_count(self, symbol_id: int) -> int:
        """Trades ever stored for the symbol (including overwritten ones)."""

    def ring_overwritten(self, symbol_id: int) -> int:
        """Trades lost from the symbol's ring to overwriting."""

    def bars(self, symbol_id: int, interval: int, n: int) -> dict[str, NDArray]:
        """
        The last ``n`` closed bars, oldest first: ts_event (bar open), open, high, low, close, volume, vwap, trades.
        """

    def forming_bar(self, symbol_id: int, interval: int) -> dict[str, int | float] | None:
        """The bar still forming (ts_event = open, ts_end = end), or None."""

    def indicator_names(self, interval: int) -> list[str]:
        """Output names at an interval, indexed by ``output_id``."""

    def indicator_values(self, symbol_id: int, interval: int, forming: bool = True) -> Annotated[NDArray[numpy.float64], dict(shape=(None,))]:
        """
        Current output values (NaN during warm-up). For a bar interval with ``forming``, values include the forming bar provisionally.
        """

    def book_top(self, symbol_id: int, depth: int = 10) -> tuple[Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))]]:
        """
        ``(bid_px, bid_sz, ask_px, ask_sz)`` of the best ``depth`` levels, best first.
        """

    def book_stats(self, symbol_id: int) -> dict[str, int | float]:
        """
        Best bid_px/bid_sz/ask_px/ask_sz, mid, spread, microprice, imbalance (NaN where a side is empty), bid_depth, ask_depth, last_seq, gaps, tick_size.
        """

    def set_tick_size(self, symbol_id: int, tick_size: float) -> None:
        """Replace the symbol's book by an empty one with this tick size."""

    def set_day_boundaries(self, starts: Annotated[NDArray, dict(device='cpu', writable=False)]) -> None:
        """
        Session starts (UTC ns, strictly increasing) for 1-day bars and session VWAP, instead of UTC midnight. Applies to bars opened and sessions entered afterwards.
        """

    def counters(self) -> dict[str, int]:
        """Running totals since construction."""

    def memory_bytes(self) -> int:
        """
        Bytes held by rings, bars, indicator state and books (allocated, not necessarily resident).
        """

    def rule_names(self) -> list[str]:
        """Rule names, indexed by ``rule_id``."""

    def intervals(self) -> list[int]:
        """The bar intervals (ns), in configuration order."""

    @property
    def symbol_count(self) -> int:
        """Symbols the engine holds state for."""

class MarketSim:
    """Deterministic simulated market: trades and consistent L2 deltas."""

    def __init__(self, seed: int, symbol_ids: Sequence[int], prices: Sequence[float], tick_sizes: Sequence[float], trade_prob: float = 0.25, move_prob: float = 0.1, tick_vol: float = 1.0, vol_persistence: float = 0.995, vol_of_vol: float = 0.08, jump_prob: float = 0.0005, jump_ticks: float = 12.0, levels: int = 10, lot: float = 100.0) -> None: ...

    def generate(self, n: int, ts_start: int, ts_step: int) -> tuple[dict, dict]:
        """
        Generate ``n`` events stamped ``ts_start + j * ts_step``; return ``(trades, deltas)``
        as dicts of numpy columns. Deltas carry per-symbol book sequence numbers.
        """

    def book(self, index: int) -> tuple[Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))], Annotated[NDArray[numpy.float64], dict(shape=(None,))]]:
        """
        Current book of the ``index``-th symbol as ``(bid_px, bid_sz, ask_px, ask_sz)``,
        best first (a snapshot the following deltas build on).
        """

    def book_seq(self, index: int) -> int:
        """
        Book sequence number of the last delta generated for the ``index``-th symbol.
        """

    def __len__(self) -> int: ...
