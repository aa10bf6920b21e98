"""The store sink: trades, final bars, signals (and optionally quotes) to Parquet, locally or
on S3, with nothing accepted ever lost.

Flow::

    bus (attach, in the event loop)  ──append──>  spool  (write-ahead, <path>/spool)
    flush task (thread, every flush_interval_s or flush_bytes)
        spool records a..b ──> Parquet parts  part-<writer>-<a>-<b>.parquet
        local: under <path>/type=…          S3: under <path>/outbox/type=…
        then commit a..b in the spool (records deleted)
    upload task (S3 only, thread): outbox part ──> s3://bucket/prefix/<same key>
        then the local file moves to <path>/cache (bounded) or is deleted

*Accepted* means appended to the spool: the bus callback returns only after the record is in
the kernel (one ``write``), so a crash of the process (even SIGKILL) loses nothing accepted;
with ``fsync = "batch"`` a power loss may lose the last ``fsync_interval_ms``, with
``"always"`` nothing. An event is refused (dropped, counted in
``tickserver_store_dropped_total``, logged, ``/readyz`` degraded) only when the local backlog
(spool + parts waiting for S3) would exceed ``max_backlog_bytes`` or the disk is full.

Part names are a function of the spool offsets they hold; before writing parts the flush
records its range in ``<path>/flush-intent``, so after a crash the same range is rewritten
under the same names, and a retried upload overwrites the same object: no duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from tickserver import layout
from tickserver.bus import Topic
from tickserver.component import Health
from tickserver.events import BarBatch
from tickserver.history import StoreReader
from tickserver.metrics import Family, Sample
from tickserver.sinks.base import Sink, SinkContext
from tickserver.spool import Spool, SpoolFull
from tickserver.storage import (
    AnyBatch,
    LocalStore,
    RecordError,
    S3Store,
    StoreError,
    build_tables,
    decode_record,
    encode_batch,
    kind_of,
    record_rows,
    write_parquet_atomic,
)

log = logging.getLogger("tickserver.sink.store")

_DROP_LOG_EVERY_S = 10.0


@dataclass
class _Part:
    """A Parquet part waiting in the outbox for upload."""

    path: Path
    key: str
    first: int
    last: int
    rows: int
    size: int


class StoreSink(Sink):
    """Write accepted events to a spool, flush them to Parquet parts, upload them to S3."""

    def __init__(self, ctx: SinkContext, name: str = "store") -> None:
        super().__init__(name, ctx)
        cfg = ctx.config.store
        self.cfg = cfg
        self.root = Path(cfg.path).expanduser().resolve()
        self.s3_mode = cfg.s3_bucket is not None
        self.parts_dir = self.root / "outbox" if self.s3_mode else self.root
        self.cache_dir = self.root / "cache"
        self.rule_intervals = {r.name: r.interval for r in ctx.config.signals}
        self.spool: Spool | None = None
        self.remote: S3Store | None = None
        self.reader: StoreReader | None = None
        self.writer_id = ""

        self._detach: list[Callable[[], None]] = []
        self._closing = False
        self._wake_flush = asyncio.Event()
        self._wake_upload = asyncio.Event()
        self._flush_lock = threading.Lock()
        self._parts_lock = threading.Lock()
        self._outbox: dict[str, _Part] = {}
        self._outbox_size = 0
        self._outbox_rows = 0
        self._uploading: set[str] = set()
        self._cache_files: dict[Path, int] = {}
        self._pending_rows = 0
        self._since_flush = 0
        self._max_record = max(min(cfg.max_backlog_bytes // 8, 64 << 20), 64 << 10)
        self._dropped = 0
        self._last_drop_log = 0.0
        self._last_drop = 0.0
        self._drop_reason = ""
        self._flush_error = ""
        self._s3_error = ""
        self._last_flush_ns = 0
        self._last_upload_ns = 0
        self._flushed_rows = 0
        self._uploaded_parts = 0

        m = ctx.metrics
        self.m_events = m.counter(
            "store_events_total", "Events accepted by the store (appended to its spool)", ["type"]
        )
        self.m_dropped = m.counter(
            "store_dropped_total", "Events the store refused (backlog full or disk full)", ["type"]
        )
        self.m_rows = m.counter("store_rows_written_total", "Rows written to Parquet", ["type"])
        self.m_parts = m.counter("store_parts_written_total", "Parquet parts written")
        self.m_uploads = m.counter("store_uploads_total", "Parts uploaded to S3")
        self.m_upload_fail = m.counter("store_upload_failures_total", "Failed S3 upload attempts")
        self.m_flush_s = m.histogram(
            "store_flush_seconds",
            "Time to turn spooled records into Parquet parts",
            [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
        )
        self.m_upload_s = m.histogram(
            "store_upload_seconds", "Time to upload one part", [0.05, 0.1, 0.5, 1, 5, 10, 60]
        )
        m.register_collector(self._collect)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open (and recover) the spool, redo an interrupted flush, attach to the bus.

        Raises
        ------
        RuntimeError
            If the store folder cannot be used (permissions, in use by another process).
        """
        try:
            await asyncio.to_thread(self._open)
        except OSError as exc:
            raise RuntimeError(f"store: cannot use {self.root}: {exc}") from exc
        self._detach = [
            self.ctx.bus.attach(Topic.TRADES, self.accept, name="store.trades"),
            self.ctx.bus.attach(Topic.BARS, self.accept, name="store.bars"),
            self.ctx.bus.attach(Topic.SIGNALS, self.accept, name="store.signals"),
        ]
        if self.cfg.quotes:
            self._detach.append(self.ctx.bus.attach(Topic.QUOTES, self.accept, name="store.quotes"))
        self.spawn(self._flush_loop(), name="flush")
        if self.s3_mode:
            self.spawn(self._upload_loop(), name="upload")
        self._update_health()
        if self._pending_rows:
            self._wake_flush.set()

    def _open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.writer_id = self._load_writer_id()
        self.spool = Spool(
            self.root / "spool",
            max_bytes=self.cfg.max_backlog_bytes,
            fsync=self.cfg.fsync,
            fsync_interval_ms=self.cfg.fsync_interval_ms,
            name="store",
        )
        for path in self.spool.quarantined:
            log.error(
                "store: spool file %s is in quarantine (corrupt records were skipped); "
                "inspect or delete it",
                path,
            )
        self._pending_rows = self._count_pending()
        if self.s3_mode:
            self.remote = S3Store.from_config(self.cfg)
            self._scan_outbox()
            self._scan_cache()
        intent = self._read_intent()
        if intent is not None:
            first, last = intent
            if last > self.spool.committed_offset:
                log.warning(
                    "store: redoing the flush of spool records %d-%d interrupted by a crash",
                    first,
                    last,
                )
                self._flush_once(exact=(first, last))
            else:
                self._clear_intent()
        primary: Any = self.remote if self.remote is not None else LocalStore(self.root)
        self.reader = StoreReader(
            primary,
            outbox=LocalStore(self.parts_dir) if self.s3_mode else None,
            cache=LocalStore(self.cache_dir) if self.s3_mode else None,
            pending=self.pending_records,
        )
        where = self.remote.describe() if self.remote else str(self.root)
        log.info(
            "store: writing Parquet to %s (spool %s, fsync=%s, flush every %gs or %d MiB); "
            "%d events recovered from the spool",
            where,
            self.root / "spool",
            self.cfg.fsync,
            self.cfg.flush_interval_s,
            self.cfg.flush_bytes >> 20,
            self._pending_rows,
        )

    async def stop(self) -> None:
        """Detach, flush everything spooled, try a last upload, close the spool."""
        if self._stopped:
            return
        for d in self._detach:
            d()
        self._closing = True
        self._wake_flush.set()
        self._wake_upload.set()
        tasks = list(self._tasks)
        if tasks:
            # A loop in the middle of an upload to an unreachable S3 may take a while; the
            # part stays in the outbox either way, so do not wait for it forever.
            await asyncio.wait(tasks, timeout=5.0)
            await self.cancel_tasks()
        try:
            if self.spool is not None:
                await asyncio.to_thread(self._flush_all)
                if self.s3_mode:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            self._upload_pending(deadline=time.monotonic() + 4.0), 5.0
                        )
                    left = self._outbox_totals()
                    if left[0]:
                        log.warning(
                            "store: %d parts (%d bytes) not uploaded yet; they stay in %s and "
                            "upload at the next start",
                            left[0],
                            left[2],
                            self.parts_dir,
                        )
        except Exception:
            log.exception("store: final flush failed; the spool keeps the data for next start")
        finally:
            if self.spool is not None:
                await asyncio.to_thread(self.spool.close)
            self._stopped = True
            self.set_health("stopped")

    # ------------------------------------------------------------------ accept (event loop)
    def accept(self, batch: AnyBatch) -> None:
        """Append a batch to the spool (the bus callback; never blocks on the network)."""
        if isinstance(batch, BarBatch) and not batch.final:
            return
        n = len(batch)
        if n == 0 or self.spool is None or self._closing:
            return
        kind = kind_of(batch)
        rec = encode_batch(batch, self.ctx.symbols.name, self.rule_intervals)
        if len(rec) > self._max_record and n > 1:
            # A huge batch (e.g. a replay chunk): spool it in pieces that fit the bounds.
            pieces = -(-len(rec) // self._max_record)
            for rows in np.array_split(np.arange(n), pieces):
                self.accept(batch.take(rows))
            return
        backlog = self.spool.disk_bytes + self._outbox_bytes()
        if backlog + len(rec) > self.cfg.max_backlog_bytes:
            self._drop(
                kind,
                n,
                f"backlog full: {backlog} of {self.cfg.max_backlog_bytes} bytes "
                f"(store.max_backlog_bytes) waiting for {self._destination()}",
            )
            return
        try:
            self.spool.append(rec)
        except SpoolFull as exc:
            self._drop(kind, n, str(exc))
            return
        except OSError as exc:
            self._drop(kind, n, f"spool write failed: {exc}")
            return
        self._pending_rows += n
        self.m_events.inc(n, type=kind)
        self._since_flush += len(rec)
        if self._since_flush >= self.cfg.flush_bytes:
            self._since_flush = 0
            self._wake_flush.set()

    def _drop(self, kind: str, n: int, reason: str) -> None:
        self._dropped += n
        self.m_dropped.inc(n, type=kind)
        now = time.monotonic()
        self._last_drop = now
        self._drop_reason = reason
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            log.error(
                "store: DROPPING events (%d so far): %s",
                self._dropped,
                reason,
                extra={"event": "store_drop", "dropped": self._dropped},
            )
        self._update_health()

    def _destination(self) -> str:
        return self.remote.describe() if self.remote else str(self.root)

    # ------------------------------------------------------------------ flush (thread)
    async def _flush_loop(self) -> None:
        backoff = 1.0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_flush.wait(), self.cfg.flush_interval_s)
            self._wake_flush.clear()
            if self._closing:
                return
            try:
                await asyncio.to_thread(self._flush_all)
                backoff = 1.0
            except Exception as exc:
                self._flush_error = f"cannot write Parquet parts to {self.parts_dir}: {exc}"
                log.error("store: %s; retrying in %.0fs", self._flush_error, backoff)
                self._update_health()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            self._wake_upload.set()

    def flush_now(self) -> None:
        """Flush everything spooled into parts now (blocking; call from a thread)."""
        self._flush_all()

    def _flush_all(self) -> None:
        """Flush until the spool is empty (in parts of at most ``flush_bytes``)."""
        while self._flush_once():
            pass

    def _flush_once(self, *, exact: tuple[int, int] | None = None) -> bool:
        """Turn the next run of spooled records into parts; return whether there were any."""
        sp = self.spool
        assert sp is not None
        with self._flush_lock:
            t0 = time.perf_counter()
            start = sp.committed_offset + 1
            stop_at = exact[1] if exact else None
            recs: list[tuple[int, bytes]] = []
            size = 0
            while size < self.cfg.flush_bytes:
                got = sp.read(start, max_bytes=self.cfg.flush_bytes - size)
                if stop_at is not None:
                    got = [r for r in got if r[0] <= stop_at]
                if not got:
                    break
                recs.extend(got)
                size += sum(len(r) for _, r in got)
                start = got[-1][0] + 1
                if stop_at is not None and start > stop_at:
                    break
            if not recs:
                if exact is not None:
                    sp.commit(min(exact[1], sp.next_offset - 1))
                    self._clear_intent()
                return False
            first, last = exact if exact else (recs[0][0], recs[-1][0])
            sp.sync()  # parts are only made of records that are on disk
            self._write_intent(first, last)
            decoded = []
            for off, raw in recs:
                try:
                    decoded.append(decode_record(raw))
                except RecordError as exc:
                    bad = self.root / "bad-records" / f"{off:020d}.bin"
                    bad.parent.mkdir(exist_ok=True)
                    bad.write_bytes(raw)
                    log.error(
                        "store: spool record %d is unreadable (%s); kept in %s", off, exc, bad
                    )
            tables = build_tables(decoded)
            name = layout.part_name(self.writer_id, first, last)
            new_parts: list[_Part] = []
            for (kind, interval, date), table in sorted(tables.items(), key=lambda kv: kv[0][2]):
                key = f"{layout.partition_dir(kind, date, interval)}/{name}"
                path = self.parts_dir / key
                try:
                    size_b = write_parquet_atomic(
                        table, path, compression_level=self.cfg.compression_level
                    )
                except OSError as exc:
                    with contextlib.suppress(OSError):
                        path.with_name(f".{path.name}.tmp").unlink()
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise OSError(exc.errno, f"disk full writing {path}") from exc
                    raise
                self.m_rows.inc(table.num_rows, type=kind)
                self.m_parts.inc()
                new_parts.append(_Part(path, key, first, last, table.num_rows, size_b))
            rows = sum(d.rows for d in decoded)
            sp.commit(last)
            self._clear_intent()
            if self.s3_mode:
                for p in new_parts:
                    self._outbox_add(p)
            self._pending_rows = max(0, self._pending_rows - rows)
            self._flushed_rows += rows
            self._last_flush_ns = time.time_ns()
            self._flush_error = ""
            self.m_flush_s.observe(time.perf_counter() - t0)
            log.debug(
                "store: flushed records %d-%d (%d rows) into %d parts",
                first,
                last,
                rows,
                len(new_parts),
            )
            return True

    def _count_pending(self) -> int:
        assert self.spool is not None
        n = 0
        start = self.spool.committed_offset + 1
        while got := self.spool.read(start, max_bytes=64 << 20):
            for _, raw in got:
                with contextlib.suppress(RecordError):
                    n += record_rows(raw)
            start = got[-1][0] + 1
        return n

    def pending_records(self) -> list[bytes]:
        """Spooled records not yet in a part (for history reads; thread-safe)."""
        sp = self.spool
        if sp is None:
            return []
        out: list[bytes] = []
        start = sp.committed_offset + 1
        while got := sp.read(start, max_bytes=64 << 20):
            out.extend(r for _, r in got)
            start = got[-1][0] + 1
        return out

    # ------------------------------------------------------------------ flush intent
    def _intent_path(self) -> Path:
        return self.root / "flush-intent"

    def _write_intent(self, first: int, last: int) -> None:
        tmp = self.root / "flush-intent.tmp"
        with tmp.open("w") as f:
            json.dump({"first": first, "last": last, "writer": self.writer_id}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._intent_path())

    def _read_intent(self) -> tuple[int, int] | None:
        try:
            data = json.loads(self._intent_path().read_text())
            return int(data["first"]), int(data["last"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.error("store: ignoring unreadable %s: %s", self._intent_path(), exc)
            return None

    def _clear_intent(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._intent_path().unlink()

    def _load_writer_id(self) -> str:
        path = self.root / "writer-id"
        try:
            return layout.check_writer(path.read_text().strip())
        except FileNotFoundError:
            wid = secrets.token_hex(6)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(wid + "\n")
            os.replace(tmp, path)
            return wid

    # ------------------------------------------------------------------ upload (S3)
    def _scan_outbox(self) -> None:
        for key, size in LocalStore(self.parts_dir).list_files(""):
            parsed = layout.parse_part_name(key)
            if parsed is None:
                continue
            path = self.parts_dir / key
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception as exc:
                log.error("store: outbox part %s is unreadable (%s); left in place", path, exc)
                continue
            self._outbox_add(_Part(path, key, parsed[1], parsed[2], rows, size))
        if self._outbox:
            log.info("store: %d parts waiting in %s for upload", len(self._outbox), self.parts_dir)

    def _scan_cache(self) -> None:
        for key, size in LocalStore(self.cache_dir).list_files(""):
            self._cache_files[self.cache_dir / key] = size

    def _outbox_add(self, part: _Part) -> None:
        with self._parts_lock:
            old = self._outbox.pop(part.key, None)
            if old is not None:
                self._outbox_size -= old.size
                self._outbox_rows -= old.rows
            self._outbox[part.key] = part
            self._outbox_size += part.size
            self._outbox_rows += part.rows

    def _outbox_remove(self, key: str) -> None:
        with self._parts_lock:
            old = self._outbox.pop(key, None)
            if old is not None:
                self._outbox_size -= old.size
                self._outbox_rows -= old.rows

    def _outbox_bytes(self) -> int:
        return self._outbox_size

    def _outbox_totals(self) -> tuple[int, int, int]:
        """Parts, rows and bytes waiting in the outbox."""
        return len(self._outbox), self._outbox_rows, self._outbox_size

    def _ready_parts(self) -> list[_Part]:
        assert self.spool is not None
        committed = self.spool.committed_offset
        with self._parts_lock:
            parts = [p for p in self._outbox.values() if p.last <= committed]
        return sorted(parts, key=lambda p: (p.first, p.key))

    async def _upload_loop(self) -> None:
        assert self.remote is not None
        backoff = 1.0
        probed = False
        while not self._closing:
            parts = self._ready_parts()
            if not parts and (not probed or self._s3_error):
                try:
                    await asyncio.to_thread(self.remote.probe)
                    probed = True
                    self._set_s3_error("")
                except StoreError as exc:
                    self._set_s3_error(exc.reason)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.cfg.s3_retry_max_s)
                    continue
            if not parts:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_upload.wait(), self.cfg.flush_interval_s)
                self._wake_upload.clear()
                continue
            ok = await self._upload_pending()
            if ok:
                backoff = 1.0
                probed = True  # an upload went through: no need to probe (it may lack List)
            else:
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.cfg.s3_retry_max_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake_upload.wait(), seconds)
        self._wake_upload.clear()

    async def _upload_pending(self, deadline: float | None = None) -> bool:
        """Upload ready parts in order; return False at the first failure."""
        for part in self._ready_parts():
            if deadline is not None and time.monotonic() > deadline:
                return False
            if self._closing and deadline is None:
                return True
            try:
                await asyncio.to_thread(self._upload_one, part)
            except StoreError as exc:
                self.m_upload_fail.inc()
                self._set_s3_error(exc.reason)
                return False
            self._set_s3_error("")
        return True

    def _upload_one(self, part: _Part) -> None:
        assert self.remote is not None
        with self._parts_lock:
            if part.key in self._uploading or part.key not in self._outbox:
                return  # another thread (a cancelled loop's) has it, or it is done
            self._uploading.add(part.key)
        try:
            t0 = time.perf_counter()
            self.remote.put_file(part.path, part.key)
            self.m_upload_s.observe(time.perf_counter() - t0)
            self.m_uploads.inc()
            self._uploaded_parts += 1
            self._last_upload_ns = time.time_ns()
            if self.cfg.cache_bytes > 0:
                dest = self.cache_dir / part.key
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part.path, dest)
                with self._parts_lock:
                    self._cache_files[dest] = part.size
                    self._evict_cache()
            else:
                part.path.unlink(missing_ok=True)
            self._outbox_remove(part.key)
        finally:
            with self._parts_lock:
                self._uploading.discard(part.key)

    def _evict_cache(self) -> None:
        total = sum(self._cache_files.values())
        if total <= self.cfg.cache_bytes:
            return
        for path in sorted(self._cache_files, key=lambda p: p.name):
            if total <= self.cfg.cache_bytes:
                break
            total -= self._cache_files.pop(path)
            path.unlink(missing_ok=True)

    def _set_s3_error(self, reason: str) -> None:
        if reason != self._s3_error:
            if reason:
                n, _rows, size = self._outbox_totals()
                log.error(
                    "store: S3 upload failing: %s; %d parts (%d bytes) wait in %s and upload "
                    "as soon as S3 accepts them",
                    reason,
                    n,
                    size,
                    self.parts_dir,
                    extra={"event": "store_s3_error"},
                )
            else:
                log.info("store: S3 reachable again (%s)", self._destination())
        self._s3_error = reason
        self._update_health()

    # ------------------------------------------------------------------ health, metrics
    def backlog(self) -> int:
        """Events accepted and not yet delivered (spooled, or in parts not yet uploaded)."""
        return self._pending_rows + self._outbox_totals()[1]

    def _update_health(self) -> None:
        reasons = []
        if self._last_drop and time.monotonic() - self._last_drop < 30.0:
            reasons.append(f"dropping events: {self._drop_reason}")
        if self._flush_error:
            reasons.append(self._flush_error)
        if self._s3_error:
            n, _rows, size = self._outbox_totals()
            reasons.append(f"{self._s3_error}; {n} parts ({size} bytes) waiting on local disk")
        if self._stopped:
            return
        self.set_health("degraded" if reasons else "ok", "; ".join(reasons))

    def health(self) -> Health:
        """Report state, backlog and destination."""
        if not self._stopped:
            self._update_health()
        sp = self.spool
        parts, part_rows, part_bytes = self._outbox_totals()
        self._health.details.update(
            destination=self._destination(),
            backlog_events=self._pending_rows + part_rows,
            spool_bytes=sp.disk_bytes if sp is not None else 0,
            outbox_parts=parts,
            outbox_bytes=part_bytes,
            max_backlog_bytes=self.cfg.max_backlog_bytes,
            dropped=self._dropped,
            flushed_rows=self._flushed_rows,
            uploaded_parts=self._uploaded_parts,
            last_flush_ns=self._last_flush_ns,
            last_upload_ns=self._last_upload_ns,
            quarantined=[str(p) for p in sp.quarantined] if sp is not None else [],
        )
        return self._health

    def _collect(self) -> list[Family]:
        sp = self.spool
        parts, _rows, part_bytes = self._outbox_totals()
        values = {
            "store_backlog_events": ("Events accepted, not yet in the store", self.backlog()),
            "store_spool_bytes": ("Bytes in the write-ahead spool", sp.disk_bytes if sp else 0),
            "store_outbox_parts": ("Parts waiting for upload", parts),
            "store_outbox_bytes": ("Bytes of parts waiting for upload", part_bytes),
            "store_backlog_ratio": (
                "Local backlog as a fraction of store.max_backlog_bytes",
                ((sp.disk_bytes if sp else 0) + part_bytes) / self.cfg.max_backlog_bytes,
            ),
            "store_healthy": ("1 when the store sink is ok, 0 when degraded", 0.0),
        }
        values["store_healthy"] = (values["store_healthy"][0], float(self._health.state == "ok"))
        fams = []
        for name, (help_, v) in values.items():
            fam = self.ctx.metrics.family(name, "gauge", help_)
            fam.samples = [Sample(fam.name, (), float(v))]
            fams.append(fam)
        return fams


def create(ctx: SinkContext) -> StoreSink:
    """Create the store sink (``[store]`` section)."""
    return StoreSink(ctx)
