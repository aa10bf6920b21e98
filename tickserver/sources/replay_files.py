"""Replay files: format detection, chunked streaming readers, parsing and row validation.

No asyncio here. :class:`ReplayReader` is a plain iterator of :class:`Chunk` objects (columnar
numpy arrays of the rows that passed validation, plus the rows that did not, with their
``file:line``); :class:`tickserver.sources.replay.ReplaySource` pulls chunks from a worker
thread and publishes them. Memory stays constant: one chunk is parsed while the previous one
is published.

Two kinds of file are understood, in three containers (CSV, Parquet, JSON lines, optionally
compressed by extension: ``.gz``, ``.bz2``, ``.zst``, ``.lz4``):

- *trades* (and quotes): columns ``ts, symbol, price, size`` and optionally ``bid_px, bid_sz,
  ask_px, ask_sz``;
- *bars*: OHLCV files as yfinance writes them (``Date``/``Datetime, Open, High, Low, Close,
  Volume``, ``Adj Close`` and action columns ignored), including the two-row ``Price``/``Ticker``
  header that ``yf.download(...).to_csv()`` writes. Bars become four synthetic trades each
  (:func:`tickserver.events.bars_to_trades`).
"""

from __future__ import annotations

import calendar
import csv
import io
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from numpy.typing import NDArray

from tickserver.events import Flag, bars_to_trades

B = NDArray[np.bool_]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

Container = Literal["csv", "parquet", "jsonl"]
Kind = Literal["trades", "bars"]
Format = Literal["auto", "csv", "parquet", "jsonl", "ohlcv"]

NS = 1_000_000_000
DAY_NS = 86_400 * NS
MIN_EPOCH_NS = 10**15
"""Integer ``ts`` values below this (1970-01-12 in ns) are seconds/ms/µs by mistake."""

REASONS: dict[str, str] = {
    "malformed": "the row cannot be parsed (wrong number of fields, not a JSON object)",
    "bad_ts": "ts missing, unparseable, or not in nanoseconds",
    "bad_symbol": "symbol missing or empty",
    "bad_price": "price missing, unparseable, not finite or not positive",
    "bad_size": "size missing, unparseable, not finite or negative",
    "bad_quote": "bid/ask incomplete, not positive, negative size, or crossed (bid > ask)",
    "bad_bar": "OHLCV value missing, not positive, or high/low inconsistent",
    "out_of_order": "ts earlier than the previous row's (or a bar overlapping the previous one)",
}
"""Why a row is rejected: the ``reason`` label of the skipped-rows metric."""

_REASON_CODES = {name: i + 1 for i, name in enumerate(REASONS)}
_CODE_REASONS = {i: name for name, i in _REASON_CODES.items()}

COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".zstd": "zstd", ".lz4": "lz4"}
EXTENSIONS: dict[str, Container] = {
    ".csv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}

TRADE_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "time", "ts_event"),
    "symbol": ("symbol", "ticker"),
    "price": ("price",),
    "size": ("size", "qty", "quantity"),
    "bid_px": ("bid_px", "bid", "bid_price"),
    "bid_sz": ("bid_sz", "bid_size"),
    "ask_px": ("ask_px", "ask", "ask_price"),
    "ask_sz": ("ask_sz", "ask_size"),
}
QUOTE_FIELDS = ("bid_px", "bid_sz", "ask_px", "ask_sz")
BAR_FIELDS = ("open", "high", "low", "close", "volume")
BAR_TIME_NAMES = ("date", "datetime", "timestamp", "time", "ts", "", "__index_level_0__")

_TUPLE_NAME = re.compile(r"^\('((?:[^'\\]|\\.)*)', '((?:[^'\\]|\\.)*)'\)$")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_OFFSET_TEXT = re.compile(r"(?:Z|z|UTC|[+-]\d{2}(?::?\d{2})?)$")
_ISO_TEXT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)


class ReplayFileError(ValueError):
    """The file cannot be replayed at all (missing, unknown format, missing columns, …)."""


@dataclass(frozen=True)
class BadRow:
    """A rejected row: where it is, why (a key of :data:`REASONS`) and a readable message."""

    where: str
    """``file:line`` (CSV/JSON lines, header lines counted) or ``file:row N`` (Parquet, 0-based)."""
    line: int
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Chunk:
    """Events of one chunk that passed validation, in file order, ready to publish.

    Each row is a trade, a quote, or both (a trade row that also carries the touch). Symbols
    are codes into ``symbols``; the source interns them on the event loop.
    """

    symbols: list[str]
    sym: I32
    ts: I64
    key: I64
    """Pacing key: the running maximum of ``ts`` (non-decreasing even if ``ts`` is not)."""
    price: F64
    size: F64
    flags: int
    trade: B | None = None
    """Rows that carry a trade (None: all of them)."""
    quote: B | None = None
    """Rows that carry a quote (None: none of them)."""
    touch: tuple[F64, F64, F64, F64] | None = None
    """(bid_px, bid_sz, ask_px, ask_sz) of every row (NaN where a row has no quote)."""
    rows: int = 0
    """File rows this chunk consumed (good and bad; for bar files, bars)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Rows rejected in this chunk, by reason (with the stop policy: the one that stopped it)."""
    bad: list[BadRow] = field(default_factory=list)
    """Readable samples of rejected rows (the first few of the whole file)."""
    stop: BadRow | None = None
    """The first bad row when bad rows stop the replay (the events are the rows before it)."""
    progress: float = 0.0
    """Fraction of the file consumed after this chunk."""
    empty_bars: int = 0
    """Bars with no values at all (gaps yfinance leaves when it aligns several tickers)."""

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class _Raw:
    """Columns of one chunk as read, before conversion, keyed by column key."""

    cols: dict[str, pa.Array]
    lines: I64
    malformed: list[tuple[int, str]]
    progress: float
    text_of: Callable[[int, str], str | None] | None = None
    """The field ``key`` of line ``line`` as written in the file (CSV), for messages."""

    def value(self, key: str, i: int) -> Any:
        """Row ``i``'s value of ``key`` as the file spells it (None when empty)."""
        if self.text_of is not None:
            text = self.text_of(int(self.lines[i]), key)
            return text if text else None
        return _value(self.cols[key], i)


# ----------------------------------------------------------------------------- timestamps


def _tz(name: str) -> tzinfo:
    return UTC if name.upper() == "UTC" else ZoneInfo(name)


def parse_ts_text(text: str, tz: tzinfo = UTC) -> int:
    """Parse one ``ts``: ISO-8601 (offset optional; naive means ``tz``) or epoch nanoseconds.

    Raises
    ------
    ValueError
        Explaining what is wrong with ``text``.
    """
    s = text.strip()
    if not s:
        raise ValueError("ts is missing")
    if _INT_TEXT.match(s):
        v = int(s)
        if not MIN_EPOCH_NS <= v < 2**63:
            raise ValueError(
                f"ts {s} is not epoch nanoseconds (seconds or milliseconds?); write epoch "
                "nanoseconds or ISO-8601 with an offset"
            )
        return v
    m = _ISO_TEXT.match(s)
    if m is None:
        raise ValueError(f"ts {text!r} is not ISO-8601 (e.g. 2024-01-02T14:30:00Z) or epoch ns")
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        wall = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise ValueError(f"ts {text!r}: {exc}") from None
    frac_ns = int((frac + "000000000")[:9]) if frac else 0
    if off is None:
        if tz is UTC:
            aware = wall.replace(tzinfo=UTC)
        else:
            aware = wall.replace(tzinfo=tz)
            back = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
            if back != wall:
                raise ValueError(f"ts {text!r} does not exist in {tz} (DST gap)")
            if aware.utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
                raise ValueError(f"ts {text!r} is ambiguous in {tz} (DST overlap); add an offset")
    elif off in ("Z", "z", "UTC"):
        aware = wall.replace(tzinfo=UTC)
    else:
        sign = -1 if off[0] == "-" else 1
        digits = off[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) > 2 else 0)
        aware = wall.replace(tzinfo=UTC) - timedelta(minutes=sign * minutes)
    secs = calendar.timegm(aware.utctimetuple())
    return secs * NS + frac_ns


