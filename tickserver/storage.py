"""The history store's building blocks: spool record codec, Arrow schemas, Parquet parts, and
the two places parts live (a local folder or an S3 bucket via boto3).

A bus batch becomes one spool record (:func:`encode_batch`): a small header (kind, row
count, the names of the symbol ids it uses, the source, the interval or rule names) and the
batch's numpy columns as raw bytes, so appending costs one memcpy per column. Symbol *names*
travel in the record because symbol ids are only stable within one process run.

A flush decodes a run of records (:func:`decode_record`), groups the rows by type, interval
and UTC date, sorts them by (symbol, ts_event) and writes one Parquet file per group
(:func:`build_tables`, :func:`write_parquet`): zstd, dictionary-encoded strings,
delta-encoded timestamps and sequence numbers, one row group per symbol when that keeps row
groups reasonably large, so readers skip other symbols by row-group statistics.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from tickserver import layout
from tickserver._version import __version__
from tickserver.events import BarBatch, QuoteBatch, SignalBatch, TradeBatch

if TYPE_CHECKING:
    from tickserver.config import StoreConfig

log = logging.getLogger("tickserver.store")

UTC_NS = pa.timestamp("ns", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "trades": pa.schema(
        [
            ("symbol", pa.string()),
            ("ts_event", UTC_NS),
            ("ts_init", UTC_NS),
            ("price", pa.float64()),
            ("size", pa.float64()),
            ("seq", pa.int64()),
            ("flags", pa.int32()),
            ("source", pa.string()),
        ]
    ),
    "quotes": pa.schema(
        [
            ("symbol", pa.string()),
            ("ts_event", UTC_NS),
            ("ts_init", UTC_NS),
            ("bid_px", pa.float64()),
            ("bid_sz", pa.float64()),
            ("ask_px", pa.float64()),
            ("ask_sz", pa.float64()),
            ("seq", pa.int64()),
            ("flags", pa.int32()),
            ("source", pa.string()),
        ]
    ),
    "bars": pa.schema(
        [
            ("symbol", pa.string()),
            ("ts_event", UTC_NS),
            ("open", pa.float64()),
            ("high", pa.float64()),
            ("low", pa.float64()),
            ("close", pa.float64()),
            ("volume", pa.float64()),
            ("vwap", pa.float64()),
            ("trades", pa.int64()),
        ]
    ),
    "signals": pa.schema(
        [
            ("symbol", pa.string()),
            ("ts_event", UTC_NS),
            ("rule", pa.string()),
            ("interval", pa.string()),
            ("direction", pa.int8()),
            ("value", pa.float64()),
        ]
    ),
}
"""On-disk schema per record type. Partition values (type, interval, date) are not columns.
Integers are signed (Athena/Hive have no unsigned types); timestamps are UTC nanoseconds."""

DEDUPE_KEYS: dict[str, tuple[str, ...]] = {
    "trades": ("symbol", "source", "seq", "ts_event"),
    "quotes": ("symbol", "source", "seq", "ts_event"),
    "bars": ("symbol", "ts_event"),
    "signals": ("symbol", "rule", "ts_event"),
}
"""Columns that identify a row across tiers (spool, outbox, store, compacted files)."""

_DELTA_COLS = ("ts_event", "ts_init", "seq")
_STRING_COLS = ("symbol", "source", "rule", "interval")

# ----------------------------------------------------------------------------- record codec

_KIND_CODE = {"trades": 1, "quotes": 2, "bars": 3, "signals": 4}
_CODE_KIND = {v: k for k, v in _KIND_CODE.items()}
_BATCH_OF: dict[str, Any] = {
    "trades": TradeBatch,
    "quotes": QuoteBatch,
    "bars": BarBatch,
    "signals": SignalBatch,
}
_REC = struct.Struct("<BBII")  # version, kind, rows, header length
_REC_VERSION = 1

AnyBatch = TradeBatch | QuoteBatch | BarBatch | SignalBatch


class RecordError(ValueError):
    """A spool record cannot be decoded (wrong version or truncated)."""


def kind_of(batch: AnyBatch) -> str:
    """Return the record type of a batch."""
    for kind, cls in _BATCH_OF.items():
        if isinstance(batch, cls):
            return kind
    raise TypeError(f"not a stored batch type: {type(batch).__name__}")


def encode_batch(
    batch: AnyBatch,
    names: Sequence[str] | Callable[[int], str],
    rule_intervals: Mapping[str, str] | None = None,
) -> bytes:
    """Encode a batch as one spool record.

    Parameters
    ----------
    batch
        Trades, quotes, final bars or signals.
    names
        The symbol name of an id: a sequence indexed by id, or a function (``Symbols.name``).
    rule_intervals
        Interval of each signal rule (stored with signals).
    """
    kind = kind_of(batch)
    ids = batch.symbol_id
    present = np.flatnonzero(np.bincount(ids)) if len(ids) else np.empty(0, dtype=np.int64)
    name_of = names if callable(names) else names.__getitem__
    header: dict[str, Any] = {"sym": {str(i): name_of(i) for i in present.tolist()}}
    if isinstance(batch, TradeBatch | QuoteBatch):
        header["src"] = batch.source
    elif isinstance(batch, BarBatch):
        header["iv"] = batch.interval
    else:
        header["rules"] = list(batch.rules)
        ri = rule_intervals or {}
        header["rint"] = [ri.get(r, "") for r in batch.rules]
    head = orjson.dumps(header)
    parts: list[Any] = [_REC.pack(_REC_VERSION, _KIND_CODE[kind], len(batch), len(head)), head]
    for col in type(batch)._dtypes:
        parts.append(np.ascontiguousarray(getattr(batch, col)).data.cast("B"))
    return b"".join(parts)


@dataclass
class Decoded:
    """One decoded spool record: its kind, header and columns (numpy views of the record)."""

    kind: str
    rows: int
    header: dict[str, Any]
    cols: dict[str, NDArray[Any]]


def record_rows(record: bytes) -> int:
    """Return the number of rows in a record without decoding it."""
    if len(record) < _REC.size:
        raise RecordError("spool record shorter than its header")
    return int(_REC.unpack_from(record)[2])


def decode_record(record: bytes) -> Decoded:
    """Decode a spool record made by :func:`encode_batch`.

    Raises
    ------
    RecordError
        If the record is of an unknown version or truncated.
    """
    if len(record) < _REC.size:
        raise RecordError("spool record shorter than its header")
    version, code, rows, hlen = _REC.unpack_from(record)
    if version != _REC_VERSION or code not in _CODE_KIND:
        raise RecordError(f"unknown spool record version {version} / kind {code}")
    kind = _CODE_KIND[code]
    header = orjson.loads(record[_REC.size : _REC.size + hlen])
    pos = _REC.size + hlen
    cols: dict[str, NDArray[Any]] = {}
    for name, dtype in _BATCH_OF[kind]._dtypes.items():
        dt = np.dtype(dtype)
        nbytes = dt.itemsize * rows
        if pos + nbytes > len(record):
            raise RecordError(f"spool record truncated in column {name}")
        cols[name] = np.frombuffer(record, dtype=dt, count=rows, offset=pos)
        pos += nbytes
    return Decoded(kind, rows, header, cols)


# ----------------------------------------------------------------------------- tables

GroupKey = tuple[str, str | None, str]  # kind, interval (bars), date


@dataclass
class _Acc:
    """Rows of one (kind, interval) being gathered from many records."""

    cols: dict[str, list[NDArray[Any]]] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)  # symbol -> code
    sym_codes: list[NDArray[np.int32]] = field(default_factory=list)
    extra: dict[str, list[NDArray[Any]]] = field(default_factory=dict)  # source/rule codes
    dicts: dict[str, dict[str, int]] = field(default_factory=dict)

    def code(self, which: str, value: str) -> int:
        d = self.dicts.setdefault(which, {})
        c = d.get(value)
        if c is None:
            c = d[value] = len(d)
        return c

    def add_col(self, name: str, arr: NDArray[Any]) -> None:
        self.cols.setdefault(name, []).append(arr)

    def add_extra(self, name: str, arr: NDArray[Any]) -> None:
        self.extra.setdefault(name, []).append(arr)


def _lut(mapping: Mapping[str, str], acc: _Acc) -> NDArray[np.int32]:
    top = max((int(k) for k in mapping), default=-1)
    lut = np.zeros(top + 1, dtype=np.int32)
    for k, name in mapping.items():
        code = acc.names.get(name)
        if code is None:
            code = acc.names[name] = len(acc.names)
        lut[int(k)] = code
    return lut


def _dict_array(codes: NDArray[np.int32], values: Sequence[str]) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(codes))


def build_tables(records: Iterable[Decoded]) -> dict[GroupKey, pa.Table]:
    """Turn decoded records into one table per (kind, interval, UTC date), sorted by
    (symbol, ts_event), in the schemas of :data:`SCHEMAS`."""
    accs: dict[tuple[str, str | None], _Acc] = {}
    for rec in records:
        if rec.rows == 0:
            continue
        interval = rec.header.get("iv") if rec.kind == "bars" else None
        acc = accs.setdefault((rec.kind, interval), _Acc())
        lut = _lut(rec.header["sym"], acc)
        acc.sym_codes.append(lut[rec.cols["symbol_id"]])
        c = rec.cols
        n = rec.rows
        if rec.kind in ("trades", "quotes"):
            for name in ("ts_event", "ts_init", "seq", "flags"):
                acc.add_col(name, c[name])
            for name in (
                ("price", "size")
                if rec.kind == "trades"
                else (
                    "bid_px",
                    "bid_sz",
                    "ask_px",
                    "ask_sz",
                )
            ):
                acc.add_col(name, c[name])
            acc.add_extra("source", np.full(n, acc.code("source", rec.header["src"]), np.int32))
        elif rec.kind == "bars":
            for name in ("ts_event", "open", "high", "low", "close", "volume", "vwap", "trades"):
                acc.add_col(name, c[name])
        else:
            rules = rec.header["rules"]
            rint = rec.header.get("rint") or [""] * len(rules)
            rule_lut = np.array([acc.code("rule", r) for r in rules], dtype=np.int32)
            iv_lut = np.array([acc.code("interval", i) for i in rint], dtype=np.int32)
            acc.add_extra("rule", rule_lut[c["rule_id"]])
            acc.add_extra("interval", iv_lut[c["rule_id"]])
            acc.add_col("ts_event", c["ts_event"])
            acc.add_col("direction", c["direction"])
            acc.add_col("value", c["value"])

    out: dict[GroupKey, pa.Table] = {}
    for (kind, interval), acc in accs.items():
        cols = {k: np.concatenate(v) for k, v in acc.cols.items()}
        codes = np.concatenate(acc.sym_codes)
        # Sort symbols by name so files and row groups are in symbol order.
        order_names = sorted(acc.names)
        rank = np.empty(len(acc.names), dtype=np.int32)
        for r, name in enumerate(order_names):
            rank[acc.names[name]] = r
        sym = rank[codes]
        ts = cols["ts_event"]
        days = ts // layout.NS_PER_DAY
        order = _sort_order(sym, ts, days)
        sym = sym[order]
        days = days[order]
        cols = {k: v[order] for k, v in cols.items()}
        extra = {k: np.concatenate(v)[order] for k, v in acc.extra.items()}
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(days)]
        for a, b in zip(starts, ends, strict=True):
            date = layout.date_of_day(int(days[a]))
            arrays = _arrays(kind, cols, extra, acc, sym, order_names, a, b)
            out[(kind, interval, date)] = pa.Table.from_arrays(arrays, schema=SCHEMAS[kind])
    return out


def _sort_order(
    sym: NDArray[np.int32], ts: NDArray[np.int64], days: NDArray[np.int64]
) -> NDArray[np.intp]:
    """Row order by (day, symbol, ts_event), stable.

    The common case (one day, fewer than 32768 symbols, each symbol's rows already in time
    order as they arrived) is a 16-bit radix sort; anything else falls back to lexsort.
    """
    one_day = len(sym) > 0 and bool((days == days[0]).all())
    if one_day and int(sym.max()) < 2**15:
        order = np.argsort(sym.astype(np.int16), kind="stable")
        t = ts[order]
        s = sym[order]
        if not ((t[1:] < t[:-1]) & (s[1:] == s[:-1])).any():
            return order
    return np.lexsort((ts, sym, days))


def _arrays(
    kind: str,
    cols: dict[str, NDArray[Any]],
    extra: dict[str, NDArray[Any]],
    acc: _Acc,
    sym: NDArray[np.int32],
    names: list[str],
    a: int,
    b: int,
) -> list[pa.Array]:
    out: list[pa.Array] = []
    for f in SCHEMAS[kind]:
        if f.name == "symbol":
            out.append(_dict_array(sym[a:b], names))
        elif f.name in extra:
            vals = sorted(acc.dicts[f.name], key=acc.dicts[f.name].__getitem__)
            out.append(_dict_array(extra[f.name][a:b], vals))
        elif f.type == UTC_NS:
            out.append(pa.array(cols[f.name][a:b]).view(UTC_NS))
        else:
            out.append(pa.array(cols[f.name][a:b].astype(f.type.to_pandas_dtype(), copy=False)))
    return out


def write_parquet(
    table: pa.Table,
    sink: str | Path | io.BytesIO,
    *,
    metadata: Mapping[bytes, bytes] | None = None,
    compression_level: int = 3,
    symbol_row_groups: bool = True,
) -> None:
    """Write a table sorted by (symbol, ts_event) as zstd Parquet.

    With ``symbol_row_groups``, each symbol gets its own row group when that keeps row
    groups at a useful size, so a reader filtering one symbol skips the rest by statistics.
    """
    meta = {
        b"tickserver.version": __version__.encode(),
        **(table.schema.metadata or {}),
        **(metadata or {}),
    }
    table = table.replace_schema_metadata(meta)
    names = table.schema.names
    opts: dict[str, Any] = {
        "compression": "zstd",
        "compression_level": compression_level,
        "use_dictionary": [c for c in _STRING_COLS if c in names],
        "column_encoding": {c: "DELTA_BINARY_PACKED" for c in _DELTA_COLS if c in names},
        "write_statistics": True,
    }
    with pq.ParquetWriter(sink, table.schema, **opts) as writer:
        for chunk in _row_group_slices(table, symbol_row_groups):
            writer.write_table(chunk, row_group_size=1 << 20)


def _row_group_slices(table: pa.Table, by_symbol: bool) -> Iterator[pa.Table]:
    n = table.num_rows
    if not by_symbol or n == 0:
        yield table
        return
    sym = table.column("symbol").combine_chunks()
    runs = pc.run_end_encode(sym)
    ends = runs.run_ends.to_numpy()
    if len(ends) == 1 or n // len(ends) < 2_000:
        yield table
        return
    start = 0
    for end in ends.tolist():
        yield table.slice(start, end - start)
        start = end


def parquet_bytes(table: pa.Table, **kwargs: Any) -> bytes:
    """Return ``table`` written by :func:`write_parquet` as bytes."""
    buf = io.BytesIO()
    write_parquet(table, buf, **kwargs)
    return buf.getvalue()


def write_parquet_atomic(table: pa.Table, path: Path, *, fsync: bool = True, **kwargs: Any) -> int:
    """Write Parquet to ``path`` atomically (hidden temp file, fsync, rename); return bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write_parquet(table, str(tmp), **kwargs)
    if fsync:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path.stat().st_size


