"""AWS Lambda compactor: a day's small parts become one Parquet file per symbol and day.

Deployment: the handler is ``tickserver.compactor.handler``. This module imports only the
standard library, boto3, pyarrow and :mod:`tickserver.layout` (stdlib only), so the package
is ``tickserver/{__init__,_version,layout,compactor}.py`` plus a pyarrow layer. Give the
function ``s3:ListBucket``, ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject`` on the
store's prefix (and ``kms:Decrypt``/``kms:GenerateDataKey`` with SSE-KMS), enough memory for
the largest symbol-day, and ephemeral storage for a day of parts (they are downloaded once).

Invocation:

- an S3 ``ObjectCreated`` event for a part ``…/type=T[/interval=I]/date=D/part-….parquet``:
  compacts days ``D-1`` and ``D`` of that type if they are *closed* (the day ended more than
  ``COMPACT_GRACE_S`` seconds ago, default 3600), so the first part uploaded after midnight
  compacts yesterday and a late part re-compacts its closed day;
- a direct event ``{"bucket": B, "prefix": P, "date": "YYYY-MM-DD", "types": [...],
  "force": false}`` (e.g. from an EventBridge schedule) compacts that day for the listed
  types (default all; bars: every interval found).

Algorithm (per type, interval and day), safe to re-run and to interrupt anywhere:

1. List the day's parts and compacted files (with their ETags).
2. Download the parts once (to a temporary folder).
3. For each symbol in the parts: read its compacted file (if any) and the ``lineage`` stored
   in that file's Parquet metadata (which parts it already contains). Append the rows of the
   parts *not* in the lineage, sort by ``ts_event``, and write the file back with the new
   lineage, conditionally (``If-Match`` the ETag read, or ``If-None-Match: *`` when new), so
   two compactors racing never overwrite each other's work: the loser starts over.
4. Only when every symbol's file holds every part of this round, delete the parts.

A crash before step 4 leaves parts that the next run finds already in the lineage (no
duplicates) and deletes; a crash during step 4 leaves a few parts to delete next time. Rows
are never deleted before the object holding their copy is durable in S3.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tickserver import layout

log = logging.getLogger("tickserver.compactor")

DEFAULT_GRACE_S = 3600.0
MAX_ROUNDS = 5
_DELTA_COLS = ("ts_event", "ts_init", "seq")
_STRING_COLS = ("symbol", "source", "rule", "interval")


class ConcurrentCompaction(RuntimeError):  # noqa: N818 - names the situation
    """Another compactor changed the day while this one worked; start over."""


@dataclass
class DayReport:
    """What compacting one day of one type did."""

    type: str
    interval: str | None
    date: str
    parts: int = 0
    symbols_written: int = 0
    rows_added: int = 0
    parts_deleted: int = 0
    rounds: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return dict(self.__dict__)


def _s3_client() -> Any:
    import boto3

    # Region and endpoint come from the environment (AWS_REGION, AWS_ENDPOINT_URL_S3).
    return boto3.client("s3")


def _sse_args() -> dict[str, str]:
    sse = os.environ.get("COMPACTOR_SSE", "")
    out: dict[str, str] = {}
    if sse:
        out["ServerSideEncryption"] = sse
        kms = os.environ.get("COMPACTOR_KMS_KEY_ID", "")
        if kms:
            out["SSEKMSKeyId"] = kms
    return out


def _list(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.extend(page.get("Contents", []))
    return out


def _list_dirs(client: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/"
    )
    for page in pages:
        for cp in page.get("CommonPrefixes", []):
            out.append(cp["Prefix"][len(prefix) :].rstrip("/"))
    return out


def _is_missing(exc: BaseException) -> bool:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


def _is_conflict(exc: BaseException) -> bool:
    resp = getattr(exc, "response", None) or {}
    code = str(resp.get("Error", {}).get("Code", ""))
    status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


def _write_table(table: pa.Table, lineage: layout.Lineage) -> bytes:
    meta = dict(table.schema.metadata or {})
    meta[layout.LINEAGE_KEY] = layout.lineage_dumps(lineage)
    table = table.replace_schema_metadata(meta)
    names = table.schema.names
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=3,
        use_dictionary=[c for c in _STRING_COLS if c in names],
        column_encoding={c: "DELTA_BINARY_PACKED" for c in _DELTA_COLS if c in names},
        row_group_size=1 << 20,
        write_statistics=True,
    )
    return bytes(sink.getvalue().to_pybytes())


def compact_day(
    client: Any,
    bucket: str,
    prefix: str,
    kind: str,
    date: str,
    interval: str | None = None,
) -> DayReport:
    """Compact one day of one type (and bar interval) under ``s3://bucket/prefix``.

    Idempotent: re-running it, or running it after a crash, neither loses nor duplicates rows.

    Raises
    ------
    ConcurrentCompaction
        If other compactors kept changing the day for ``MAX_ROUNDS`` attempts.
    """
    report = DayReport(kind, interval, date)
    base = layout.join(prefix, layout.partition_dir(kind, date, interval)) + "/"
    for round_ in range(1, MAX_ROUNDS + 1):
        report.rounds = round_
        try:
            _compact_round(client, bucket, base, report)
            return report
        except ConcurrentCompaction as exc:
            report.notes.append(str(exc))
            log.warning("compactor: %s%s: %s; starting over", bucket, base, exc)
            time.sleep(0.2 * round_)
    raise ConcurrentCompaction(f"s3://{bucket}/{base}: gave up after {MAX_ROUNDS} rounds")


def _compact_round(client: Any, bucket: str, base: str, report: DayReport) -> None:
    objects = _list(client, bucket, base)
    parts: dict[str, tuple[str, int, int]] = {}
    compacted: dict[str, str] = {}  # symbol -> key
    for obj in objects:
        key = obj["Key"]
        if key[len(base) :].count("/"):
            continue
        parsed = layout.parse_part_name(key)
        if parsed is not None:
            parts[key] = parsed
            continue
        sym = layout.parse_compacted_name(key)
        if sym is not None:
            compacted[sym] = key
    report.parts = len(parts)
    if not parts:
        return
    with tempfile.TemporaryDirectory(prefix="tickserver-compact-") as tmp:
        local: dict[str, Path] = {}
        symbols: set[str] = set()
        for i, key in enumerate(sorted(parts)):
            path = Path(tmp) / f"p{i}.parquet"
            try:
                client.download_file(bucket, key, str(path))
            except Exception as exc:
                if _is_missing(exc):
                    raise ConcurrentCompaction(f"part {key} vanished") from exc
                raise
            local[key] = path
            col = pq.read_table(path, columns=["symbol"]).column("symbol")
            symbols.update(s for s in pc.unique(col).to_pylist() if s is not None)
        for symbol in sorted(symbols):
            report.rows_added += _merge_symbol(
                client, bucket, base, symbol, compacted.get(symbol), parts, local, report
            )
    for key in sorted(parts):
        client.delete_object(Bucket=bucket, Key=key)
        report.parts_deleted += 1


def _merge_symbol(
    client: Any,
    bucket: str,
    base: str,
    symbol: str,
    existing_key: str | None,
    parts: dict[str, tuple[str, int, int]],
    local: dict[str, Path],
    report: DayReport,
) -> int:
    key = base + layout.compacted_name(symbol)
    lineage: layout.Lineage = {}
    tables: list[pa.Table] = []
    etag: str | None = None
    if existing_key is not None:
        try:
            obj = client.get_object(Bucket=bucket, Key=existing_key)
        except Exception as exc:
            if _is_missing(exc):
                raise ConcurrentCompaction(f"{existing_key} vanished") from exc
            raise
        etag = obj["ETag"]
        data = obj["Body"].read()
        current = pq.read_table(pa.BufferReader(data))
        lineage = layout.lineage_loads((current.schema.metadata or {}).get(layout.LINEAGE_KEY))
        tables.append(current.replace_schema_metadata(None))
    added = 0
    new_lineage = lineage
    for pkey, (writer, first, last) in sorted(parts.items(), key=lambda kv: kv[1]):
        if layout.lineage_has(lineage, writer, first, last):
            continue
        t = pq.read_table(local[pkey], filters=[("symbol", "=", symbol)])
        t = t.replace_schema_metadata(None)
        if t.num_rows:
            tables.append(t)
            added += t.num_rows
        new_lineage = layout.lineage_add(new_lineage, writer, first, last)
    if new_lineage == lineage:
        return 0  # every part of this round is already in the file
    merged = pa.concat_tables(tables, promote_options="default") if tables else None
    if merged is None:
        return 0
    merged = merged.sort_by([("ts_event", "ascending")])
    body = _write_table(merged, new_lineage)
    cond = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
    try:
        client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/vnd.apache.parquet",
            **cond,
            **_sse_args(),
        )
    except Exception as exc:
        if _is_conflict(exc):
            raise ConcurrentCompaction(f"{key} changed while compacting") from exc
        raise
    report.symbols_written += 1
    return added


# ----------------------------------------------------------------------------- handler


def _closed(date: str, now: float, grace_s: float) -> bool:
    end = _dt.datetime.fromisoformat(date).replace(tzinfo=_dt.UTC) + _dt.timedelta(days=1)
    return end.timestamp() + grace_s <= now


def _targets_from_event(event: dict[str, Any]) -> list[tuple[str, str, str, str | None, str]]:
    """(bucket, prefix, type, interval, date) of every part in an S3 event."""
    out = []
    for rec in event.get("Records", []):
        s3 = rec.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        key = unquote_plus(s3.get("object", {}).get("key", ""))
        if not bucket or layout.parse_part_name(key) is None:
            continue
        where = layout.parse_partition(key)
        if where is None:
            continue
        kind, interval, date = where
        prefix = key.split("type=", 1)[0].rstrip("/")
        out.append((bucket, prefix, kind, interval, date))
    return out


def run(
    event: dict[str, Any],
    *,
    client: Any = None,
    now: float | None = None,
    grace_s: float | None = None,
) -> dict[str, Any]:
    """Handle one invocation (S3 event or direct) and return a summary."""
    client = client or _s3_client()
    now = time.time() if now is None else now
    grace = (
        float(os.environ.get("COMPACT_GRACE_S", DEFAULT_GRACE_S)) if grace_s is None else grace_s
    )
    jobs: set[tuple[str, str, str, str | None, str]] = set()
    skipped: list[str] = []
    if "Records" in event:
        for bucket, prefix, kind, interval, date in _targets_from_event(event):
            day = layout.day_index(date)
            for d in (layout.date_of_day(day - 1), date):
                if _closed(d, now, grace):
                    jobs.add((bucket, prefix, kind, interval, d))
                else:
                    skipped.append(f"{kind}/{interval or ''}/{d}: day still open")
    else:
        bucket = event["bucket"]
        prefix = str(event.get("prefix", "")).strip("/")
        date = event["date"]
        layout.day_index(date)  # validates the format
        if not event.get("force") and not _closed(date, now, grace):
            return {"compacted": [], "skipped": [f"{date}: day still open (use force)"]}
        for kind in event.get("types") or layout.TYPES:
            if kind == "bars":
                tdir = layout.join(prefix, "type=bars") + "/"
                for iv in _list_dirs(client, bucket, tdir):
                    if iv.startswith("interval="):
                        jobs.add((bucket, prefix, kind, iv[9:], date))
            else:
                jobs.add((bucket, prefix, kind, None, date))
    reports = []
    for bucket, prefix, kind, interval, date in sorted(jobs, key=lambda j: tuple(map(str, j))):
        rep = compact_day(client, bucket, prefix, kind, date, interval)
        log.info("compactor: %s", json.dumps(rep.to_json()))
        reports.append(rep.to_json())
    return {"compacted": reports, "skipped": sorted(set(skipped))}


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """AWS Lambda entry point."""
    logging.getLogger().setLevel(logging.INFO)
    return run(event)