def _blank_to_null(arr: pa.Array) -> pa.Array:
    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)


def _nulls(arr: pa.Array) -> B:
    if arr.null_count == 0:
        return np.zeros(len(arr), bool)
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _ints(arr: pa.Array) -> I64:
    arr = arr.cast(pa.int64())
    if arr.null_count:
        arr = arr.fill_null(0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), np.int64)


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _decode(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def ts_column(arr: pa.Array, tz: str = "UTC") -> tuple[I64, B]:
    """Convert a ``ts`` column to UTC epoch nanoseconds; return (values, bad) (missing is bad).

    Strings are ISO-8601 (with an offset, or naive in ``tz``) or epoch nanoseconds; integers
    are epoch nanoseconds; Arrow timestamps and dates are converted (naive ones are in ``tz``).
    """
    arr = _decode(arr)
    n = len(arr)
    t = arr.type
    if pa.types.is_null(t):
        return np.zeros(n, np.int64), np.ones(n, bool)
    if _is_text(t):
        arr = _blank_to_null(arr)
        null = _nulls(arr)
        attempts = [_cast_offset, _cast_naive, _cast_epoch]
        first = next((v for v in arr[:64].to_pylist() if v is not None), "")
        if _INT_TEXT.match(first):  # try the likely parse first: a failed cast is costly
            attempts.insert(0, attempts.pop())
        elif not _OFFSET_TEXT.search(first):
            attempts[:2] = attempts[1::-1]
        for attempt in attempts:
            try:
                vals, bad = attempt(arr, tz)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
                continue
            return vals, bad | null
        return _ts_python(arr.to_pylist(), tz)
    if pa.types.is_integer(t):
        vals = _ints(arr)
        return vals, _nulls(arr) | (vals < MIN_EPOCH_NS)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        null = _nulls(arr)
        try:
            ts = arr.cast(pa.timestamp("ns", tz=getattr(t, "tz", None)))
            if getattr(t, "tz", None) is None and tz.upper() != "UTC":
                ts = pc.assume_timezone(ts, tz)
            return _ints(ts), null
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _ts_python([None if v is None else str(v) for v in arr.to_pylist()], tz)
    # floats cannot hold epoch nanoseconds exactly; anything else is not a time
    return np.zeros(n, np.int64), np.ones(n, bool)


def _cast_offset(arr: pa.Array, tz: str) -> tuple[I64, B]:
    return _ints(arr.cast(pa.timestamp("ns", tz="UTC"))), np.zeros(len(arr), bool)


def _cast_naive(arr: pa.Array, tz: str) -> tuple[I64, B]:
    ts = arr.cast(pa.timestamp("ns"))
    if tz.upper() != "UTC":
        ts = pc.assume_timezone(ts, tz)
    return _ints(ts), np.zeros(len(arr), bool)


def _cast_epoch(arr: pa.Array, tz: str) -> tuple[I64, B]:
    vals = _ints(arr.cast(pa.int64()))
    return vals, vals < MIN_EPOCH_NS


def _ts_python(values: Sequence[Any], tz: str) -> tuple[I64, B]:
    zone = _tz(tz)
    out = np.zeros(len(values), np.int64)
    bad = np.zeros(len(values), bool)
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool) or v is None:
                raise ValueError
            out[i] = v if isinstance(v, int) and v >= MIN_EPOCH_NS else parse_ts_text(str(v), zone)
        except (ValueError, OverflowError):
            bad[i] = True
    return out, bad


def ts_problem(value: Any, tz: str = "UTC") -> str:
    """Explain why a raw ``ts`` value was rejected."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "ts is missing"
    if isinstance(value, float):
        return f"ts {value!r} is a float; write epoch nanoseconds as an integer or use ISO-8601"
    if isinstance(value, datetime):
        value = value.isoformat()
    try:
        parse_ts_text(str(value), _tz(tz))
    except ValueError as exc:
        return str(exc)
    return f"ts {value!r} is out of range"


def date_column(arr: pa.Array) -> tuple[I64, B]:
    """The calendar date of each value (as written, ignoring any offset) at 00:00 UTC, in ns."""
    arr = _decode(arr)
    t = arr.type
    if _is_text(t):
        arr = pc.utf8_slice_codeunits(_blank_to_null(arr), 0, 10)
        null = _nulls(arr)
        try:
            return _ints(arr.cast(pa.timestamp("ns"))), null
        except pa.ArrowInvalid:
            vals, bad = _ts_python([None if v is None else v[:10] for v in arr.to_pylist()], "UTC")
            return vals - vals % DAY_NS, bad
    if pa.types.is_timestamp(t):
        local = pc.local_timestamp(arr) if t.tz is not None else arr
        day = pc.floor_temporal(local.cast(pa.timestamp("ns")), unit="day")
        return _ints(day), _nulls(arr)
    if pa.types.is_date(t):
        return _ints(arr.cast(pa.timestamp("ns"))), _nulls(arr)
    vals, bad = ts_column(arr)
    return vals - vals % DAY_NS, bad


# ----------------------------------------------------------------------------- numbers


def float_column(arr: pa.Array) -> tuple[F64, B, B]:
    """Convert a column to float64; return (values, missing, unparseable)."""
    arr = _decode(arr)
    n = len(arr)
    t = arr.type
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.ones(n, bool), np.zeros(n, bool)
    if _is_text(t):
        arr = _blank_to_null(arr)
        null = _nulls(arr)
        try:
            vals = arr.cast(pa.float64())
        except pa.ArrowInvalid:
            out = np.full(n, np.nan)
            unparseable = np.zeros(n, bool)
            for i, s in enumerate(arr.to_pylist()):
                if s is None:
                    continue
                try:
                    out[i] = float(s)
                except ValueError:
                    unparseable[i] = True
            return out, null, unparseable
        return _floats(vals), null, np.zeros(n, bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        null = _nulls(arr)
        vals = pc.cast(arr, pa.float64(), safe=False)
        return _floats(vals), null, np.zeros(n, bool)
    null = _nulls(arr)
    return np.full(n, np.nan), null, ~null


def _floats(arr: pa.Array) -> F64:
    if arr.null_count:
        arr = arr.fill_null(np.nan)
    return np.asarray(arr.to_numpy(zero_copy_only=False), np.float64)


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class TradeLayout:
    """Which column key holds each trade field (None: absent)."""

    ts: str
    symbol: str | None
    price: str
    size: str
    quote: tuple[str, str, str, str] | None
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class BarLayout:
    """Which column keys hold the time and each ticker's OHLCV fields."""

    time: str
    time_name: str
    tickers: tuple[tuple[str | None, dict[str, str]], ...]
    """(ticker or None when the file names none, {field: key}) per ticker."""