def read_filtered(
    source: bytes | str | Path,
    kind: str,
    *,
    symbol: str | None,
    start_ns: int | None,
    end_ns: int | None,
) -> pa.Table:
    """Read a part or compacted file, keeping rows of ``symbol`` in ``[start_ns, end_ns)``.

    Row groups are skipped by their statistics (symbol and ``ts_event`` min/max) before any
    data is read; the result has the schema of ``kind``. Reads on the calling thread only
    (callers parallelise across files).
    """
    src: Any = pa.BufferReader(source) if isinstance(source, bytes) else str(source)
    with pq.ParquetFile(src) as pf:
        md = pf.metadata
        names = pf.schema_arrow.names
        i_sym, i_ts = names.index("symbol"), names.index("ts_event")
        keep = []
        for rg in range(md.num_row_groups):
            grp = md.row_group(rg)
            s_sym = grp.column(i_sym).statistics
            s_ts = grp.column(i_ts).statistics
            known = symbol is not None and s_sym is not None and s_sym.has_min_max
            if known and not s_sym.min <= symbol <= s_sym.max:
                continue
            if s_ts is not None and s_ts.has_min_max:
                if start_ns is not None and s_ts.max_raw < start_ns:
                    continue
                if end_ns is not None and s_ts.min_raw >= end_ns:
                    continue
            keep.append(rg)
        if not keep:
            return SCHEMAS[kind].empty_table()
        table = pf.read_row_groups(keep, use_threads=False)
    mask = None
    if symbol is not None:
        mask = pc.equal(table.column("symbol"), symbol)
    ts = table.column("ts_event")
    for op, bound in (("greater_equal", start_ns), ("less", end_ns)):
        if bound is not None:
            m = getattr(pc, op)(ts, pa.scalar(bound, UTC_NS))
            mask = m if mask is None else pc.and_(mask, m)
    if mask is not None:
        table = table.filter(mask)
    return table.replace_schema_metadata(None).cast(SCHEMAS[kind])


