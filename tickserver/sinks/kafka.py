"""The Kafka publisher: ticks, quotes, bars and signals to topics, without losing any.

Flow
----
``Bus.attach`` callbacks (synchronous, never blocking) turn each bus batch into one compact
frame and append it to an on-disk :class:`~tickserver.spool.Spool` — that is the moment an
event counts as *accepted*. A background task reads the spool in order, encodes the frames as
JSON records (:mod:`tickserver.kafka.records`), sends them with aiokafka (acks=all,
compression, idempotence where the broker grants it) and commits the spool only after the
broker acknowledged them. So:

- an unreachable broker (at start or later) costs nothing but disk: tickserver starts and
  serves, ``/readyz`` answers 503 with the reason, records wait in the spool and go out in
  order once the broker is back (a restarted tickserver delivers a previous run's spool first);
- delivery is at-least-once: after a failure a partition's unacknowledged records are sent
  again, so a consumer may see a record twice (same ``session`` and ``sseq``) but never a gap;
- per-symbol order holds: a symbol is the record key, its records go to one partition, and a
  partition's batches are sent one after the other;
- a record the broker refuses as too large is split when it is a batched record, else written
  to the dead-letter file (JSON lines) with an error log line and counted — it never blocks
  the records behind it;
- a topic deleted under the running publisher is created again (``create_topics = true``) or
  reported in ``/readyz`` while records wait in the spool (``create_topics = false``).

Spool full
----------
The spool is bounded (``spool_max_bytes``). When it is full the *newest* batch is dropped:
ingestion is never stalled (the sources, the API and the store keep running), the drop is
counted (``tickserver_kafka_dropped_events_total``), logged, shown in ``/readyz`` and
``status``, and the gap is announced in-band: the dropped events' ``sseq`` numbers are
missing and a ``gap`` record on the topic names the range once the spool has room again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from tickserver.bus import Topic
from tickserver.component import Health
from tickserver.events import BarBatch, QuoteBatch, SignalBatch, TradeBatch
from tickserver.kafka import client as kclient
from tickserver.kafka.records import (
    Frame,
    FrameError,
    Gap,
    Kind,
    OutRecord,
    RecordEncoder,
    headers_for,
    pack_frame,
    partition_for_key,
    topic_name,
    unpack_frame,
)
from tickserver.metrics import Family, Sample
from tickserver.sinks.base import Sink, SinkContext
from tickserver.spool import Spool, SpoolFull

log = logging.getLogger("tickserver.sink.kafka")

_TOO_LARGE_ERRNOS = frozenset({10, 18})  # MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE
_RECORD_OVERHEAD = 128  # record framing + our three headers, in bytes (generous)
_READ_MAX_BYTES = 4 << 20  # spool bytes per read: ~90k ticks as frames
_LOG_EVERY_S = 30.0
_IDLE_CHECK_S = 5.0  # with nothing to send, check the connection this often
_STALL_S = 2.0  # no acknowledgement for this long during a send round: health() is degraded


class LogRegressedError(Exception):
    """The broker acknowledged a record at an offset it had already used (see _check_offset)."""


class TopicMissingError(Exception):
    """A topic to publish to does not exist and ``kafka.create_topics`` is false."""


class _RoundFailedError(Exception):
    """Some partitions could not be delivered; ``pending`` holds their records, in order."""

    def __init__(self, pending: list[OutRecord], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.pending = pending
        self.cause = cause


@dataclass
class _Held:
    """Batched-mode frames read from the spool, waiting for the end of their flush window."""

    frames: list[Frame]
    first_offset: int
    since: float
    events: int = 0


def _ranks(inverse: NDArray[np.intp], counts: NDArray[np.intp]) -> NDArray[np.uint64]:
    """Per row, its 0-based position among the rows of the same group (stable)."""
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(inverse), dtype=np.uint64)
    rank[order] = np.arange(len(inverse), dtype=np.uint64) - np.repeat(starts, counts).astype(
        np.uint64
    )
    return rank


class KafkaSink(Sink):
    """Publish bus batches to Kafka through a durable spool (see the module docstring)."""

    def __init__(self, ctx: SinkContext) -> None:
        super().__init__("kafka", ctx)
        cfg = ctx.config.kafka
        self.kcfg = cfg
        self.session = time.time_ns()
        modes = {
            Kind.TICKS: cfg.ticks,
            Kind.QUOTES: cfg.quotes,
            Kind.BARS: cfg.bars,
            Kind.SIGNALS: cfg.signals,
        }
        self.modes = {k: m for k, m in modes.items() if m != "off"}
        self.batched_kinds = frozenset(k for k, m in self.modes.items() if m == "batched")
        self.encoder = RecordEncoder(cfg.topic_prefix, self.batched_kinds, cfg.max_record_bytes)
        self.bar_intervals = list(cfg.bar_intervals or ctx.config.market.intervals)
        self.rule_interval = {r.name: r.interval for r in ctx.config.signals}
        self.spool_dir = Path(cfg.spool_dir)
        self.dead_letter_path = Path(cfg.dead_letter_path or self.spool_dir / "dead-letter.jsonl")
        # Fail at start on a missing secret or region, not later in a background task.
        kclient.connection_options(cfg)

        self.spool: Spool | None = None
        self.connected = False
        self.idempotent: bool | None = {"on": True, "off": False}.get(cfg.idempotence)
        self.last_error = ""
        self.delivered_records = 0
        self.delivered_events = 0
        self.accepted_events = 0
        self.dropped_events = 0
        self.dead_lettered = 0
        self.spool_full = False
        self._sseq: dict[tuple[str, str], int] = {}
        self._gaps: dict[tuple[str, str], list[int]] = {}
        self._detach: list[Callable[[], None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._deliver_task: asyncio.Task[Any] | None = None
        self._producer: Any = None
        self._round_started: float | None = None
        self._last_ack = 0.0
        self._last_offset: dict[tuple[str, int], int] = {}
        self._partition_cache: dict[tuple[str, int], dict[bytes, int]] = {}
        self._last_log: dict[str, float] = {}
        self._headers = {
            t: headers_for(t)
            for t in (
                "tick",
                "ticks",
                "quote",
                "quotes",
                "bar",
                "bars",
                "signal",
                "signals",
                "gap",
            )
        }

        m = ctx.metrics
        self.m_records = m.counter(
            "kafka_records_total", "Kafka records acknowledged by the broker", ["topic"]
        )
        self.m_events = m.counter(
            "kafka_events_total",
            "Events delivered to Kafka (a batched record holds many)",
            ["kind"],
        )
        self.m_dropped = m.counter(
            "kafka_dropped_events_total",
            "Events not published because the Kafka spool was full",
            ["kind"],
        )
        self.m_dead = m.counter(
            "kafka_dead_letter_records_total",
            "Records the broker refused (too large) written to the dead-letter file",
            ["topic"],
        )
        self.m_errors = m.counter(
            "kafka_delivery_errors_total", "Failed delivery attempts (retried)", ["error"]
        )
        self.m_splits = m.counter(
            "kafka_record_splits_total", "Batched records split because the broker refused them"
        )
        m.register_collector(self._collect)

    # ------------------------------------------------------------------ topics
    def topics(self) -> list[str]:
        """Return every topic this sink publishes to."""
        p = self.kcfg.topic_prefix
        out = []
        for kind in (Kind.TICKS, Kind.QUOTES, Kind.SIGNALS):
            if kind in self.modes:
                out.append(topic_name(p, kind))
        if Kind.BARS in self.modes:
            out.extend(topic_name(p, Kind.BARS, iv) for iv in self.bar_intervals)
        return out

    def _kind_of_topic(self, topic: str) -> str:
        """The ``kind`` label (ticks, quotes, bars, signals) of one of our topics."""
        rest = topic[len(self.kcfg.topic_prefix) + 1 :]
        return rest.split(".", 1)[0]

    def backlog(self) -> int:
        """Records accepted (in the spool) and not yet acknowledged by the broker."""
        return self.spool.backlog_records if self.spool is not None else 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the spool (recovering a previous run's backlog), attach, start delivering."""
        cfg = self.kcfg
        self.spool = await asyncio.to_thread(
            Spool,
            self.spool_dir,
            max_bytes=cfg.spool_max_bytes,
            fsync=cfg.spool_fsync,
            name="kafka",
        )
        if self.spool.backlog_records:
            log.info(
                "kafka spool %s holds %d records from a previous run; delivering them first",
                self.spool_dir,
                self.spool.backlog_records,
                extra={"event": "kafka_spool_recovered", "records": self.spool.backlog_records},
            )
        bus = self.ctx.bus
        if Kind.TICKS in self.modes:
            self._detach.append(bus.attach(Topic.TRADES, self.on_trades, name="kafka.ticks"))
        if Kind.QUOTES in self.modes:
            self._detach.append(bus.attach(Topic.QUOTES, self.on_quotes, name="kafka.quotes"))
        if Kind.BARS in self.modes:
            self._detach.append(bus.attach(Topic.BARS, self.on_bars, name="kafka.bars"))
        if Kind.SIGNALS in self.modes:
            self._detach.append(bus.attach(Topic.SIGNALS, self.on_signals, name="kafka.signals"))
        self.set_health(
            "degraded",
            f"connecting to {','.join(cfg.bootstrap_servers)}",
            **self._details(),
        )
        self._deliver_task = self.spawn(self._run(), name="deliver")

    async def stop(self) -> None:
        """Detach, deliver the backlog for up to ``shutdown_flush_s``, close; idempotent.

        What is not delivered by then stays in the spool for the next run.
        """
        if self._stopped:
            return
        for d in self._detach:
            d()
        self._detach.clear()
        self._stopping = True
        self._wake.set()
        task = self._deliver_task
        if self.connected and self.kcfg.shutdown_flush_s > 0 and task is not None:
            # The delivery loop returns once the spool is empty (or is cancelled below).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.kcfg.shutdown_flush_s)
        await super().stop()
        if self._producer is not None:
            await self._close_producer()
        if self.spool is not None:
            left = self.spool.backlog_records
            if left:
                log.warning(
                    "kafka: %d records not yet delivered stay in the spool %s for the next run",
                    left,
                    self.spool_dir,
                    extra={"event": "kafka_spool_left", "records": left},
                )
            await asyncio.to_thread(self.spool.close)
        self.set_health("stopped", "", **self._details())

    # ------------------------------------------------------------------ bus callbacks
    def on_trades(self, batch: TradeBatch) -> None:
        """Accept a batch of trades (bus callback)."""
        self._accept(
            Kind.TICKS,
            "",
            batch.symbol_id,
            {
                "ts_event": batch.ts_event,
                "ts_init": batch.ts_init,
                "price": batch.price,
                "size": batch.size,
                "seq": batch.seq,
                "flags": batch.flags,
            },
            source=batch.source,
        )

    def on_quotes(self, batch: QuoteBatch) -> None:
        """Accept a batch of top-of-book quotes (bus callback)."""
        self._accept(
            Kind.QUOTES,
            "",
            batch.symbol_id,
            {
                "ts_event": batch.ts_event,
                "ts_init": batch.ts_init,
                "bid_px": batch.bid_px,
                "bid_sz": batch.bid_sz,
                "ask_px": batch.ask_px,
                "ask_sz": batch.ask_sz,
                "seq": batch.seq,
                "flags": batch.flags,
            },
            source=batch.source,
        )

    def on_bars(self, batch: BarBatch) -> None:
        """Accept bars of a published interval (bus callback); forming bars if configured."""
        if batch.interval not in self.bar_intervals:
            return
        if not batch.final and not self.kcfg.forming_bars:
            return
        self._accept(
            Kind.BARS,
            batch.interval,
            batch.symbol_id,
            {
                "ts_event": batch.ts_event,
                "open": batch.open,
                "high": batch.high,
                "low": batch.low,
                "close": batch.close,
                "volume": batch.volume,
                "vwap": batch.vwap,
                "trades": batch.trades,
            },
            final=batch.final,
        )

    def on_signals(self, batch: SignalBatch) -> None:
        """Accept fired signals (bus callback)."""
        self._accept(
            Kind.SIGNALS,
            "",
            batch.symbol_id,
            {
                "ts_event": batch.ts_event,
                "rule": batch.rule_id,
                "direction": batch.direction,
                "value": batch.value,
            },
            rules=batch.rules,
        )

    def _accept(
        self,
        kind: Kind,
        interval: str,
        symbol_id: NDArray[np.uint32],
        cols: dict[str, NDArray[Any]],
        *,
        source: str = "",
        final: bool = True,
        rules: tuple[str, ...] = (),
    ) -> None:
        n = len(symbol_id)
        if n == 0 or self.spool is None:
            return
        topic = topic_name(self.kcfg.topic_prefix, kind, interval)
        uniq, inverse, counts = np.unique(symbol_id, return_inverse=True, return_counts=True)
        names = [str(s) for s in self.ctx.symbols.names_of(uniq).tolist()]
        base = np.fromiter(
            (self._sseq.get((topic, s), 0) for s in names), dtype=np.uint64, count=len(names)
        )
        sseq = base[inverse] + _ranks(inverse, counts) + np.uint64(1)
        for s, b, c in zip(names, base.tolist(), counts.tolist(), strict=True):
            self._sseq[(topic, s)] = b + c
        frame = Frame(
            kind=kind,
            session=self.session,
            symbols=names,
            cols={"sym": inverse.astype(np.uint32), "sseq": sseq, **cols},
            source=source,
            interval=interval,
            final=final,
            rules=rules,
            rule_intervals=tuple(self.rule_interval.get(r, "") for r in rules),
        )
        data = pack_frame(frame)
        try:
            if self._gaps:
                self._append_gaps()
            self.spool.append(data)
        except SpoolFull as exc:
            self._drop(kind, topic, names, base, counts, n, exc)
            return
        if self.spool_full:
            self.spool_full = False
            log.warning("kafka spool has room again after dropping %d events", self.dropped_events)
        self.accepted_events += n
        self._wake.set()

    def _append_gaps(self) -> None:
        assert self.spool is not None
        gaps = [
            Gap(topic, sym, first, last, "kafka spool full")
            for (topic, sym), (first, last) in self._gaps.items()
        ]
        self.spool.append(
            pack_frame(Frame(kind=Kind.GAP, session=self.session, symbols=[], cols={}, gaps=gaps))
        )
        self._gaps.clear()

    def _drop(
        self,
        kind: Kind,
        topic: str,
        names: list[str],
        base: NDArray[np.uint64],
        counts: NDArray[np.intp],
        n: int,
        exc: SpoolFull,
    ) -> None:
        # The sseq numbers stay spent, so consumers see the hole; the gap record names it.
        for s, b, c in zip(names, base.tolist(), counts.tolist(), strict=True):
            rng = self._gaps.setdefault((topic, s), [b + 1, b + c])
            rng[1] = b + c
        self.dropped_events += n
        self.m_dropped.inc(n, kind=kind.name.lower())
        first = not self.spool_full
        self.spool_full = True
        reason = f"spool full: dropped {self.dropped_events} events ({exc})"
        self.set_health("degraded", reason, **self._details())
        if first or self._due("drop"):
            log.error(
                "kafka: %s; newest events are dropped until the broker catches up",
                reason,
                extra={"event": "kafka_spool_full", "dropped": self.dropped_events},
            )

    # ------------------------------------------------------------------ delivery
    async def _run(self) -> None:
        assert self.spool is not None
        spool = self.spool
        next_read = spool.committed_offset + 1
        held: _Held | None = None
        flush_s = self.kcfg.flush_ms / 1000.0
        await self._ensure_producer()  # connect now: readiness should not wait for data
        while True:
            chunk = await asyncio.to_thread(
                spool.read, next_read, max_records=10_000, max_bytes=_READ_MAX_BYTES
            )
            immediate: list[Frame] = []
            for _off, data in chunk:
                try:
                    fr = unpack_frame(data)
                except FrameError as exc:
                    self._dead_letter_frame(_off, data, exc)
                    continue
                if fr.kind in self.batched_kinds:
                    if held is None:
                        held = _Held([], _off, time.monotonic())
                    held.frames.append(fr)
                    held.events += len(fr)
                else:
                    immediate.append(fr)
            if chunk:
                next_read = chunk[-1][0] + 1
            flush = held is not None and (
                self._stopping
                or held.events >= self.kcfg.flush_max_events
                or time.monotonic() - held.since >= flush_s
            )
            frames = immediate + (held.frames if flush and held is not None else [])
            if frames:
                await self._deliver(self.encoder.encode(frames))
            if flush:
                held = None
            if chunk or flush:
                upto = next_read - 1 if held is None else held.first_offset - 1
                if upto > spool.committed_offset:
                    await asyncio.to_thread(spool.commit, upto)
            if chunk and len(chunk) >= 10_000:
                continue
            if self._stopping and held is None and spool.backlog_records == 0:
                return
            self._wake.clear()
            if spool.next_offset > next_read:
                continue
            timeout = _IDLE_CHECK_S
            if held is not None:
                timeout = max(0.0, held.since + flush_s - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                if held is None:
                    await self._check_idle_connection()

    async def _check_idle_connection(self) -> None:
        """While nothing is sent, ask the broker for metadata now and then, so ``/readyz``
        notices a broker that went away (and recovers) even when no events flow."""
        producer = self._producer
        try:
            if producer is None:
                await self._ensure_producer()
                return
            ok = await asyncio.wait_for(
                producer.client.force_metadata_update(), self.kcfg.request_timeout_ms / 1000.0
            )
            if not ok:
                raise ConnectionError("no broker answered a metadata request")
        except (TimeoutError, ConnectionError) as exc:
            await self._on_failure(exc)

    async def _deliver(self, records: list[OutRecord]) -> None:
        """Send ``records`` until every one is acknowledged or dead-lettered."""
        pending = self._check_sizes(records)
        backoff = self.kcfg.retry_backoff_ms / 1000.0
        while pending:
            producer = await self._ensure_producer()
            try:
                await self._send_round(producer, pending)
                pending = []
                if not self.spool_full and self._health.state != "ok":
                    self.set_health("ok", "", **self._details())
                backoff = self.kcfg.retry_backoff_ms / 1000.0
            except Exception as exc:
                # A round that failed as a whole (metadata, topic lookup) sends everything
                # again; a partial failure only the partitions not acknowledged.
                cause: BaseException = exc
                if isinstance(exc, _RoundFailedError):
                    pending, cause = exc.pending, exc.cause
                await self._on_failure(cause)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.kcfg.retry_backoff_max_ms / 1000.0)

    def _check_sizes(self, records: list[OutRecord]) -> list[OutRecord]:
        limit = self.kcfg.max_record_bytes
        if all(len(r.value) + len(r.key) + _RECORD_OVERHEAD <= limit for r in records):
            return records
        out: list[OutRecord] = []
        for r in records:
            out.extend(self._fit(r, limit, "larger than kafka.max_record_bytes"))
        return out

    def _fit(self, rec: OutRecord, limit: int, why: str) -> list[OutRecord]:
        if len(rec.value) + len(rec.key) + _RECORD_OVERHEAD <= limit:
            return [rec]
        parts = rec.split()
        if parts is None:
            self._dead_letter(rec, f"{len(rec.value)} bytes: {why} ({limit})")
            return []
        self.m_splits.inc()
        return [p for part in parts for p in self._fit(part, limit, why)]

    async def _send_round(self, producer: Any, records: list[OutRecord]) -> None:
        self._round_started = time.monotonic()
        try:
            await self._send_round_inner(producer, records)
        finally:
            self._round_started = None

    async def _send_round_inner(self, producer: Any, records: list[OutRecord]) -> None:
        by_tp: dict[tuple[str, int], list[OutRecord]] = {}
        for topic, recs in _group_by_topic(records).items():
            parts = await producer.partitions_for(topic)
            nparts = len(parts)
            cache = self._partition_cache.setdefault((topic, nparts), {})
            for r in recs:
                p = cache.get(r.key)
                if p is None:
                    p = cache[r.key] = partition_for_key(r.key, nparts)
                by_tp.setdefault((topic, p), []).append(r)
        results = await asyncio.gather(
            *(self._send_partition(producer, t, p, recs) for (t, p), recs in by_tp.items())
        )
        pending = [r for res in results if res is not None for r in res[0]]
        if pending:
            cause = next(res[1] for res in results if res is not None)
            raise _RoundFailedError(pending, cause)

    async def _send_partition(
        self, producer: Any, topic: str, partition: int, records: list[OutRecord]
    ) -> tuple[list[OutRecord], BaseException] | None:
        """Send one partition's records in order, batch after batch.

        Return None when all were acknowledged, else the unacknowledged records and why.
        """
        i = 0
        while i < len(records):
            batch = producer.create_batch()
            j = i
            while j < len(records):
                r = records[j]
                if (
                    batch.append(
                        key=r.key, value=r.value, timestamp=None, headers=self._headers[r.rtype]
                    )
                    is None
                ):
                    break
                j += 1
            if j == i:  # cannot happen: an empty batch takes any record
                raise RuntimeError("aiokafka refused a record into an empty batch")
            try:
                fut = await producer.send_batch(batch, topic, partition=partition)
                meta = await fut
                self._check_offset(topic, partition, int(meta.offset), j - i)
            except Exception as exc:
                if getattr(exc, "errno", None) in _TOO_LARGE_ERRNOS:
                    left = await self._too_large(producer, topic, partition, records[i:j], exc)
                    if left is not None:
                        return left[0] + records[j:], left[1]
                    i = j
                    continue
                return records[i:], exc
            self._acked(topic, records[i:j])
            i = j
        return None

    async def _too_large(
        self,
        producer: Any,
        topic: str,
        partition: int,
        recs: list[OutRecord],
        exc: BaseException,
    ) -> tuple[list[OutRecord], BaseException] | None:
        """The broker refused a batch as too large: halve it, split records, dead-letter."""
        if len(recs) > 1:
            half = len(recs) // 2
            first, second = recs[:half], recs[half:]
            left = await self._send_partition(producer, topic, partition, first)
            if left is not None:
                return left[0] + second, left[1]
            return await self._send_partition(producer, topic, partition, second)
        parts = recs[0].split()
        if parts is None:
            self._dead_letter(recs[0], f"the broker refused it: {exc!r}")
            return None
        self.m_splits.inc()
        return await self._send_partition(producer, topic, partition, parts)

    def _check_offset(self, topic: str, partition: int, base: int, count: int) -> None:
        """Offsets of a partition only grow; an acknowledgement below the last one means the
        topic was deleted (or the broker lost data) under us, and at least one broker (Tansu)
        then acknowledges records it does not keep. Treat that as a failed delivery."""
        key = (topic, partition)
        last = self._last_offset.get(key)
        if last is not None and base <= last:
            self._last_offset.pop(key, None)
            raise LogRegressedError(
                f"{topic}[{partition}] acknowledged offset {base} after {last}: the topic was "
                "deleted or the broker lost data"
            )
        self._last_offset[key] = base + count - 1

    def _acked(self, topic: str, recs: list[OutRecord]) -> None:
        self._last_ack = time.monotonic()
        events = sum(r.events for r in recs)
        self.delivered_records += len(recs)
        self.delivered_events += events
        self.m_records.inc(len(recs), topic=topic)
        if events:
            self.m_events.inc(events, kind=self._kind_of_topic(topic))

    def _dead_letter_frame(self, offset: int, data: bytes, exc: FrameError) -> None:
        """A spool record that is not a frame this version understands: keep it, move on."""
        rec = OutRecord(
            topic="",
            key=b"",
            value=base64.b64encode(data),
            rtype="spool-frame",
            events=0,
        )
        self._dead_letter(rec, f"spool record {offset} cannot be decoded ({exc}); value is base64")

    def _dead_letter(self, rec: OutRecord, why: str) -> None:
        self.dead_lettered += 1
        self.m_dead.inc(topic=rec.topic)
        line = {
            "ts": datetime.now(UTC).isoformat(),
            "topic": rec.topic,
            "key": rec.key.decode(errors="replace"),
            "record_type": rec.rtype,
            "events": rec.events,
            "bytes": len(rec.value),
            "error": why,
            "value": rec.value.decode(errors="replace"),
        }
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        with self.dead_letter_path.open("ab") as f:
            f.write(orjson.dumps(line) + b"\n")
        log.error(
            "kafka: record for topic %s key %s not delivered (%s); written to %s "
            "(%d dead-lettered so far)",
            rec.topic,
            line["key"],
            why,
            self.dead_letter_path,
            self.dead_lettered,
            extra={"event": "kafka_dead_letter", "topic": rec.topic, "bytes": len(rec.value)},
        )

    # ------------------------------------------------------------------ connection
    async def _ensure_producer(self) -> Any:
        from aiokafka import AIOKafkaProducer

        if self._producer is not None:
            return self._producer
        cfg = self.kcfg
        backoff = cfg.retry_backoff_ms / 1000.0
        while True:
            producer = None
            try:
                if self.idempotent is None:
                    self.idempotent = await kclient.probe_idempotence(cfg)
                    if not self.idempotent:
                        log.warning(
                            "kafka: the broker does not grant producer ids; publishing without "
                            "idempotence (a retried batch may be duplicated; sseq tells)"
                        )
                if cfg.create_topics:
                    created = await kclient.ensure_topics(cfg, self.topics())
                    if created:
                        log.info("kafka: created topics %s", ", ".join(created))
                    for key in [k for k in self._last_offset if k[0] in created]:
                        del self._last_offset[key]
                else:
                    missing = await kclient.missing_topics(cfg, self.topics())
                    if missing:
                        raise TopicMissingError(
                            f"topic(s) {', '.join(missing)} do not exist and "
                            "kafka.create_topics is false: create them"
                        )
                producer = AIOKafkaProducer(
                    **kclient.producer_options(cfg, idempotent=bool(self.idempotent))
                )
                await producer.start()
            except Exception as exc:
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                await self._on_failure(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, cfg.retry_backoff_max_ms / 1000.0)
                continue
            self._producer = producer
            self.connected = True
            self._partition_cache.clear()
            log.info(
                "kafka: connected to %s (idempotent: %s); %d records waiting in the spool",
                ",".join(cfg.bootstrap_servers),
                self.idempotent,
                self.backlog(),
                extra={"event": "kafka_connected"},
            )
            if not self.spool_full:
                self.set_health("ok", "", **self._details())
            return producer

    async def _on_failure(self, exc: BaseException) -> None:
        """Count, log (rate-limited) and report a failure; drop the producer to start afresh."""
        name = type(exc).__name__
        self.m_errors.inc(error=name)
        self.last_error = f"{name}: {exc}"
        was = self.connected
        self.connected = False
        if self._producer is not None:
            await self._close_producer()
        backlog = self.backlog()
        reason = (
            f"broker {','.join(self.kcfg.bootstrap_servers)} unavailable ({self.last_error}); "
            f"{backlog} records spooled"
        )
        if isinstance(exc, TopicMissingError):
            reason = f"{exc}; {backlog} records spooled"
        if self.spool_full:
            reason = f"{self._health.reason}; {reason}"
        self.set_health("degraded", reason, **self._details())
        if was or self._due("failure"):
            log.warning("kafka: %s; retrying", reason, extra={"event": "kafka_unavailable"})

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        try:
            await asyncio.wait_for(producer.stop(), timeout=2.0)
        except Exception as exc:
            log.debug("kafka: closing the producer: %r", exc)

    # ------------------------------------------------------------------ reporting
    def _due(self, what: str) -> bool:
        now = time.monotonic()
        if now - self._last_log.get(what, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last_log[what] = now
            return True
        return False

    def _details(self) -> dict[str, Any]:
        spool = self.spool
        return {
            "connected": self.connected,
            "idempotent": self.idempotent,
            "topics": self.topics(),
            "session": self.session,
            "accepted_events": self.accepted_events,
            "delivered_records": self.delivered_records,
            "delivered_events": self.delivered_events,
            "dropped_events": self.dropped_events,
            "dead_lettered": self.dead_lettered,
            "backlog_records": spool.backlog_records if spool is not None else 0,
            "backlog_bytes": spool.backlog_bytes if spool is not None else 0,
            "last_error": self.last_error,
        }

    def health(self) -> Health:
        """Report the state with fresh counters (backlog, delivered, dropped, …), as a copy."""
        h = super().health()
        h.details.update(self._details())
        snap = dataclasses.replace(h, details=dict(h.details))
        started = self._round_started
        if snap.state == "ok" and started is not None:
            stalled = time.monotonic() - max(started, self._last_ack)
            if stalled > _STALL_S:
                # aiokafka retries quietly until request_timeout_ms; say so before that.
                snap.state = "degraded"
                snap.reason = (
                    f"no acknowledgement from {','.join(self.kcfg.bootstrap_servers)} for "
                    f"{stalled:.1f}s; {snap.details['backlog_records']} records spooled"
                )
        return snap

    def _collect(self) -> Iterable[Family]:
        m = self.ctx.metrics
        spool = self.spool
        out = []
        for name, help_, value in (
            ("kafka_connected", "1 while the Kafka producer is connected", float(self.connected)),
            (
                "kafka_spool_backlog_records",
                "Records in the Kafka spool not yet acknowledged",
                float(spool.backlog_records) if spool is not None else 0.0,
            ),
            (
                "kafka_spool_backlog_bytes",
                "Bytes in the Kafka spool not yet acknowledged",
                float(spool.backlog_bytes) if spool is not None else 0.0,
            ),
        ):
            fam = m.family(name, "gauge", help_)
            fam.samples = [Sample(fam.name, (), value)]
            out.append(fam)
        return out


def _group_by_topic(records: list[OutRecord]) -> dict[str, list[OutRecord]]:
    out: dict[str, list[OutRecord]] = {}
    for r in records:
        lst = out.get(r.topic)
        if lst is None:
            lst = out[r.topic] = []
        lst.append(r)
    return out


def create(ctx: SinkContext) -> Sink:
    """Create the Kafka sink (the app calls this when ``kafka.enabled``)."""
    return KafkaSink(ctx)
