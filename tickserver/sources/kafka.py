"""``--source kafka``: serve ticks another tickserver published, sharing symbols by partition.

Scale-out topology (docs/kafka.md has the picture): one *ingest* instance runs the real
sources and publishes ticks with the Kafka sink; N *serving* instances run this source in one
consumer group. Kafka assigns each serving instance some partitions of the ticks topic, and a
symbol's ticks all live in one partition (the record key is the symbol), so each serving
instance owns the symbols of its partitions. This source

- feeds the ticks of its partitions to the local engine (bars, indicators, signals, queries);
- announces what it owns as an :class:`~tickserver.ownership.Ownership` on the bus (the app
  narrows the API to those symbols: ``symbols``, ``status.ownedSymbols``, lookups);
- follows rebalances: on revoke it stops serving those symbols at once, on assign it starts
  serving the new ones and (``start_from = "earliest"``, the default) replays their partitions
  from the beginning of what Kafka retains, so a takeover rebuilds the full tick history;
- skips records it already fed (each (session, symbol) carries a gap-free ``sseq``), so a
  partition that comes back, or a redelivered batch, is not counted twice.

Connection and security settings come from the ``[kafka]`` section (``kafka.enabled`` need not
be true: that switch is the publisher). Trades are not validated again and keep the ingest
instance's ``seq``, so a serving instance's ticks are the ingest instance's, number for number.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tickserver.bus import Topic
from tickserver.component import Health
from tickserver.config import CsvList
from tickserver.events import TradeBatch
from tickserver.kafka import client as kclient
from tickserver.kafka.records import (
    Gap,
    Kind,
    RecordError,
    TicksIn,
    decode_ticks,
    partition_of,
    topic_name,
)
from tickserver.ownership import OWNERSHIP_TOPIC, Ownership
from tickserver.sources.base import Source, SourceContext, SourcePlugin

log = logging.getLogger("tickserver.source.kafka")


class KafkaSourceConfig(BaseModel):
    """``[sources.kafka]``: consume ticks in a consumer group (connection: ``[kafka]``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str | None = Field(None, description="Ticks topic (default <kafka.topic_prefix>.ticks).")
    group_id: str = Field("tickserver-serving", min_length=1)
    start_from: Literal["earliest", "committed", "latest"] = Field(
        "earliest",
        description="Where a newly assigned partition is read from: earliest rebuilds the "
        "symbols' history from what Kafka retains; committed continues the group's offsets.",
    )
    clock: Literal["event", "wall"] = Field(
        "event",
        description="Close bars on event time (consistent with the ingest instance) or on "
        "this machine's clock.",
    )
    symbols: CsvList | None = Field(
        None,
        description="Symbols announced as owned before their first tick (default: "
        "market.symbols); symbols seen in owned partitions are added.",
    )
    session_timeout_ms: int = Field(10_000, ge=1000)
    heartbeat_interval_ms: int = Field(3_000, ge=100)
    rebalance_timeout_ms: int = Field(
        30_000,
        ge=1000,
        description="How long the group waits for members to rejoin in a rebalance (a member "
        "that died without leaving holds the rebalance up this long).",
    )
    max_poll_records: int = Field(10_000, ge=1)
    retry_backoff_ms: int = Field(200, ge=1)


class KafkaSource(Source):
    """Consume the ticks topic as one member of a consumer group."""

    def __init__(self, ctx: SourceContext, cfg: KafkaSourceConfig) -> None:
        super().__init__("kafka", ctx)
        self.cfg = cfg
        kcfg = ctx.config.kafka
        self.kcfg = kcfg
        self.topic = cfg.topic or topic_name(kcfg.topic_prefix, Kind.TICKS)
        self.live = cfg.clock == "wall"
        self.known = list(cfg.symbols or ctx.config.market.symbols)
        # Fail at start on a missing secret, not in the background.
        kclient.connection_options(kcfg)
        self.consumer: Any = None
        self.assigned: set[int] = set()
        self._before_revoke: set[int] = set()
        self.nparts: int | None = None
        self.by_partition: dict[int, set[str]] = collections.defaultdict(set)
        self.owned: frozenset[str] = frozenset()
        self._announced = False
        self.lag: int | None = None
        self._unassigned_since: float | None = None
        self._last_commit = 0.0
        self.positions: dict[int, int] = {}
        self.last_sseq: dict[tuple[int, str], int] = {}
        self.records_in = 0
        self.duplicates = 0
        self.bad_records = 0
        self.gap_events = 0
        self.rebalances = 0
        self.last_error = ""
        self._last_log = 0.0
        m = ctx.metrics
        self.m_records = m.counter(
            "kafka_source_records_total", "Records read from the ticks topic", ["result"]
        )
        self.m_gaps = m.counter(
            "kafka_source_gap_events_total",
            "Events the publisher announced it dropped (its spool was full)",
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Announce that nothing is owned yet and start consuming."""
        self._announce()
        self.set_health("degraded", f"joining group {self.cfg.group_id!r}", **self._details())
        self.spawn(self._run(), name="consume")
        self.spawn(self._watch_rebalances(), name="watch-rebalances")

    async def stop(self) -> None:
        """Leave the group (so the others take over at once) and stop."""
        if self._stopped:
            return
        await super().stop()
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 5.0)

    # ------------------------------------------------------------------ consuming
    def _new_consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            **kclient.connection_options(self.kcfg),
            group_id=self.cfg.group_id,
            # Positions are tracked here, not auto-committed: a commit that races a rebalance
            # can make a coordinator forget the member (noida-db), and the default
            # start_from = "earliest" does not need commits at all.
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.cfg.session_timeout_ms,
            heartbeat_interval_ms=self.cfg.heartbeat_interval_ms,
            max_poll_records=self.cfg.max_poll_records,
            request_timeout_ms=max(
                self.kcfg.request_timeout_ms, self.cfg.session_timeout_ms + 1000
            ),
            retry_backoff_ms=self.cfg.retry_backoff_ms,
            metadata_max_age_ms=5_000,
            rebalance_timeout_ms=self.cfg.rebalance_timeout_ms,
        )

    async def _run(self) -> None:
        from aiokafka import ConsumerRebalanceListener

        source = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                source._revoked({tp.partition for tp in revoked if tp.topic == source.topic})

            async def on_partitions_assigned(self, assigned: Any) -> None:
                await source._assigned(
                    {tp.partition for tp in assigned if tp.topic == source.topic}
                )

        backoff = self.cfg.retry_backoff_ms / 1000.0
        while True:
            consumer = self._new_consumer()
            try:
                await consumer.start()
                self.consumer = consumer
                consumer.subscribe([self.topic], listener=Listener())
                while True:
                    batches = await consumer.getmany(
                        timeout_ms=200, max_records=self.cfg.max_poll_records
                    )
                    for tp, recs in batches.items():
                        self._ingest(tp.partition, recs)
                        if recs:
                            self.positions[tp.partition] = recs[-1].offset + 1
                    await self._measure_lag(consumer)
                    if self.cfg.start_from == "committed":
                        await self._commit(consumer)
                    if self._health.state != "ok" and consumer.assignment() is not None:
                        self.set_health("ok", "", **self._details())
                    backoff = self.cfg.retry_backoff_ms / 1000.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.set_health(
                    "degraded",
                    f"cannot consume {self.topic} from {','.join(self.kcfg.bootstrap_servers)} "
                    f"({self.last_error}); retrying",
                    **self._details(),
                )
                if time.monotonic() - self._last_log > 30:
                    self._last_log = time.monotonic()
                    log.warning("kafka source: %s", self._health.reason)
                # Keep serving what we own (stale, and /readyz says so); the group decides
                # ownership again when we rejoin.
                self.consumer = None
                with contextlib.suppress(Exception):
                    await consumer.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _watch_rebalances(self) -> None:
        """Rejoin afresh when a rebalance does not complete.

        A coordinator can leave a rebalance hanging (noida-db does when a member's offset
        commit races the rebalance: it answers ILLEGAL_GENERATION, aiokafka rejoins as a new
        member, and the coordinator elects the stale old member as leader, whose assignment
        never comes). Stopping the consumer makes the consume loop join again with a new
        member id after the stale one expired.
        """
        limit = max(2 * self.cfg.session_timeout_ms, self.cfg.rebalance_timeout_ms) / 1000.0
        while True:
            await asyncio.sleep(min(1.0, limit / 4))
            since = self._unassigned_since
            consumer = self.consumer
            if since is None or consumer is None or time.monotonic() - since < limit:
                continue
            self._unassigned_since = time.monotonic()
            log.warning(
                "kafka source: no partitions assigned %.0fs after a rebalance; rejoining the "
                "group %r with a new consumer",
                limit,
                self.cfg.group_id,
                extra={"event": "kafka_rejoin"},
            )
            await consumer.stop()

    async def _commit(self, consumer: Any) -> None:
        """``start_from = "committed"``: commit the positions fed so far, once a second."""
        from aiokafka import TopicPartition

        now = time.monotonic()
        if now - self._last_commit < 1.0 or self._unassigned_since is not None:
            return
        self._last_commit = now
        offsets = {
            TopicPartition(self.topic, p): self.positions[p]
            for p in self.assigned
            if p in self.positions
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # a rebalance is under way; the next commit catches up
            log.debug("kafka source: commit failed: %r", exc)

    async def _assigned(self, partitions: set[int]) -> None:
        self._unassigned_since = None
        consumer = self.consumer
        kept = partitions & self._before_revoke
        new = partitions - self._before_revoke
        self.assigned = set(partitions)
        self.rebalances += 1
        if consumer is not None:
            from aiokafka import TopicPartition

            parts = consumer.partitions_for_topic(self.topic)
            self.nparts = len(parts) if parts else self.nparts
            for p in sorted(kept):
                if p in self.positions:  # go on where this instance stopped
                    consumer.seek(TopicPartition(self.topic, p), self.positions[p])
            tps = [TopicPartition(self.topic, p) for p in sorted(new)]
            if tps and self.cfg.start_from == "earliest":
                await consumer.seek_to_beginning(*tps)
            elif tps and self.cfg.start_from == "latest":
                await consumer.seek_to_end(*tps)
        log.info(
            "kafka source: assigned partitions %s of %s (new: %s)",
            sorted(partitions),
            self.topic,
            sorted(new),
            extra={"event": "kafka_assigned", "partitions": sorted(partitions)},
        )
        self._announce()
        self.set_health("ok", "", **self._details())

    def _revoked(self, partitions: set[int]) -> None:
        self._before_revoke = set(self.assigned)
        self._unassigned_since = time.monotonic()
        if not partitions:
            return
        self.assigned -= partitions
        log.info(
            "kafka source: partitions %s of %s revoked; no longer serving their symbols",
            sorted(partitions),
            self.topic,
            extra={"event": "kafka_revoked", "partitions": sorted(partitions)},
        )
        self._announce()

    def _announce(self) -> None:
        owned: set[str] = set()
        for p in self.assigned:
            owned |= self.by_partition.get(p, set())
        if self.nparts:
            owned |= {s for s in self.known if partition_of(s, self.nparts) in self.assigned}
        frozen = frozenset(owned)
        if frozen != self.owned or not self._announced:
            self._announced = True
            self.owned = frozen
            self.symbols = sorted(frozen)
            self.ctx.bus.publish(
                OWNERSHIP_TOPIC,
                Ownership(owner=self.name, symbols=frozen, partitions=tuple(sorted(self.assigned))),
            )

    def _ingest(self, partition: int, recs: list[Any]) -> None:
        parts: list[TicksIn] = []
        new_symbol = False
        for r in recs:
            try:
                t = decode_ticks(r.value)
            except RecordError as exc:
                self.bad_records += 1
                self.m_records.inc(result="bad")
                log.warning(
                    "kafka source: skipping record %s[%d]@%d: %s",
                    self.topic,
                    partition,
                    r.offset,
                    exc,
                    extra={"event": "kafka_bad_record"},
                )
                continue
            if isinstance(t, Gap):
                self.gap_events += t.last_sseq - t.first_sseq + 1
                self.m_gaps.inc(t.last_sseq - t.first_sseq + 1)
                log.warning(
                    "kafka source: the publisher dropped %s events %d..%d (%s)",
                    t.symbol,
                    t.first_sseq,
                    t.last_sseq,
                    t.reason,
                    extra={"event": "kafka_upstream_gap", "symbol": t.symbol},
                )
                continue
            key = (t.session, t.symbol)
            last = self.last_sseq.get(key, 0)
            if int(t.sseq[-1]) <= last:
                self.duplicates += len(t)
                self.m_records.inc(result="duplicate")
                continue
            if int(t.sseq[0]) <= last:
                keep = t.sseq > last
                self.duplicates += int((~keep).sum())
                t = TicksIn(
                    t.symbol,
                    t.session,
                    t.source,
                    t.sseq[keep],
                    t.seq[keep],
                    t.ts_event[keep],
                    t.ts_init[keep],
                    t.price[keep],
                    t.size[keep],
                    t.flags[keep],
                )
            self.last_sseq[key] = int(t.sseq[-1])
            if t.symbol not in self.by_partition[partition]:
                self.by_partition[partition].add(t.symbol)
                new_symbol = t.symbol not in self.owned
            self.m_records.inc(result="ok")
            parts.append(t)
        self.records_in += len(recs)
        if new_symbol and partition in self.assigned:
            self._announce()
        if not parts:
            return
        ids = np.concatenate(
            [np.full(len(t), self.ctx.symbols.intern(t.symbol), dtype=np.uint32) for t in parts]
        )
        now = time.time_ns()
        self.publish_trades(
            TradeBatch(
                source=self.name,
                symbol_id=ids,
                ts_event=np.concatenate([t.ts_event for t in parts]),
                ts_init=np.full(len(ids), now, dtype=np.int64),
                price=np.concatenate([t.price for t in parts]),
                size=np.concatenate([t.size for t in parts]),
                seq=np.concatenate([t.seq for t in parts]),
                flags=np.concatenate([t.flags for t in parts]),
            )
        )

    def publish_trades(self, batch: TradeBatch) -> TradeBatch:
        """Hand trades to the engine as they are: the ingest instance validated and numbered
        them, so they keep its ``seq`` (served ticks match the ingest's and the records')."""
        if len(batch):
            self._note(batch.ts_event, batch.ts_init, batch.flags)
            self.ctx.bus.publish(Topic.RAW_TRADES, batch)
        return batch

    # ------------------------------------------------------------------ reporting
    async def _measure_lag(self, consumer: Any) -> None:
        from aiokafka import TopicPartition

        total = 0
        for p in self.assigned:
            tp = TopicPartition(self.topic, p)
            hw = consumer.highwater(tp)
            if hw is None:
                continue
            total += max(0, hw - await consumer.position(tp))
        self.lag = total

    def _details(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "group": self.cfg.group_id,
            "partitions": sorted(self.assigned),
            "owned_symbols": len(self.owned),
            "records_in": self.records_in,
            "events_out": self.events_out,
            "duplicates_skipped": self.duplicates,
            "bad_records": self.bad_records,
            "upstream_gap_events": self.gap_events,
            "rebalances": self.rebalances,
            "lag": self.lag,
            "last_error": self.last_error,
        }

    def health(self) -> Health:
        """Report the state with fresh details (partitions, owned symbols, lag, …), as a copy."""
        h = super().health()
        h.details.update(self._details())
        return dataclasses.replace(h, details=dict(h.details))


PLUGIN = SourcePlugin(
    name="kafka",
    config_model=KafkaSourceConfig,
    factory=KafkaSource,
    description="Ticks from the Kafka ticks topic, shared by partition in a consumer group "
    "(scale-out serving instances).",
)