# ----------------------------------------------------------------------------- object stores


class StoreError(Exception):
    """The store cannot be reached or refuses; ``reason`` is a short, actionable sentence."""

    def __init__(self, reason: str, *, transient: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class ObjectStore(Protocol):
    """Where parts and compacted files live (keys relative to the store root)."""

    def describe(self) -> str:
        """Where this is, for messages (``/data/store`` or ``s3://bucket/prefix``)."""

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        """Return ``(key, size)`` of every object under ``prefix`` (a directory)."""

    def list_dirs(self, prefix: str) -> list[str]:
        """Return the names of the sub-directories directly under ``prefix``."""

    def read(self, key: str) -> bytes:
        """Return an object's bytes (raise FileNotFoundError if it is gone)."""

    def put_file(self, path: Path, key: str) -> None:
        """Store a local file under ``key`` (replacing it)."""

    def delete(self, key: str) -> None:
        """Delete an object (no error if absent)."""


class LocalStore:
    """A folder on local disk."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        base = self.root / prefix
        out: list[tuple[str, int]] = []
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return out
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir(follow_symlinks=False):
                out.extend(self.list_files(layout.join(prefix, e.name)))
            elif e.name.endswith(".parquet"):
                with contextlib.suppress(FileNotFoundError):
                    out.append((layout.join(prefix, e.name), e.stat().st_size))
        return out

    def list_dirs(self, prefix: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root / prefix) if e.is_dir())
        except FileNotFoundError:
            return []

    def path(self, key: str) -> Path:
        return self.root / key

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put_file(self, path: Path, key: str) -> None:
        dest = self.root / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        with path.open("rb") as src, tmp.open("wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, dest)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / key).unlink()


def s3_reason(exc: BaseException, bucket: str, prefix: str) -> StoreError:
    """Turn a boto3/botocore error into a :class:`StoreError` with an actionable reason."""
    import botocore.exceptions as bex

    where = f"s3://{bucket}/{prefix}".rstrip("/")
    if isinstance(exc, bex.NoCredentialsError):
        return StoreError(
            "no AWS credentials found (boto3's default chain: environment, ~/.aws, "
            "instance role); attach an instance role with s3:PutObject on the bucket"
        )
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchBucket",) or (code == "404" and "Bucket" in str(exc)):
            return StoreError(f"bucket {bucket!r} does not exist (create it or fix s3_bucket)")
        if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
            return StoreError(
                f"access denied to {where} ({code or status}); the credentials need "
                f"s3:PutObject, s3:GetObject and s3:ListBucket on it"
            )
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            return StoreError(f"AWS credentials rejected ({code}); check the instance role")
        if code in ("KMS.NotFoundException", "KMS.DisabledException", "KMSInvalidStateException"):
            return StoreError(f"the KMS key for SSE-KMS is not usable ({code})")
        return StoreError(f"S3 error on {where}: {code or status}: {err.get('Message', exc)}")
    if isinstance(exc, bex.EndpointConnectionError | bex.ConnectTimeoutError):
        return StoreError(f"S3 unreachable ({exc})")
    if isinstance(exc, bex.BotoCoreError | OSError):
        return StoreError(f"S3 request failed: {exc}")
    return StoreError(f"S3 request failed: {exc!r}")


def _root_cause(exc: BaseException) -> BaseException:
    """The botocore error under boto3's transfer wrappers (S3UploadFailedError, …)."""
    import botocore.exceptions as bex

    seen = exc
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, bex.ClientError | bex.BotoCoreError):
            return cur
        seen = cur
        cur = cur.__cause__ or cur.__context__
    return seen if seen is not exc else exc


