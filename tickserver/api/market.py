"""Read-side views of market state as plain dicts, shared by GraphQL resolvers and the
subscription fast path (which serialises them once per message for all subscribers).

Keys are the GraphQL field names. Timestamps appear twice: ``ts`` as ISO-8601 UTC with
nanoseconds (exact) and ``tsMs`` as float epoch milliseconds (JavaScript-friendly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from tickserver.config import INTERVALS
from tickserver.events import BarBatch, Flag, SignalBatch, TradeBatch

if TYPE_CHECKING:
    from tickserver.engine import Engine, SignalRecord
    from tickserver.symbols import Symbols


class ApiError(Exception):
    """An error reported to GraphQL clients with a machine-readable ``code``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def iso_ns(ts: int) -> str:
    """Format UTC nanoseconds as ``2026-11-25T14:30:00.123456789Z``."""
    sec, ns = divmod(int(ts), 1_000_000_000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def iso_ns_many(ts: NDArray[np.int64]) -> list[str]:
    """Vectorised :func:`iso_ns` (about 20x faster per timestamp)."""
    text = np.datetime_as_string(np.asarray(ts, dtype=np.int64).astype("datetime64[ns]"), unit="ns")
    return [t + "Z" for t in text.tolist()]


def parse_ts(value: str | float | int) -> int:
    """Parse an ISO-8601 timestamp (with offset; naive means UTC), epoch ns or epoch ms."""
    if isinstance(value, int | float):
        v = int(value)
        return v if abs(v) > 10**15 else v * 1_000_000
    s = value.strip()
    if s.lstrip("-").isdigit():
        return parse_ts(int(s))
    frac_ns = 0
    # datetime parses at most microseconds: split off the fraction and keep nanoseconds.
    if "." in s:
        head, rest = s.split(".", 1)
        digits = ""
        for ch in rest:
            if ch.isdigit():
                digits += ch
            else:
                break
        tail = rest[len(digits) :]
        frac_ns = int((digits + "000000000")[:9]) if digits else 0
        s = head + tail
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ApiError(f"not an ISO-8601 timestamp: {value!r}", "BAD_TIMESTAMP") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + frac_ns


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def side_of(flags: int) -> str:
    """Aggressor side of a trade from its flags."""
    if flags & Flag.BUY:
        return "buy"
    if flags & Flag.SELL:
        return "sell"
    return "unknown"


class MarketView:
    """Snapshots of the engine's state, validated and shaped for the API."""

    def __init__(self, engine: Engine, symbols: Symbols) -> None:
        self.engine = engine
        self.core = engine.core
        self.symbols = symbols
        self.owned: set[str] | None = None  # scale-out: symbols this instance serves

    # ------------------------------------------------------------------ validation
    def symbol_id(self, symbol: str) -> int:
        """Return the id of a served symbol or raise UNKNOWN_SYMBOL."""
        sid = self.symbols.id(symbol)
        if sid is None or (self.owned is not None and symbol not in self.owned):
            raise ApiError(f"unknown symbol {symbol!r}", "UNKNOWN_SYMBOL")
        return sid

    def symbol_ids(self, symbols: Sequence[str] | None) -> list[int]:
        """Ids of ``symbols`` (None = every served symbol)."""
        if symbols is None:
            return [self.symbol_id(s) for s in self.served_symbols()]
        return [self.symbol_id(s) for s in symbols]

    def served_symbols(self) -> list[str]:
        """Symbols this instance serves."""
        names = self.symbols.names()
        if self.owned is not None:
            return [n for n in names if n in self.owned]
        return names

    def interval_ns(self, interval: str, *, allow_tick: bool) -> int:
        """Validate an interval string and return nanoseconds."""
        ns = INTERVALS.get(interval)
        if ns is None:
            raise ApiError(
                f"unknown interval {interval!r}; expected one of: "
                + ", ".join(["tick", *self.engine.cfg.market.intervals]),
                "UNKNOWN_INTERVAL",
            )
        if ns == 0 and not allow_tick:
            raise ApiError("interval 'tick' has no bars; use ticks", "UNKNOWN_INTERVAL")
        if ns != 0 and ns not in self.engine.intervals:
            raise ApiError(
                f"interval {interval!r} is not configured (market.intervals = "
                f"{', '.join(self.engine.cfg.market.intervals)})",
                "UNKNOWN_INTERVAL",
            )
        return ns

    @staticmethod
    def check_count(name: str, value: int, limit: int = 100_000) -> int:
        """Validate a ``last``/``depth`` argument."""
        if value < 0 or value > limit:
            raise ApiError(f"{name} must be between 0 and {limit}", "BAD_ARGUMENT")
        return value

    # ------------------------------------------------------------------ snapshots
    def quote(self, symbol: str) -> dict[str, Any]:
        """Last trade, best bid/ask with sizes, and the day's open/high/low/volume."""
        sid = self.symbol_id(symbol)
        return self.quote_by_id(sid, symbol)

    def quote_by_id(self, sid: int, symbol: str | None = None) -> dict[str, Any]:
        """Like :meth:`quote` for a known id."""
        st = self.core.book_stats(sid)
        last = self.core.last_trade(sid)
        day = (
            self.core.forming_bar(sid, INTERVALS["1d"])
            if INTERVALS["1d"] in self.engine.intervals
            else None
        )
        last_px = last[1] if last else None
        ts = last[0] if last else int(st.get("ts_event", 0) or 0)
        day_open = day["open"] if day else None
        change = (last_px - day_open) if (last_px is not None and day_open) else None
        return {
            "symbol": symbol if symbol is not None else self.symbols.name(sid),
            "ts": iso_ns(ts) if ts else None,
            "tsMs": ts / 1e6 if ts else None,
            "last": last_px,
            "lastSize": last[2] if last else None,
            "bid": _num(st["bid_px"]),
            "bidSize": _num(st["bid_sz"]),
            "ask": _num(st["ask_px"]),
            "askSize": _num(st["ask_sz"]),
            "mid": _num(st["mid"]),
            "spread": _num(st["spread"]),
            "open": day_open,
            "high": day["high"] if day else None,
            "low": day["low"] if day else None,
            "volume": day["volume"] if day else None,
            "change": change,
            "changePct": (100.0 * change / day_open) if (change is not None and day_open) else None,
        }

    def ticks(self, symbol: str, last: int) -> list[dict[str, Any]]:
        """The last ``last`` trades of ``symbol``, oldest first."""
        sid = self.symbol_id(symbol)
        t = self.core.last_trades(sid, self.check_count("last", last))
        return trade_rows(symbol, t["ts_event"], t["price"], t["size"], t["seq"], t["flags"])

    def bars(
        self, symbol: str, interval: str, last: int, *, forming: bool = True
    ) -> list[dict[str, Any]]:
        """The last ``last`` closed bars (plus the forming bar when ``forming``), oldest first."""
        sid = self.symbol_id(symbol)
        ns = self.interval_ns(interval, allow_tick=False)
        b = self.core.bars(sid, ns, self.check_count("last", last))
        rows = bar_rows([symbol] * len(b["ts_event"]), interval, b, final=True)
        if forming:
            f = self.core.forming_bar(sid, ns)
            if f is not None:
                rows.append(bar_row(symbol, interval, f, final=False))
                if last and len(rows) > last:
                    rows = rows[-last:]
        return rows

    def book(self, symbol: str, depth: int) -> dict[str, Any]:
        """Top ``depth`` levels per side with the book's statistics."""
        sid = self.symbol_id(symbol)
        bp, bs, ap, az = self.core.book_top(sid, self.check_count("depth", depth, 1000))
        st = self.core.book_stats(sid)
        ts = int(st.get("ts_event", 0) or 0)
        return {
            "symbol": symbol,
            "ts": iso_ns(ts) if ts else None,
            "tsMs": ts / 1e6 if ts else None,
            "bids": [
                {"price": p, "size": s} for p, s in zip(bp.tolist(), bs.tolist(), strict=True)
            ],
            "asks": [
                {"price": p, "size": s} for p, s in zip(ap.tolist(), az.tolist(), strict=True)
            ],
            "mid": _num(st["mid"]),
            "spread": _num(st["spread"]),
            "microprice": _num(st["microprice"]),
            "imbalance": _num(st["imbalance"]),
            "seq": int(st.get("last_seq", 0)),
        }

    def indicators(self, symbol: str, interval: str) -> list[dict[str, Any]]:
        """Latest value of each indicator output computed on ``interval``."""
        sid = self.symbol_id(symbol)
        ns = self.interval_ns(interval, allow_tick=True)
        names = self.engine.output_names(ns)
        values = self.core.indicator_values(sid, ns, True)
        if ns == 0:
            last = self.core.last_trade(sid)
            ts = last[0] if last else 0
            provisional = False
        else:
            f = self.core.forming_bar(sid, ns)
            closed = self.core.bars(sid, ns, 1)
            if f is not None:
                ts, provisional = int(f["ts_event"]), True
            elif len(closed["ts_event"]):
                ts, provisional = int(closed["ts_event"][-1]), False
            else:
                ts, provisional = 0, False
        return [
            {
                "name": n,
                "value": _num(v),
                "ready": not math.isnan(v),
                "provisional": provisional,
                "ts": iso_ns(ts) if ts else None,
                "tsMs": ts / 1e6 if ts else None,
            }
            for n, v in zip(names, values.tolist(), strict=True)
        ]

    def signals(self, symbol: str | None, last: int) -> list[dict[str, Any]]:
        """The last ``last`` signals (of ``symbol``, or of all symbols), oldest first."""
        self.check_count("last", last)
        if symbol is None:
            recs: Iterable[SignalRecord] = self.engine.recent_signals
        else:
            self.symbol_id(symbol)
            recs = self.engine.signals_by_symbol.get(symbol, ())
        out = [
            signal_row(r.symbol, r.ts_event, r.rule, r.interval, r.direction, r.value) for r in recs
        ]
        return out[-last:] if last else []


TICK_FIELDS = ("symbol", "ts", "tsMs", "price", "size", "seq", "side")


def tick_columns(
    symbol: str | Sequence[str],
    ts: NDArray[np.int64],
    price: NDArray[np.float64],
    size: NDArray[np.float64],
    seq: NDArray[np.uint64],
    flags: NDArray[np.uint8],
    fields: Iterable[str] = TICK_FIELDS,
) -> dict[str, list[Any]]:
    """Columns (GraphQL field -> values) of trades, computing only the ``fields`` asked for."""
    n = len(ts)
    out: dict[str, list[Any]] = {}
    for f in fields:
        if f in out:
            continue
        if f == "symbol":
            out[f] = [symbol] * n if isinstance(symbol, str) else list(symbol)
        elif f == "ts":
            out[f] = iso_ns_many(ts)
        elif f == "tsMs":
            out[f] = (ts / 1e6).tolist()
        elif f == "price":
            out[f] = price.tolist()
        elif f == "size":
            out[f] = size.tolist()
        elif f == "seq":
            out[f] = seq.tolist()
        elif f == "side":
            side = np.where(flags & Flag.BUY, "buy", np.where(flags & Flag.SELL, "sell", "unknown"))
            out[f] = side.tolist()
        else:
            raise KeyError(f)
    return out


def rows_from_columns(
    cols: dict[str, list[Any]], keys: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Zip columns into row dicts; ``keys`` are (response key, field) pairs."""
    if not keys:
        return []
    names = [k for k, _ in keys]
    return [
        dict(zip(names, vals, strict=True))
        for vals in zip(*(cols[f] for _, f in keys), strict=True)
    ]


def trade_rows(
    symbol: str | Sequence[str], ts: Any, price: Any, size: Any, seq: Any, flags: Any
) -> list[dict[str, Any]]:
    """Rows of trades from columns (``symbol`` a single name or one per row)."""
    cols = tick_columns(symbol, ts, price, size, seq, flags)
    return rows_from_columns(cols, [(f, f) for f in TICK_FIELDS])


B = TypeVar("B", TradeBatch, BarBatch)


def select_symbols(batch: B, wanted: set[int] | None) -> B:
    """The rows of ``batch`` whose symbol id is in ``wanted`` (all when None)."""
    if wanted is not None:
        mask = np.isin(batch.symbol_id, np.fromiter(wanted, dtype=np.uint32))
        if not mask.all():
            return batch.take(mask)
    return batch


def trades_of_batch(
    batch: TradeBatch, symbols: Symbols, wanted: set[int] | None
) -> list[dict[str, Any]]:
    """Rows of a TradeBatch, optionally only for symbol ids in ``wanted``."""
    batch = select_symbols(batch, wanted)
    names = symbols.names_of(batch.symbol_id).tolist()
    return trade_rows(names, batch.ts_event, batch.price, batch.size, batch.seq, batch.flags)


def bar_row(symbol: str, interval: str, b: dict[str, Any], *, final: bool) -> dict[str, Any]:
    """One bar as a row."""
    ts = int(b["ts_event"])
    return {
        "symbol": symbol,
        "interval": interval,
        "ts": iso_ns(ts),
        "tsMs": ts / 1e6,
        "open": float(b["open"]),
        "high": float(b["high"]),
        "low": float(b["low"]),
        "close": float(b["close"]),
        "volume": float(b["volume"]),
        "vwap": _num(float(b["vwap"])),
        "trades": int(b["trades"]),
        "final": final,
    }


def bar_rows(
    symbols: Sequence[str], interval: str, cols: Any, *, final: bool
) -> list[dict[str, Any]]:
    """Rows of bars from columns (dict of arrays or a BarBatch)."""
    get = cols.__getitem__ if isinstance(cols, dict) else lambda k: getattr(cols, k)
    keys = ("ts_event", "open", "high", "low", "close", "volume", "vwap", "trades")
    lists = {k: get(k).tolist() for k in keys}
    return [
        bar_row(symbols[i], interval, {k: lists[k][i] for k in keys}, final=final)
        for i in range(len(lists["ts_event"]))
    ]


def bars_of_batch(
    batch: BarBatch, symbols: Symbols, wanted: set[int] | None
) -> list[dict[str, Any]]:
    """Rows of a BarBatch, optionally only for symbol ids in ``wanted``."""
    batch = select_symbols(batch, wanted)
    names = symbols.names_of(batch.symbol_id).tolist()
    return bar_rows(names, batch.interval, batch, final=batch.final)


def signal_row(
    symbol: str, ts: int, rule: str, interval: str, direction: int, value: float
) -> dict[str, Any]:
    """One signal as a row."""
    return {
        "symbol": symbol,
        "ts": iso_ns(ts),
        "tsMs": ts / 1e6,
        "rule": rule,
        "interval": interval,
        "direction": "up" if direction > 0 else "down",
        "value": _num(value),
    }


def signals_of_batch(
    batch: SignalBatch, symbols: Symbols, wanted: set[int] | None, rule_interval: dict[str, str]
) -> list[dict[str, Any]]:
    """Rows of a SignalBatch, optionally only for symbol ids in ``wanted``."""
    names = symbols.names_of(batch.symbol_id).tolist()
    out = []
    for i in range(len(batch)):
        if wanted is not None and int(batch.symbol_id[i]) not in wanted:
            continue
        rule = batch.rules[int(batch.rule_id[i])]
        out.append(
            signal_row(
                names[i],
                int(batch.ts_event[i]),
                rule,
                rule_interval.get(rule, ""),
                int(batch.direction[i]),
                float(batch.value[i]),
            )
        )
    return out