def _norm(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _split_name(name: str) -> tuple[str, str] | None:
    """``"('Close', 'AAPL')"`` (pandas' name for a MultiIndex column in Parquet) → parts."""
    m = _TUPLE_NAME.match(name.strip())
    return (m.group(1), m.group(2)) if m else None


def resolve_layout(
    names: Sequence[str | tuple[str, str]],
    keys: Sequence[str],
    *,
    force_bars: bool,
    where: str,
) -> TradeLayout | BarLayout:
    """Map a file's column names to a trade or bar layout.

    ``names[i]`` is a column name, or a (level 0, level 1) pair for a two-row header; ``keys[i]``
    is how the reader addresses that column.

    Raises
    ------
    ReplayFileError
        When required columns are missing, naming what was found and what is expected.
    """
    cols: list[tuple[str, str, str, str]] = []  # (level 0 normalised, level 0, level 1, key)
    for name, key in zip(names, keys, strict=True):
        if isinstance(name, tuple):
            pair: tuple[str, str] | None = name
        else:
            pair = _split_name(name)
        if pair is not None:
            cols.append((_norm(pair[0]), pair[0].strip(), pair[1].strip(), key))
        elif isinstance(name, str):
            cols.append((_norm(name), name.strip(), "", key))
    seen = {c[0] for c in cols} | {_norm(c[2]) for c in cols if c[2]}
    shown = ", ".join((f"{a}/{b}" if b else a) or "<unnamed>" for _, a, b, _ in cols[:20])
    shown += " …" if len(cols) > 20 else ""
    if force_bars or {"open", "high", "low", "close"} <= seen:
        return _bar_layout(cols, where, shown)
    found: dict[str, str] = {}
    for field_name, aliases in TRADE_ALIASES.items():
        for alias in aliases:
            hit = next((k for a, _, b, k in cols if not b and a == alias), None)
            if hit is not None:
                found[field_name] = hit
                break
    missing = [f for f in ("ts", "price", "size") if f not in found]
    if missing:
        raise ReplayFileError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {shown}); expected trades (ts, symbol, price, size [, bid_px, bid_sz, "
            "ask_px, ask_sz]) or OHLCV bars (Date/Datetime, Open, High, Low, Close, Volume)"
        )
    q = [found.get(f) for f in QUOTE_FIELDS]
    quote: tuple[str, str, str, str] | None = None
    if any(q):
        absent = [f for f, k in zip(QUOTE_FIELDS, q, strict=True) if k is None]
        if absent:
            raise ReplayFileError(
                f"{where}: quote columns need all of bid_px, bid_sz, ask_px, ask_sz "
                f"(missing: {', '.join(absent)})"
            )
        quote = (str(q[0]), str(q[1]), str(q[2]), str(q[3]))
    used = set(found.values())
    return TradeLayout(
        ts=found["ts"],
        symbol=found.get("symbol"),
        price=found["price"],
        size=found["size"],
        quote=quote,
        ignored=tuple((a or "<unnamed>") for _, a, b, k in cols if k not in used),
    )


def _bar_layout(cols: list[tuple[str, str, str, str]], where: str, shown: str) -> BarLayout:
    candidates = [
        (BAR_TIME_NAMES.index(a), a, k) for a, _, b, k in cols if not b and a in BAR_TIME_NAMES
    ]
    if not candidates:
        raise ReplayFileError(
            f"{where}: OHLCV file has no time column (found: {shown}); expected Date or Datetime"
        )
    _, time_name, time_key = min(candidates)
    by_ticker: dict[str | None, dict[str, str]] = {}
    for a, a_orig, b, k in cols:
        if k == time_key:
            continue
        # A two-level name is (field, ticker) or (ticker, field): whichever side is a field.
        if a in BAR_FIELDS:
            fld, owner = a, b
        elif b and _norm(b) in BAR_FIELDS:
            fld, owner = _norm(b), a_orig
        else:
            continue  # Adj Close, Dividends, Stock Splits, Capital Gains, …
        by_ticker.setdefault(owner or None, {})[fld] = k
    tickers: list[tuple[str | None, dict[str, str]]] = []
    for ticker, fields in by_ticker.items():
        missing = [f for f in ("open", "high", "low", "close") if f not in fields]
        if missing:
            raise ReplayFileError(
                f"{where}: OHLCV columns missing{f' for {ticker}' if ticker else ''}: "
                f"{', '.join(missing)} (found: {shown})"
            )
        tickers.append((ticker, fields))
    if not tickers:
        raise ReplayFileError(f"{where}: no Open/High/Low/Close columns (found: {shown})")
    return BarLayout(time=time_key, time_name=time_name, tickers=tuple(tickers))


# ----------------------------------------------------------------------------- raw readers


def detect_container(path: Path, fmt: Format) -> tuple[Container, str | None]:
    """Return (container, compression codec or None) from ``fmt``, the extension or magic."""
    suffixes = [s.lower() for s in path.suffixes]
    codec = COMPRESSION.get(suffixes[-1]) if suffixes else None
    if codec:
        suffixes = suffixes[:-1]
    if fmt in ("csv", "parquet", "jsonl"):
        return fmt, codec
    ext = EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if ext is not None:
        return ext, codec
    if fmt == "ohlcv":
        return "csv", codec
    if codec is None:
        with path.open("rb") as f:
            head = f.read(4096)
        if head.startswith(b"PAR1"):
            return "parquet", None
        if head.lstrip().startswith(b"{"):
            return "jsonl", None
    return "csv", codec


class _Lines:
    """Read a text file as chunks of whole lines, knowing each chunk's first line number."""

    BLOCK = 1 << 20

    def __init__(self, path: Path, codec: str | None, chunk_rows: int) -> None:
        self.raw = pa.OSFile(str(path), "rb")
        self.size = max(self.raw.size(), 1)
        self.stream: Any = pa.CompressedInputStream(self.raw, codec) if codec else self.raw
        self.compressed = codec is not None
        self.consumed = 0
        self.chunk_rows = chunk_rows
        self.buf = bytearray()
        self.newlines = 0
        self.eof = False
        self.next_line = 1

    def _fill(self, lines: int) -> None:
        while not self.eof and self.newlines < lines:
            data = self.stream.read(max(self.BLOCK, 64 * lines - len(self.buf)))
            if not data:
                self.eof = True
                break
            self.buf += data
            self.newlines += data.count(b"\n")

    def _cut(self, lines: int) -> bytes:
        view = np.frombuffer(self.buf, dtype=np.uint8)
        end = int(np.flatnonzero(view == 10)[lines - 1]) + 1
        del view
        out = bytes(self.buf[:end])
        del self.buf[:end]
        self.newlines -= lines
        self.consumed += len(out)
        return out

    def readline(self) -> bytes | None:
        """Return the next line (without its newline), or None at the end."""
        got = self.next_chunk(1)
        if got is None:
            return None
        return got[0].rstrip(b"\r\n")

    def next_chunk(self, lines: int | None = None) -> tuple[bytes, int] | None:
        """Return (bytes of up to ``lines`` whole lines, number of its first line) or None."""
        want = lines or self.chunk_rows
        self._fill(want)
        first = self.next_line
        if self.newlines >= want:
            data = self._cut(want)
            self.next_line += want
            return data, first
        if not self.buf:
            return None
        data = bytes(self.buf)
        self.buf.clear()
        self.consumed += len(data)
        self.next_line += self.newlines + (0 if data.endswith(b"\n") else 1)
        self.newlines = 0
        return data, first

    @property
    def progress(self) -> float:
        if self.eof and not self.buf:
            return 1.0
        # Compressed: how far into the file the decompressor has read (slightly ahead).
        pos = int(self.raw.tell()) if self.compressed else self.consumed
        done: float = min(pos / self.size, 0.999)
        return done

    def close(self) -> None:
        self.raw.close()


def _line_index(data: bytes, first: int) -> I64:
    """Line numbers of the non-empty lines of ``data`` (which starts at line ``first``)."""
    view = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(view == 10)
    starts = np.concatenate([[0], nl + 1])
    ends = np.concatenate([nl, [len(data)]])
    if data.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    length = ends - starts
    cr_only = (length == 1) & (view[np.minimum(starts, max(len(view) - 1, 0))] == 13)
    empty = (length == 0) | cr_only
    return (np.flatnonzero(~empty) + first).astype(np.int64)


class _CsvRaw:
    """CSV: header (one line, or yfinance's three), then chunks parsed by pyarrow as text."""

    def __init__(self, path: Path, codec: str | None, chunk_rows: int, display: str) -> None:
        self.display = display
        self.lines = _Lines(path, codec, chunk_rows)
        first = self.lines.readline()
        if first is None:
            raise ReplayFileError(f"{display}: the file is empty")
        h1 = _csv_cells(first)
        self.names: list[str | tuple[str, str]] = list(h1)
        lead = _norm(h1[0]) if h1 else ""
        if lead in ("price", "ticker") and len(h1) > 1:
            # yf.download(...).to_csv(): "Price,Close,…" / "Ticker,AAPL,…" / "Datetime,,,…"
            second = self.lines.readline()
            third = self.lines.readline()
            h2 = _csv_cells(second or b"")
            h3 = _csv_cells(third or b"")
            if len(h2) != len(h1) or not h3 or any(c.strip() for c in h3[1:]):
                raise ReplayFileError(
                    f"{display}:2: a header starting with {h1[0]!r} looks like yfinance's "
                    "two-row header, but lines 2-3 are not 'Ticker,…' and 'Date[time],,,'"
                )
            self.names = [h3[0], *zip(h1[1:], h2[1:], strict=True)]
        self.keys = [f"c{i}" for i in range(len(self.names))]
        self.include: list[str] = []
        self.types: dict[str, pa.DataType] = {}
        """Types to try first per column (e.g. float64); text when a chunk does not parse."""

    def read(self) -> _Raw | None:
        got = self.lines.next_chunk()
        if got is None:
            return None
        data, first = got
        nonempty = _line_index(data, first)
        invalid: list[tuple[int, int, str]] = []

        def on_invalid(row: Any) -> str:
            invalid.append((row.number, row.actual_columns, row.text))
            return "skip"

        def parse(types: dict[str, pa.DataType]) -> pa.Table:
            invalid.clear()
            return pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=self.keys, use_threads=False, block_size=max(len(data), 1 << 16)
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    include_columns=self.include,
                    column_types={k: types.get(k, pa.string()) for k in self.include},
                    null_values=[""],
                    strings_can_be_null=True,
                ),
            )

        try:
            try:
                table = parse(self.types)
            except pa.ArrowInvalid:
                # A value the typed parse rejects: read as text, so each bad row is found
                # and named by the validation (the typed parse fails the whole chunk).
                if not self.types:
                    raise
                table = parse({})
        except pa.ArrowInvalid as exc:
            raise ReplayFileError(f"{self.display}:{first}: cannot parse CSV: {exc}") from None
        bad_idx = [num - 1 for num, _, _ in invalid]
        lines = np.delete(nonempty, bad_idx) if bad_idx else nonempty
        if len(lines) != table.num_rows or any(not 0 <= i < len(nonempty) for i in bad_idx):
            raise ReplayFileError(
                f"{self.display}:{first}: cannot map rows to lines (a quoted field spanning "
                "lines, or CR-only line endings?)"
            )
        malformed = [
            (
                int(nonempty[num - 1]),
                f"expected {len(self.keys)} fields, found {ncols}: {text[:80]!r}",
            )
            for num, ncols, text in invalid
        ]
        cols = {k: table.column(k).combine_chunks() for k in self.include}
        return _Raw(cols, lines, malformed, self.lines.progress, _field_text(data, first))

    def close(self) -> None:
        self.lines.close()