class S3Store:
    """An S3 bucket and prefix, through boto3 (blocking: call it from a thread).

    Credentials come only from boto3's default chain (environment, shared config, instance
    role). Uploads use boto3's managed transfer (multipart above the threshold).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        sse: str = "none",
        kms_key_id: str | None = None,
        multipart_threshold: int = 64 << 20,
        multipart_chunk: int = 16 << 20,
        max_attempts: int = 5,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config as BotoConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.extra_args: dict[str, str] = {"ContentType": "application/vnd.apache.parquet"}
        if sse != "none":
            self.extra_args["ServerSideEncryption"] = sse
            if kms_key_id:
                self.extra_args["SSEKMSKeyId"] = kms_key_id
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunk,
            max_concurrency=4,
        )
        session = boto3.session.Session()
        self.client = session.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=BotoConfig(
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=16,
            ),
        )
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg: StoreConfig) -> S3Store:
        """Build from ``[store]`` settings."""
        assert cfg.s3_bucket is not None
        return cls(
            cfg.s3_bucket,
            cfg.s3_prefix,
            region=cfg.s3_region,
            endpoint_url=cfg.s3_endpoint_url,
            sse=cfg.s3_sse,
            kms_key_id=cfg.s3_kms_key_id,
            multipart_threshold=cfg.s3_multipart_threshold_bytes,
            multipart_chunk=cfg.s3_multipart_chunk_bytes,
            max_attempts=cfg.s3_max_attempts,
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, rel: str) -> str:
        return layout.join(self.prefix, rel)

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def _error(self, exc: BaseException) -> StoreError:
        return s3_reason(exc, self.bucket, self.prefix)

    def probe(self) -> None:
        """Check the bucket exists and we may list it.

        Raises
        ------
        StoreError
            With the reason (no such bucket, access denied, unreachable, no credentials).
        """
        try:
            prefix = self.prefix + "/" if self.prefix else ""
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:
            raise self._error(exc) from exc

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.key(prefix).rstrip("/") + "/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith(".parquet"):
                        out.append((self._rel(key), int(obj["Size"])))
        except Exception as exc:
            raise self._error(exc) from exc
        return out

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.key(prefix).rstrip("/") + "/"
        out: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                for cp in page.get("CommonPrefixes", []):
                    out.append(cp["Prefix"][len(base) :].rstrip("/"))
        except Exception as exc:
            raise self._error(exc) from exc
        return sorted(out)

    def read(self, key: str) -> bytes:
        import botocore.exceptions as bex

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(key))["Body"]
            data: bytes = body.read()
            return data
        except bex.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.key(key)) from exc
            raise self._error(exc) from exc
        except Exception as exc:
            raise self._error(exc) from exc

    def put_file(self, path: Path, key: str) -> None:
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self.key(key),
                ExtraArgs=self.extra_args,
                Config=self.transfer,
            )
        except Exception as exc:
            raise self._error(_root_cause(exc)) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.key(key))
        except Exception as exc:
            raise self._error(exc) from exc


# ----------------------------------------------------------------------------- misc


def dedupe_sorted(table: pa.Table, kind: str) -> pa.Table:
    """Sort by (ts_event, key columns) and drop rows whose key equals the previous row's."""
    if table.num_rows < 2:
        return table
    keys = [k for k in DEDUPE_KEYS[kind] if k in table.schema.names]
    sort_keys = [("ts_event", "ascending"), *((k, "ascending") for k in keys if k != "ts_event")]
    table = table.sort_by(sort_keys)
    same = np.ones(table.num_rows - 1, dtype=bool)
    for k in keys:
        col = table.column(k)
        arr = (
            col.combine_chunks().dictionary_encode().indices.to_numpy(zero_copy_only=False)
            if pa.types.is_string(col.type)
            else col.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
            if pa.types.is_timestamp(col.type)
            else col.to_numpy()
        )
        same &= arr[1:] == arr[:-1]
    if not same.any():
        return table
    keep = np.concatenate([[True], ~same])
    return table.filter(pa.array(keep))


def now_s() -> float:
    """Wall clock in seconds (patched in tests that need a fixed clock)."""
    return time.time()
