"""History queries: the store's cold tiers merged with the engine's hot ring, with no gap and
no duplicate at the seam.

Cold tiers, read in the order data flows through them (so a row moving between tiers while
we read is seen at least once, never missed): the spool (accepted, not yet flushed), the
outbox (S3 mode: parts not yet uploaded), the store itself (local folder or S3; parts and
compacted files). Rows are de-duplicated on their identity (:data:`storage.DEDUPE_KEYS`).

Hot data is the engine's ring of the last ``market.ring_capacity`` trades per symbol and its
last ``market.bar_capacity`` closed bars. The *seam* is the oldest hot row's ``ts_event``:
hot rows cover ``[seam, to)``, the cold tiers ``[from, seam]`` (inclusive, so the rows at
the seam come from both and are de-duplicated: ticks by source sequence number and time,
bars by open time). A query starting after the seam touches no file.

Why pyarrow and not DuckDB: pyarrow is already a dependency (it writes the files); we list
the files to read ourselves (date partitions from the range, compacted files by symbol
name), read them through boto3 (the same credentials, endpoint and retries as uploads) and
let pyarrow skip row groups by their statistics. DuckDB would add a large dependency whose
S3 support (the httpfs extension) is downloaded at run time and has its own credential chain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from tickserver import layout
from tickserver.storage import (
    SCHEMAS,
    Decoded,
    LocalStore,
    ObjectStore,
    RecordError,
    StoreError,
    build_tables,
    decode_record,
    dedupe_sorted,
    read_filtered,
)

if TYPE_CHECKING:
    from tickserver.api.market import MarketView

Progress = Callable[[int, int], None]

MAX_HISTORY_ROWS = 1_000_000


class StoreReader:
    """Read one symbol's rows of a time range from every cold tier.

    Parameters
    ----------
    primary
        The store (``LocalStore`` or ``S3Store``).
    outbox
        S3 mode: the local folder of parts not yet uploaded.
    cache
        S3 mode: local copies of uploaded parts (read instead of downloading).
    pending
        Returns the spooled records not yet flushed (``StoreSink.pending_records``).
    """

    def __init__(
        self,
        primary: ObjectStore,
        *,
        outbox: LocalStore | None = None,
        cache: LocalStore | None = None,
        pending: Callable[[], list[bytes]] | None = None,
        threads: int = 8,
    ) -> None:
        self.primary = primary
        self.outbox = outbox
        self.cache = cache
        self.pending = pending
        self.threads = threads

    def read(
        self,
        kind: str,
        *,
        symbol: str,
        start_ns: int,
        end_ns: int,
        interval: str | None = None,
        progress: Progress | None = None,
        max_rows: int | None = None,
        newest: bool = False,
    ) -> pa.Table:
        """Return the rows of ``symbol`` with ``start_ns <= ts_event < end_ns``, sorted by
        ``ts_event`` and de-duplicated.

        With ``max_rows``, whole days of the store stop being read once at least that many
        rows are in hand, oldest days first (newest first with ``newest``): the result then
        holds at least the ``max_rows`` oldest (newest) rows of the range, and memory stays
        bounded however long the range.

        Raises
        ------
        StoreError
            If the store cannot be read (S3 unreachable, access denied, …).
        """
        if end_ns <= start_ns:
            return SCHEMAS[kind].empty_table()
        parts: list[pa.Table] = []
        if self.pending is not None:
            parts.append(
                self._from_records(self.pending(), kind, symbol, start_ns, end_ns, interval)
            )
        if self.outbox is not None:
            parts.extend(self._from_store(self.outbox, kind, symbol, start_ns, end_ns, interval))
        parts.extend(
            self._from_store(
                self.primary,
                kind,
                symbol,
                start_ns,
                end_ns,
                interval,
                progress,
                max_rows=max_rows,
                newest=newest,
            )
        )
        parts = [p for p in parts if p.num_rows]
        if not parts:
            return SCHEMAS[kind].empty_table()
        return dedupe_sorted(pa.concat_tables(parts), kind)

    # ------------------------------------------------------------------ tiers
    def _from_records(
        self,
        records: Sequence[bytes],
        kind: str,
        symbol: str,
        start_ns: int,
        end_ns: int,
        interval: str | None,
    ) -> pa.Table:
        subset: list[Decoded] = []
        for raw in records:
            try:
                rec = decode_record(raw)
            except RecordError:
                continue
            if rec.kind != kind or (interval is not None and rec.header.get("iv") != interval):
                continue
            ids = [int(k) for k, v in rec.header["sym"].items() if v == symbol]
            if not ids:
                continue
            ts = rec.cols["ts_event"]
            mask = (ts >= start_ns) & (ts < end_ns) & np.isin(rec.cols["symbol_id"], ids)
            if not mask.any():
                continue
            cols = {k: v[mask] for k, v in rec.cols.items()}
            subset.append(Decoded(rec.kind, int(mask.sum()), rec.header, cols))
        tables = list(build_tables(subset).values())
        return pa.concat_tables(tables) if tables else SCHEMAS[kind].empty_table()

    def _dates(
        self, store: ObjectStore, kind: str, start_ns: int, end_ns: int, iv: str | None
    ) -> list[str]:
        tdir = layout.type_dir(kind, iv)
        lo, hi = layout.date_of_ns(start_ns), layout.date_of_ns(end_ns - 1)
        dates = [d[5:] for d in store.list_dirs(tdir) if d.startswith("date=")]
        return sorted(d for d in dates if lo <= d <= hi)

    def _day_keys(
        self, store: ObjectStore, kind: str, iv: str | None, date: str, symbol: str
    ) -> list[str]:
        keys: list[str] = []
        for key, _size in store.list_files(f"{layout.type_dir(kind, iv)}/date={date}"):
            sym = layout.parse_compacted_name(key)
            if sym is None and layout.parse_part_name(key) is None:
                continue
            if sym is not None and sym != symbol:
                continue
            keys.append(key)
        return keys

    def _from_store(
        self,
        store: ObjectStore,
        kind: str,
        symbol: str,
        start_ns: int,
        end_ns: int,
        interval: str | None,
        progress: Progress | None = None,
        *,
        max_rows: int | None = None,
        newest: bool = False,
    ) -> list[pa.Table]:
        local = isinstance(store, LocalStore)

        def load(key: str) -> pa.Table | None:
            src: Any
            if local:
                assert isinstance(store, LocalStore)
                src = store.path(key)
            elif self.cache is not None and self.cache.path(key).exists():
                src = self.cache.path(key)
            else:
                src = None
            try:
                if src is None:
                    src = store.read(key)
                return read_filtered(src, kind, symbol=symbol, start_ns=start_ns, end_ns=end_ns)
            except FileNotFoundError:
                return None  # moved on (uploaded, compacted): read from its next tier

        dates = self._dates(store, kind, start_ns, end_ns, interval)
        if newest:
            dates.reverse()
        out: list[pa.Table] = []
        rows = 0
        done_days = 0
        pool = None if local else concurrent.futures.ThreadPoolExecutor(self.threads)
        try:
            for date in dates:
                keys = self._day_keys(store, kind, interval, date, symbol)
                if pool is None or len(keys) < 2:
                    results = [load(k) for k in keys]
                else:
                    results = list(pool.map(load, keys))
                day = [t for t in results if t is not None and t.num_rows]
                if any(t is None for t in results) and not local:
                    # A part vanished between listing and reading: a compaction replaced it;
                    # its rows are in a compacted file the first listing may have missed.
                    seen = set(keys)
                    for key in self._day_keys(store, kind, interval, date, symbol):
                        if key not in seen and layout.parse_compacted_name(key) is not None:
                            t = load(key)
                            if t is not None and t.num_rows:
                                day.append(t)
                if day:
                    table = dedupe_sorted(pa.concat_tables(day), kind)
                    out.append(table)
                    rows += table.num_rows
                done_days += 1
                if progress is not None:
                    progress(done_days, len(dates))
                if max_rows is not None and rows >= max_rows:
                    break
        finally:
            if pool is not None:
                pool.shutdown()
        return out


# ----------------------------------------------------------------------------- hot + cold


@dataclass
class HistoryResult:
    """Rows of a history query (GraphQL field names), oldest first."""

    rows: list[dict[str, Any]]
    truncated: bool
    cold_rows: int
    hot_rows: int


def _cols(table: pa.Table, names: Sequence[str]) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    for n in names:
        col = table.column(n).combine_chunks()
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.int64())
        out[n] = col.to_numpy(zero_copy_only=False)
    return out


async def read_cold(
    reader: StoreReader | None,
    kind: str,
    symbol: str,
    start_ns: int,
    end_ns: int,
    interval: str | None = None,
    *,
    max_rows: int | None = None,
    newest: bool = False,
) -> pa.Table:
    """Read cold rows in a worker thread (empty without a store).

    Raises
    ------
    StoreError
        If the store cannot be read.
    """
    if reader is None or end_ns <= start_ns:
        return SCHEMAS[kind].empty_table()
    return await asyncio.to_thread(
        reader.read,
        kind,
        symbol=symbol,
        start_ns=start_ns,
        end_ns=end_ns,
        interval=interval,
        max_rows=max_rows,
        newest=newest,
    )


async def tick_history(
    market: MarketView,
    reader: StoreReader | None,
    symbol: str,
    start_ns: int,
    end_ns: int,
    limit: int,
) -> HistoryResult:
    """Trades of ``symbol`` in ``[start_ns, end_ns)``: ring + store, oldest first."""
    from tickserver.api.market import trade_rows

    sid = market.symbol_id(symbol)
    cap = market.engine.cfg.market.ring_capacity
    hot = market.core.last_trades(sid, cap)  # read on the event loop thread
    hts = np.asarray(hot["ts_event"], dtype=np.int64)
    seam = int(hts[0]) if len(hts) else end_ns
    cold = await read_cold(
        reader, "trades", symbol, start_ns, min(end_ns, seam + 1), max_rows=limit + 1
    )
    c = _cols(cold, ("ts_event", "price", "size", "seq", "flags"))
    hmask = (hts >= max(start_ns, seam)) & (hts < end_ns)
    ts = np.concatenate([c["ts_event"], hts[hmask]])
    price = np.concatenate([c["price"], np.asarray(hot["price"])[hmask]])
    size = np.concatenate([c["size"], np.asarray(hot["size"])[hmask]])
    seq = np.concatenate(
        [c["seq"].astype(np.int64), np.asarray(hot["seq"])[hmask].astype(np.int64)]
    )
    flags = np.concatenate(
        [c["flags"].astype(np.int64), np.asarray(hot["flags"])[hmask].astype(np.int64)]
    )
    order = np.lexsort((seq, ts))
    ts, price, size, seq, flags = ts[order], price[order], size[order], seq[order], flags[order]
    if len(ts) > 1:
        keep = np.concatenate([[True], (ts[1:] != ts[:-1]) | (seq[1:] != seq[:-1])])
        ts, price, size, seq, flags = ts[keep], price[keep], size[keep], seq[keep], flags[keep]
    truncated = len(ts) > limit
    n = min(len(ts), limit)
    rows = trade_rows(symbol, ts[:n], price[:n], size[:n], seq[:n], flags[:n])
    return HistoryResult(rows, truncated, cold.num_rows, int(hmask.sum()))


_BAR_COLS = ("ts_event", "open", "high", "low", "close", "volume", "vwap", "trades")


async def bar_history(
    market: MarketView,
    reader: StoreReader | None,
    symbol: str,
    interval: str,
    start_ns: int,
    end_ns: int,
    limit: int,
    *,
    newest: bool = False,
) -> HistoryResult:
    """Closed bars of ``symbol`` opening in ``[start_ns, end_ns)``: bar ring + store.

    ``limit`` keeps the oldest rows (or the newest with ``newest``).
    """
    from tickserver.api.market import bar_rows

    sid = market.symbol_id(symbol)
    ns = market.interval_ns(interval, allow_tick=False)
    hot = market.core.bars(sid, ns, market.engine.cfg.market.bar_capacity)
    hts = np.asarray(hot["ts_event"], dtype=np.int64)
    seam = int(hts[0]) if len(hts) else end_ns
    cold = await read_cold(
        reader,
        "bars",
        symbol,
        start_ns,
        min(end_ns, seam + 1),
        interval,
        max_rows=limit + 1,
        newest=newest,
    )
    c = _cols(cold, _BAR_COLS)
    hmask = (hts >= max(start_ns, seam)) & (hts < end_ns)
    cols: dict[str, NDArray[Any]] = {}
    for k in _BAR_COLS:
        dtype = np.int64 if k in ("ts_event", "trades") else np.float64
        cols[k] = np.concatenate([c[k].astype(dtype), np.asarray(hot[k])[hmask].astype(dtype)])
    # Same open time in both: keep the hot bar (stable sort puts it after the cold one).
    order = np.argsort(cols["ts_event"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    ts = cols["ts_event"]
    if len(ts) > 1:
        keep = np.concatenate([ts[1:] != ts[:-1], [True]])
        cols = {k: v[keep] for k, v in cols.items()}
    n_all = len(cols["ts_event"])
    truncated = n_all > limit
    if truncated:
        sl = slice(n_all - limit, n_all) if newest else slice(0, limit)
        cols = {k: v[sl] for k, v in cols.items()}
    n = len(cols["ts_event"])
    rows = bar_rows([symbol] * n, interval, cols, final=True)
    return HistoryResult(rows, truncated, cold.num_rows, int(hmask.sum()))


def _range(from_: str | None, to: str | None) -> tuple[int, int]:
    from tickserver.api.market import ApiError, parse_ts
    from tickserver.events import now_ns

    start = parse_ts(from_) if from_ is not None else 0
    end = parse_ts(to) if to is not None else now_ns() + 1
    if end <= start:
        raise ApiError(f"'to' ({to}) must be after 'from' ({from_})", "BAD_ARGUMENT")
    return start, end


async def history_query(
    state: Any,
    market: MarketView,
    symbol: str,
    interval: str,
    from_: str,
    to: str | None,
    limit: int,
) -> HistoryResult:
    """Validate a ``history`` query and run it.

    Raises
    ------
    ApiError
        For a bad argument, an unknown symbol or interval, or an unreadable store
        (``STORE_UNAVAILABLE``).
    """
    from tickserver.api.market import ApiError

    market.symbol_id(symbol)
    ns = market.interval_ns(interval, allow_tick=True)
    market.check_count("limit", limit, MAX_HISTORY_ROWS)
    start, end = _range(from_, to)
    reader = find_reader(state.sinks)
    try:
        if ns == 0:
            return await tick_history(market, reader, symbol, start, end, limit)
        return await bar_history(market, reader, symbol, interval, start, end, limit)
    except StoreError as exc:
        raise ApiError(f"history store unavailable: {exc.reason}", "STORE_UNAVAILABLE") from None


async def ranged_bars(
    state: Any,
    market: MarketView,
    symbol: str,
    interval: str,
    from_: str | None,
    to: str | None,
    last: int,
    *,
    forming: bool,
) -> list[dict[str, Any]]:
    """``bars(symbol, interval, last, forming, from, to)``: the newest ``last`` bars opening
    in ``[from, to)`` (the forming bar last when it opens in the range and ``forming``)."""
    from tickserver.api.market import ApiError, bar_row

    sid = market.symbol_id(symbol)
    ns = market.interval_ns(interval, allow_tick=False)
    market.check_count("last", last)
    start, end = _range(from_, to)
    f = market.core.forming_bar(sid, ns) if forming else None
    take_forming = f is not None and start <= int(f["ts_event"]) < end
    n = last - 1 if take_forming and last else last
    try:
        res = await bar_history(
            market, find_reader(state.sinks), symbol, interval, start, end, n, newest=True
        )
    except StoreError as exc:
        raise ApiError(f"history store unavailable: {exc.reason}", "STORE_UNAVAILABLE") from None
    rows = res.rows
    if take_forming and f is not None and last:
        rows.append(bar_row(symbol, interval, f, final=False))
    return rows


def find_reader(sinks: Sequence[Any]) -> StoreReader | None:
    """The store sink's reader among the app's sinks (None when the store is off)."""
    for sink in sinks:
        reader = getattr(sink, "reader", None)
        if isinstance(reader, StoreReader):
            return reader
    return None


__all__ = [
    "MAX_HISTORY_ROWS",
    "HistoryResult",
    "StoreError",
    "StoreReader",
    "bar_history",
    "find_reader",
    "history_query",
    "ranged_bars",
    "read_cold",
    "tick_history",
]