def _field_text(data: bytes, first: int) -> Callable[[int, str], str | None]:
    """Look up a field's text by line number and column key (``c<j>``) in a CSV chunk."""
    ends: list[I64] = []

    def text_of(line: int, key: str) -> str | None:
        if not ends:
            ends.append(np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10))
        nl = ends[0]
        k = line - first
        start = 0 if k == 0 else int(nl[k - 1]) + 1
        end = int(nl[k]) if k < len(nl) else len(data)
        cells = _csv_cells(data[start:end].rstrip(b"\r"))
        j = int(key[1:])
        return cells[j].strip() if j < len(cells) else None

    return text_of


def _csv_cells(line: bytes) -> list[str]:
    text = line.decode("utf-8-sig", errors="replace")
    return next(csv.reader([text]), [])


class _JsonlRaw:
    """JSON lines: one object per line; the first object's keys name the columns."""

    def __init__(self, path: Path, codec: str | None, chunk_rows: int, display: str) -> None:
        self.display = display
        self.lines = _Lines(path, codec, chunk_rows)
        self.include: list[str] = []
        self.schema: pa.Schema | None = None
        self.pending: _JsonChunk | None = None
        got: _JsonChunk | None = None
        while got is None or not (got.objs or got.malformed):
            got = self._next()
            if got is None:
                raise ReplayFileError(f"{display}: no JSON object found")
        self.pending = got
        first = got.objs[0] if got.objs else {}
        self.names: list[str | tuple[str, str]] = [str(k) for k in first]
        self.keys = [str(k) for k in self.names]

    def _next(self) -> _JsonChunk | None:
        got = self.lines.next_chunk()
        if got is None:
            return None
        return self._objects(*got)

    def _objects(self, data: bytes, first: int) -> _JsonChunk:
        lines_no = _line_index(data, first)
        texts = [ln for ln in data.split(b"\n") if ln.strip(b"\r")]
        objs: list[Any]
        try:
            objs = orjson.loads(b"[" + b",".join(texts) + b"]")
        except orjson.JSONDecodeError:
            objs = []
            for t in texts:
                try:
                    objs.append(orjson.loads(t))
                except orjson.JSONDecodeError as exc:
                    objs.append(_BadJson(f"not valid JSON ({exc.msg}): {t[:80]!r}"))
        out = _JsonChunk([], [], [], self.lines.progress)
        for i, o in enumerate(objs):
            if isinstance(o, dict):
                out.objs.append(o)
                out.lines.append(int(lines_no[i]))
            elif isinstance(o, _BadJson):
                out.malformed.append((int(lines_no[i]), o.message))
            else:
                out.malformed.append((int(lines_no[i]), f"not a JSON object: {texts[i][:80]!r}"))
        return out

    def read(self) -> _Raw | None:
        got: _JsonChunk | None
        if self.pending is not None:
            got, self.pending = self.pending, None
            self.schema = self._schema(got)
        else:
            chunk = self.lines.next_chunk()
            if chunk is None:
                return None
            fast = self._arrow(*chunk)
            if fast is not None:
                return fast
            got = self._objects(*chunk)
        cols = {k: _json_column([o.get(k) for o in got.objs]) for k in self.include}
        return _Raw(cols, np.asarray(got.lines, np.int64), got.malformed, got.progress)

    def _schema(self, got: _JsonChunk) -> pa.Schema | None:
        """Column types from the first object, for pyarrow's (much faster) JSON reader."""
        if not got.objs:
            return None
        types = {int: pa.int64(), float: pa.float64(), str: pa.string()}
        fields = []
        for k in self.include:
            t = types.get(type(got.objs[0].get(k)))
            if t is None:
                return None
            fields.append(pa.field(k, t))
        return pa.schema(fields)

    def _arrow(self, data: bytes, first: int) -> _Raw | None:
        """Parse a chunk with pyarrow; None when it cannot (bad lines, other types): the
        per-line path then finds and names each problem."""
        if self.schema is None:
            return None
        try:
            table = pajson.read_json(
                io.BytesIO(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pajson.ParseOptions(
                    explicit_schema=self.schema, unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        lines_no = _line_index(data, first)
        if table.num_rows != len(lines_no):
            return None
        cols = {k: table.column(k).combine_chunks() for k in self.include}
        return _Raw(cols, lines_no, [], self.lines.progress)

    def close(self) -> None:
        self.lines.close()


@dataclass
class _JsonChunk:
    objs: list[dict[str, Any]]
    lines: list[int]
    malformed: list[tuple[int, str]]
    progress: float


class _BadJson:
    def __init__(self, message: str) -> None:
        self.message = message


def _json_column(values: list[Any]) -> pa.Array:
    """Values of one key as an Arrow array (mixed types become strings)."""
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        arr = None
    if arr is not None and not (pa.types.is_struct(arr.type) or pa.types.is_list(arr.type)):
        if pa.types.is_boolean(arr.type):
            return pa.array([None if v is None else "bool" for v in values], pa.string())
        return arr
    return pa.array(
        [None if v is None else (v if isinstance(v, str) else _json_text(v)) for v in values],
        pa.string(),
    )


def _json_text(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if v == v else "nan"
    return orjson.dumps(v).decode() if isinstance(v, dict | list | bool) else str(v)


class _ParquetRaw:
    """Parquet: record batches of ``chunk_rows``; rows are addressed by 0-based index."""

    def __init__(self, path: Path, chunk_rows: int, display: str) -> None:
        self.display = display
        try:
            self.file = pq.ParquetFile(str(path))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ReplayFileError(f"{display}: not a readable Parquet file: {exc}") from None
        self.names: list[str | tuple[str, str]] = list(self.file.schema_arrow.names)
        self.keys = [str(n) for n in self.names]
        self.include: list[str] = []
        self.total = max(self.file.metadata.num_rows, 1)
        self.offset = 0
        self.chunk_rows = chunk_rows
        self._it: Iterator[pa.RecordBatch] | None = None

    def read(self) -> _Raw | None:
        if self._it is None:
            self._it = self.file.iter_batches(batch_size=self.chunk_rows, columns=self.include)
        batch = next(self._it, None)
        if batch is None:
            return None
        n = batch.num_rows
        lines = np.arange(self.offset, self.offset + n, dtype=np.int64)
        self.offset += n
        cols = {k: batch.column(k) for k in self.include}
        return _Raw(cols, lines, [], min(self.offset / self.total, 1.0))

    def close(self) -> None:
        self.file.close()


# ----------------------------------------------------------------------------- validation


def iso(ts: int) -> str:
    """Format UTC nanoseconds as ISO-8601 (``2024-01-02T14:30:00.000000001Z``)."""
    sec, ns = divmod(int(ts), NS)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return base + (f".{ns:09d}".rstrip("0") if ns else "") + "Z"


def _value(arr: pa.Array, i: int) -> Any:
    v = arr[i].as_py()
    return v.strip() if isinstance(v, str) else v


def _num_problem(name: str, raw: Any, value: float, *, positive: bool) -> str:
    if raw is None or raw == "":
        return f"{name} is missing"
    if isinstance(raw, str) and np.isnan(value) and raw.lower() not in ("nan", "-nan", "+nan"):
        try:
            float(raw)
        except ValueError:
            return f"{name} {raw!r} is not a number"
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return f"{name} {raw!r} is not a number"
    if not np.isfinite(value):
        return f"{name} {raw} is not finite"
    if positive and value <= 0:
        return f"{name} {raw} is not positive"
    if value < 0:
        return f"{name} {raw} is negative"
    return f"{name} {raw!r} is invalid"


class _Samples:
    """Keep readable messages for the first few bad rows only (a bad file may have millions)."""

    def __init__(self, limit: int) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class _Rows:
    """Shared by the trade and bar validators: stop/skip policy and bad-row bookkeeping."""

    def __init__(self, display: str, container: Container, skip: bool, samples: _Samples) -> None:
        self.display = display
        self.parquet = container == "parquet"
        self.skip = skip
        self.samples = samples
        self.key_max = np.iinfo(np.int64).min

    def where(self, line: int) -> str:
        return f"{self.display}:row {line}" if self.parquet else f"{self.display}:{line}"

    def keys(self, ts: I64) -> I64:
        if not len(ts):
            return ts.copy()
        key = np.maximum.accumulate(np.maximum(ts, self.key_max))
        self.key_max = int(key[-1])
        return key

    def settle(
        self,
        lines: I64,
        reason: NDArray[np.uint8],
        malformed: list[tuple[int, str]],
        explain: Any,
    ) -> tuple[B, dict[str, int], list[BadRow], BadRow | None, int]:
        """Apply the policy: return (rows kept, skipped by reason, samples, stop, rows consumed).

        ``reason[i]`` is 0 for a good row, else a reason code; ``explain(i)`` describes row i.
        """
        bad_pos = np.flatnonzero(reason)
        if not self.skip:
            first_arr = int(lines[bad_pos[0]]) if len(bad_pos) else None
            first_mal = min(malformed) if malformed else None
            if first_arr is None and first_mal is None:
                return reason == 0, {}, [], None, len(lines)
            if first_mal is not None and (first_arr is None or first_mal[0] < first_arr):
                line, msg = first_mal
                stop = BadRow(self.where(line), line, "malformed", msg)
            else:
                i = int(bad_pos[0])
                line = int(lines[i])
                stop = BadRow(self.where(line), line, _CODE_REASONS[int(reason[i])], explain(i))
            keep = (reason == 0) & (lines < stop.line)
            consumed = int(np.count_nonzero(lines <= stop.line))
            consumed += sum(1 for ln, _ in malformed if ln <= stop.line)
            return keep, {stop.reason: 1}, [stop], stop, consumed
        skipped: dict[str, int] = {}
        if len(bad_pos):
            codes, counts = np.unique(reason[bad_pos], return_counts=True)
            for c, k in zip(codes.tolist(), counts.tolist(), strict=True):
                skipped[_CODE_REASONS[c]] = k
        if malformed:
            skipped["malformed"] = skipped.get("malformed", 0) + len(malformed)
        samples: list[BadRow] = []
        cand = [(int(lines[i]), int(i)) for i in bad_pos[: self.samples.left]]
        cand += [(ln, -1 - j) for j, (ln, _) in enumerate(malformed[: self.samples.left])]
        for line, i in sorted(cand):
            if not self.samples.take():
                break
            if i >= 0:
                samples.append(
                    BadRow(self.where(line), line, _CODE_REASONS[int(reason[i])], explain(i))
                )
            else:
                samples.append(BadRow(self.where(line), line, "malformed", malformed[-1 - i][1]))
        return reason == 0, skipped, samples, None, len(lines) + len(malformed)


def _mark(reason: NDArray[np.uint8], mask: B, name: str) -> None:
    reason[(reason == 0) & mask] = _REASON_CODES[name]


def _symbol_codes(arr: pa.Array) -> tuple[I32, list[str], B]:
    if pa.types.is_dictionary(arr.type) and _is_text(arr.type.value_type):
        # Clean the (few) dictionary values, then remap the codes: no per-row string work.
        names: list[str] = []
        where: dict[str, int] = {}
        lut = np.full(len(arr.dictionary) + 1, -1, np.int32)
        for j, v in enumerate(arr.dictionary.to_pylist()):
            v = v.strip() if isinstance(v, str) else v
            if v:
                lut[j] = where.setdefault(v, len(where))
                if lut[j] == len(names):
                    names.append(v)
        idx = np.asarray(arr.indices.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        codes = lut[idx]
        bad = codes < 0
        return np.where(bad, 0, codes).astype(np.int32), names or [""], bad
    arr = _decode(arr)
    if not _is_text(arr.type):
        arr = arr.cast(pa.string())
    arr = _blank_to_null(arr)
    enc = pc.dictionary_encode(arr)
    codes = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False), np.int32)
    names = [str(x) for x in enc.dictionary.to_pylist()]
    return codes, names, _nulls(arr)


class _TradeRows(_Rows):
    """Validate trade/quote rows and turn them into a :class:`Chunk`."""

    def __init__(
        self,
        layout: TradeLayout,
        display: str,
        container: Container,
        *,
        symbol: str | None,
        only: frozenset[str] | None,
        skip: bool,
        out_of_order: str,
        tz: str,
        samples: _Samples,
    ) -> None:
        super().__init__(display, container, skip, samples)
        self.layout = layout
        self.symbol = symbol
        self.only = only if layout.symbol is not None else None
        self.check_order = out_of_order == "reject"
        self.tz = tz
        self.prev_ts = np.iinfo(np.int64).min

    def columns(self) -> list[str]:
        lay = self.layout
        keys = [lay.ts, lay.price, lay.size]
        keys += [lay.symbol] if lay.symbol else []
        keys += list(lay.quote or ())
        return keys

    def column_types(self) -> dict[str, pa.DataType]:
        lay = self.layout
        types = {k: pa.float64() for k in (lay.price, lay.size, *(lay.quote or ()))}
        if lay.symbol:
            types[lay.symbol] = pa.dictionary(pa.int32(), pa.string())
        return types

    def __call__(self, raw: _Raw) -> Chunk:
        lay = self.layout
        cols = raw.cols
        n = len(raw.lines)
        ts, ts_bad = ts_column(cols[lay.ts], self.tz)
        if lay.symbol is not None:
            codes, names, sym_bad = _symbol_codes(cols[lay.symbol])
        else:
            codes, names, sym_bad = np.zeros(n, np.int32), [self.symbol or ""], np.zeros(n, bool)
        active = np.ones(n, bool)
        if self.only is not None:
            allowed = [i for i, nm in enumerate(names) if nm in self.only]
            active = np.isin(codes, allowed) & ~sym_bad
        price, p_null, p_unp = float_column(cols[lay.price])
        size, s_null, s_unp = float_column(cols[lay.size])
        has_trade = ~(p_null & s_null)
        quote = None
        has_quote = np.zeros(n, bool)
        if lay.quote is not None:
            quote = [float_column(cols[k]) for k in lay.quote]
            q_null = np.column_stack([q[1] for q in quote])
            has_quote = np.asarray(~q_null.all(axis=1), dtype=bool)
        reason = np.zeros(n, np.uint8)
        _mark(reason, ts_bad, "bad_ts")
        _mark(reason, sym_bad, "bad_symbol")
        with np.errstate(invalid="ignore"):
            price_bad = has_trade & (p_null | p_unp | ~np.isfinite(price) | ~(price > 0))
            _mark(reason, price_bad | (~has_trade & ~has_quote), "bad_price")
            _mark(
                reason, has_trade & (s_null | s_unp | ~np.isfinite(size) | (size < 0)), "bad_size"
            )
            if quote is not None:
                (bp, _, bp_u), (bs, _, bs_u), (ap, _, ap_u), (az, _, az_u) = quote
                vals = np.column_stack([bp, bs, ap, az])
                q_bad = (
                    q_null.any(axis=1)
                    | bp_u | bs_u | ap_u | az_u
                    | ~np.isfinite(vals).all(axis=1)
                    | ~(bp > 0) | ~(ap > 0) | (bs < 0) | (az < 0) | (bp > ap)
                )  # fmt: skip
                _mark(reason, has_quote & q_bad, "bad_quote")
        reason[~active] = 0
        excl = np.zeros(0, np.int64)
        ok_idx = np.flatnonzero(active & (reason == 0))
        if self.check_order and len(ok_idx):
            t = ts[ok_idx]
            excl = np.empty_like(t)
            excl[0] = self.prev_ts
            excl[1:] = np.maximum.accumulate(t)[:-1]
            excl = np.maximum(excl, self.prev_ts)
            late = t < excl
            reason[ok_idx[late]] = _REASON_CODES["out_of_order"]

        def explain(i: int) -> str:
            r = _CODE_REASONS[int(reason[i])]
            if r == "bad_ts":
                return ts_problem(raw.value(lay.ts, i), self.tz)
            if r == "bad_symbol":
                return "symbol is missing"
            if r == "bad_price":
                if not has_trade[i] and not has_quote[i]:
                    return "price is missing"
                return _num_problem("price", raw.value(lay.price, i), price[i], positive=True)
            if r == "bad_size":
                return _num_problem("size", raw.value(lay.size, i), size[i], positive=False)
            if r == "bad_quote":
                return self._quote_problem(raw, i)
            prev = int(excl[int(np.searchsorted(ok_idx, i))])
            return (
                f"ts {iso(ts[i])} is earlier than the previous row's {iso(prev)} "
                '(the file must be sorted by ts; out_of_order = "allow" replays it as is)'
            )

        keep, skipped, samples, stop, consumed = self.settle(
            raw.lines, reason, raw.malformed, explain
        )
        keep &= active
        sel = np.flatnonzero(keep)
        out_ts = ts[sel]
        if self.check_order and len(sel):
            self.prev_ts = max(self.prev_ts, int(out_ts.max()))
        trade = has_trade[sel]
        # Keep only the symbols of published rows (not those of filtered-out or bad rows).
        present = np.zeros(len(names), bool)
        present[codes[sel]] = True
        remap = (np.cumsum(present) - 1).astype(np.int32)
        chunk = Chunk(
            symbols=[nm for nm, used in zip(names, present.tolist(), strict=True) if used],
            sym=remap[codes[sel]],
            ts=out_ts,
            key=self.keys(out_ts),
            price=price[sel],
            size=size[sel],
            flags=int(Flag.REPLAY),
            trade=None if trade.all() else trade,
            rows=consumed,
            skipped=skipped,
            bad=samples,
            stop=stop,
            progress=1.0 if stop is None and raw.progress >= 1.0 else raw.progress,
        )
        if quote is not None and has_quote[sel].any():
            chunk.quote = has_quote[sel]
            chunk.touch = (quote[0][0][sel], quote[1][0][sel], quote[2][0][sel], quote[3][0][sel])
        return chunk

    def _quote_problem(self, row: _Raw, i: int) -> str:
        assert self.layout.quote is not None
        raw = {f: row.value(k, i) for f, k in zip(QUOTE_FIELDS, self.layout.quote, strict=True)}
        missing = [f for f, v in raw.items() if v is None or v == ""]
        if missing:
            return f"quote is incomplete: {', '.join(missing)} missing"
        vals: dict[str, float] = {}
        for f, v in raw.items():
            try:
                vals[f] = float(v)
            except (TypeError, ValueError):
                return f"{f} {v!r} is not a number"
            if not np.isfinite(vals[f]):
                return f"{f} {v} is not finite"
        for f in ("bid_px", "ask_px"):
            if vals[f] <= 0:
                return f"{f} {raw[f]} is not positive"
        for f in ("bid_sz", "ask_sz"):
            if vals[f] < 0:
                return f"{f} {raw[f]} is negative"
        return f"crossed quote: bid_px {raw['bid_px']} > ask_px {raw['ask_px']}"


class _BarRows(_Rows):
    """Validate OHLCV rows and turn each bar into four synthetic trades."""

    def __init__(
        self,
        layout: BarLayout,
        display: str,
        container: Container,
        *,
        symbol: str | None,
        only: frozenset[str] | None,
        skip: bool,
        out_of_order: str,
        tz: str,
        interval_ns: int | None,
        samples: _Samples,
    ) -> None:
        super().__init__(display, container, skip, samples)
        self.layout = layout
        self.tz = tz
        self.check_order = out_of_order == "reject"
        self.tickers: list[tuple[str, dict[str, str]]] = []
        named = [t for t, _ in layout.tickers if t]
        for ticker, fields in layout.tickers:
            if ticker is None:
                if not symbol:
                    raise ReplayFileError(
                        f"{display}: an OHLCV file names no ticker; give the symbol "
                        '(--symbol AAPL, or symbol = "AAPL" in [sources.replay])'
                    )
                self.tickers.append((symbol, fields))
            elif only is None or ticker in only:
                self.tickers.append((ticker, fields))
        if not self.tickers:
            raise ReplayFileError(
                f"{display}: the file's tickers ({', '.join(named)}) do not include "
                f"{', '.join(sorted(only or ()))}"
            )
        self.interval_ns = interval_ns
        self.daily = interval_ns is not None and interval_ns >= DAY_NS
        self.prev_open = np.iinfo(np.int64).min
        self.note = ""

    def columns(self) -> list[str]:
        keys = [self.layout.time]
        for _, fields in self.tickers:
            keys += list(fields.values())
        return keys

    def column_types(self) -> dict[str, pa.DataType]:
        return {k: pa.float64() for _, fields in self.tickers for k in fields.values()}

    def infer_interval(self, raw: _Raw | None) -> None:
        """Set the bar interval from the smallest gap between the first chunk's bars."""
        if self.interval_ns is not None:
            self.note = f"bar interval {_span(self.interval_ns)} (configured)"
            return
        gaps = np.zeros(0, np.int64)
        if raw is not None:
            t, bad = ts_column(raw.cols[self.layout.time], self.tz)
            gaps = np.diff(np.unique(t[~bad])).astype(np.int64)
            gaps = gaps[gaps > 0]
        if len(gaps):
            gap = int(gaps.min())
            if gap >= 20 * 3600 * NS:  # daily or longer (23 h or 25 h across a DST change)
                self.interval_ns = max(1, round(gap / DAY_NS)) * DAY_NS
            else:
                self.interval_ns = gap
            self.note = f"bar interval {_span(self.interval_ns)} (inferred from the bar times)"
        else:
            self.interval_ns = DAY_NS if self.layout.time_name == "date" else 60 * NS
            self.note = (
                f"bar interval {_span(self.interval_ns)} (assumed from the column name "
                f"{self.layout.time_name!r}: fewer than two bars to infer it from; set "
                "bar_interval to be sure)"
            )
        self.daily = self.interval_ns >= DAY_NS

    def __call__(self, raw: _Raw) -> Chunk:
        assert self.interval_ns is not None
        iv = self.interval_ns
        cols = raw.cols
        n = len(raw.lines)
        tcol = cols[self.layout.time]
        t, t_bad = date_column(tcol) if self.daily else ts_column(tcol, self.tz)
        k = len(self.tickers)
        vals = {f: np.empty((k, n)) for f in BAR_FIELDS}
        empty = np.zeros((k, n), bool)
        bad_bar = np.zeros((k, n), bool)
        with np.errstate(invalid="ignore"):
            for j, (_, fields) in enumerate(self.tickers):
                nulls = np.zeros((4, n), bool)
                unparse = np.zeros(n, bool)
                for r, f in enumerate(("open", "high", "low", "close")):
                    vals[f][j], nulls[r], u = float_column(cols[fields[f]])
                    unparse |= u
                if "volume" in fields:
                    v, v_null, v_unp = float_column(cols[fields["volume"]])
                else:
                    v, v_null, v_unp = np.zeros(n), np.zeros(n, bool), np.zeros(n, bool)
                vals["volume"][j] = v
                o, h, lo, c = (vals[f][j] for f in ("open", "high", "low", "close"))
                empty[j] = nulls.all(axis=0) & ~unparse & (v_null | (v == 0))
                bad_bar[j] = ~empty[j] & (
                    nulls.any(axis=0)
                    | unparse
                    | ~np.isfinite(np.stack([o, h, lo, c])).all(axis=0)
                    | ~(np.minimum.reduce([o, h, lo, c]) > 0)
                    | (h < np.maximum.reduce([o, lo, c]))
                    | (lo > np.minimum.reduce([o, h, c]))
                    | v_null | v_unp | ~np.isfinite(v) | (v < 0)
                )  # fmt: skip
        reason = np.zeros(n, np.uint8)
        _mark(reason, t_bad, "bad_ts")
        order_prev: dict[int, int] = {}
        if self.check_order:
            idx = np.flatnonzero(reason == 0)
            tv = t[idx]
            first_ok = (
                len(tv) == 0 or self.prev_open <= -(2**62) or int(tv[0]) >= self.prev_open + iv
            )
            fine = first_ok and bool((np.diff(tv) >= iv).all())
            if not fine:
                prev = self.prev_open
                for i, ti in zip(idx.tolist(), tv.tolist(), strict=True):
                    if prev > -(2**62) and ti < prev + iv:
                        reason[i] = _REASON_CODES["out_of_order"]
                        order_prev[i] = prev
                    else:
                        prev = ti
        _mark(reason, np.asarray(bad_bar.any(axis=0), dtype=bool), "bad_bar")

        def explain(i: int) -> str:
            r = _CODE_REASONS[int(reason[i])]
            if r == "bad_ts":
                return ts_problem(raw.value(self.layout.time, i), self.tz)
            if r == "out_of_order":
                return (
                    f"bar at {iso(t[i])} starts before the previous bar at "
                    f"{iso(order_prev[i])} ends (bar interval {_span(iv)}; the file must be "
                    "sorted by time)"
                )
            j = int(np.flatnonzero(bad_bar[:, i])[0])
            return self._bar_problem(raw, j, i)

        # A row holds one bar per ticker: with the skip policy only the bad bars are skipped.
        row_reason = reason.copy()
        row_reason[(reason == _REASON_CODES["bad_bar"])] = 0
        if self.skip:
            keep, skipped, samples, stop, consumed = self.settle(
                raw.lines, reason, raw.malformed, explain
            )
            bars_bad = int(np.count_nonzero(bad_bar[:, row_reason == 0]))
            if bars_bad:
                skipped["bad_bar"] = bars_bad
            keep = row_reason == 0
        else:
            keep, skipped, samples, stop, consumed = self.settle(
                raw.lines, reason, raw.malformed, explain
            )
        good = keep[None, :] & ~bad_bar & ~empty
        if self.check_order and keep.any():
            self.prev_open = max(self.prev_open, int(t[keep].max()))
        batches = []
        for j, (_, _) in enumerate(self.tickers):
            m = good[j]
            if not m.any():
                continue
            batches.append(
                bars_to_trades(
                    "",
                    j,
                    t[m],
                    iv,
                    vals["open"][j][m],
                    vals["high"][j][m],
                    vals["low"][j][m],
                    vals["close"][j][m],
                    vals["volume"][j][m],
                    0,
                    flags=int(Flag.SYNTHETIC | Flag.REPLAY),
                )
            )
        if batches:
            sym = np.concatenate([b.symbol_id for b in batches]).astype(np.int32)
            ts = np.concatenate([b.ts_event for b in batches])
            price = np.concatenate([b.price for b in batches])
            size = np.concatenate([b.size for b in batches])
            if len(batches) > 1:
                order = np.argsort(ts, kind="stable")
                sym, ts, price, size = sym[order], ts[order], price[order], size[order]
        else:
            sym, ts = np.zeros(0, np.int32), np.zeros(0, np.int64)
            price, size = np.zeros(0), np.zeros(0)
        return Chunk(
            symbols=[name for name, _ in self.tickers],
            sym=sym,
            ts=ts,
            key=self.keys(ts),
            price=price,
            size=size,
            flags=int(Flag.SYNTHETIC | Flag.REPLAY),
            rows=consumed,
            skipped=skipped,
            bad=samples,
            stop=stop,
            progress=1.0 if stop is None and raw.progress >= 1.0 else raw.progress,
            empty_bars=int(np.count_nonzero(empty[:, keep])),
        )

    def _bar_problem(self, row: _Raw, j: int, i: int) -> str:
        ticker, fields = self.tickers[j]
        raw = {f: row.value(k, i) for f, k in fields.items()}
        v: dict[str, float] = {}
        for f in BAR_FIELDS:
            if f not in raw:
                continue
            if raw[f] is None or raw[f] == "":
                return f"{ticker}: {f} is missing"
            try:
                v[f] = float(raw[f])
            except (TypeError, ValueError):
                return f"{ticker}: {f} {raw[f]!r} is not a number"
            if not np.isfinite(v[f]):
                return f"{ticker}: {f} {raw[f]} is not finite"
            if f != "volume" and v[f] <= 0:
                return f"{ticker}: {f} {raw[f]} is not positive"
            if v[f] < 0:
                return f"{ticker}: {f} {raw[f]} is negative"
        o, h, lo, c = v["open"], v["high"], v["low"], v["close"]
        if h < max(o, lo, c):
            return f"{ticker}: high {raw['high']} is below open/low/close ({o}, {lo}, {c})"
        return f"{ticker}: low {raw['low']} is above open/high/close ({o}, {h}, {c})"


def _span(ns: int) -> str:
    for unit, size in (("d", DAY_NS), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns / NS:g}s"


def parse_interval(text: str) -> int:
    """Parse a bar interval such as ``1m``, ``90s``, ``1h``, ``1d``, ``1wk`` into nanoseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|min|h|d|w|wk)\s*", text.lower())
    if m is None or int(m.group(1)) <= 0:
        raise ValueError(f"bad bar interval {text!r}; expected e.g. 1m, 5m, 1h, 1d")
    size = {"ms": 10**6, "s": NS, "m": 60 * NS, "min": 60 * NS, "h": 3600 * NS, "d": DAY_NS}
    size |= {"w": 7 * DAY_NS, "wk": 7 * DAY_NS}
    return int(m.group(1)) * size[m.group(2)]


# ----------------------------------------------------------------------------- the reader


class ReplayReader:
    """Iterate a replay file as validated :class:`Chunk` objects, in file order.

    Parameters
    ----------
    path
        The file.
    fmt
        ``auto`` (extension, magic bytes and columns), ``csv``, ``parquet``, ``jsonl`` or
        ``ohlcv`` (bars, CSV unless the extension says Parquet/JSON lines).
    symbol
        Symbol of a file without one (a one-ticker OHLCV file, trades with no symbol column);
        for files with symbols, replay only this one.
    only
        Replay only these symbols (files with symbols).
    chunk_rows
        Lines (or Parquet rows) per chunk.
    skip_bad_rows
        Skip and count bad rows instead of stopping at the first.
    out_of_order
        ``reject`` (a row earlier than the previous one is bad) or ``allow``.
    timezone
        Time zone of timestamps written without an offset.
    bar_interval_ns
        Interval of OHLCV bars (None: inferred from the first chunk).
    display
        How to name the file in messages (default: the path as given).

    Raises
    ------
    ReplayFileError
        If the file is missing, unreadable, of an unknown layout, or lacks required columns.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fmt: Format = "auto",
        symbol: str | None = None,
        only: frozenset[str] | None = None,
        chunk_rows: int = 32_768,
        skip_bad_rows: bool = False,
        out_of_order: str = "reject",
        timezone: str = "UTC",
        bar_interval_ns: int | None = None,
        display: str | None = None,
        sample_limit: int = 10,
    ) -> None:
        self.path = Path(path)
        self.display = display or str(path)
        if not self.path.exists():
            raise ReplayFileError(f"{self.display}: no such file")
        if not self.path.is_file():
            raise ReplayFileError(f"{self.display}: not a file")
        self.container, codec = detect_container(self.path, fmt)
        self._lock = threading.Lock()
        self._done = False
        raw: _CsvRaw | _JsonlRaw | _ParquetRaw
        try:
            if self.container == "parquet":
                raw = _ParquetRaw(self.path, chunk_rows, self.display)
            elif self.container == "jsonl":
                raw = _JsonlRaw(self.path, codec, chunk_rows, self.display)
            else:
                raw = _CsvRaw(self.path, codec, chunk_rows, self.display)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ReplayFileError(f"{self.display}: cannot read: {exc}") from None
        self._raw = raw
        try:
            self.layout = resolve_layout(
                raw.names, raw.keys, force_bars=fmt == "ohlcv", where=self.display
            )
            samples = _Samples(sample_limit)
            self._rows: _TradeRows | _BarRows
            if isinstance(self.layout, TradeLayout):
                if self.layout.symbol is None and not symbol:
                    raise ReplayFileError(
                        f"{self.display}: no symbol column; give the symbol (--symbol AAPL, or "
                        'symbol = "AAPL" in [sources.replay])'
                    )
                self.kind: Kind = "trades"
                self._rows = _TradeRows(
                    self.layout,
                    self.display,
                    self.container,
                    symbol=symbol,
                    only=_only(symbol, only),
                    skip=skip_bad_rows,
                    out_of_order=out_of_order,
                    tz=timezone,
                    samples=samples,
                )
            else:
                self.kind = "bars"
                self._rows = _BarRows(
                    self.layout,
                    self.display,
                    self.container,
                    symbol=symbol,
                    only=_only(symbol, only) if any(t for t, _ in self.layout.tickers) else None,
                    skip=skip_bad_rows,
                    out_of_order=out_of_order,
                    tz=timezone,
                    interval_ns=bar_interval_ns,
                    samples=samples,
                )
            raw.include = list(dict.fromkeys(self._rows.columns()))
            if isinstance(raw, _CsvRaw):
                raw.types = self._rows.column_types()
            self._first: _Raw | None = None
            if isinstance(self._rows, _BarRows):
                self._first = raw.read()
                self._rows.infer_interval(self._first)
        except BaseException:
            raw.close()
            raise

    @property
    def bar_interval_ns(self) -> int | None:
        """Interval of the bars (bar files only)."""
        return self._rows.interval_ns if isinstance(self._rows, _BarRows) else None

    def describe(self) -> str:
        """A one-line description: container, kind and notable choices."""
        if isinstance(self._rows, _BarRows):
            tickers = ", ".join(t for t, _ in self._rows.tickers)
            return f"{self.container.upper()} OHLCV bars of {tickers}; {self._rows.note}"
        lay = self._rows.layout
        what = "trades and quotes" if lay.quote else "trades"
        extra = f"; ignoring columns {', '.join(lay.ignored)}" if lay.ignored else ""
        return f"{self.container.upper()} {what}{extra}"

    def next_chunk(self) -> Chunk | None:
        """Read, parse and validate the next chunk (None at the end, or after a stop)."""
        with self._lock:
            if self._done:
                return None
            raw = self._first if self._first is not None else self._raw.read()
            self._first = None
            if raw is None:
                self._done = True
                return None
            chunk = self._rows(raw)
            if chunk.stop is not None:
                self._done = True
            return chunk

    def __iter__(self) -> Iterator[Chunk]:
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    def close(self) -> None:
        """Close the file (waits for a read in progress)."""
        with self._lock:
            self._done = True
            self._raw.close()

    def __enter__(self) -> ReplayReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _only(symbol: str | None, only: frozenset[str] | None) -> frozenset[str] | None:
    if symbol:
        return frozenset({symbol})
    return only
