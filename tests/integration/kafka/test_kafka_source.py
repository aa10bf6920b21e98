"""``--source kafka`` against real brokers, in-process: group membership, ownership, replay.

A Kafka sink publishes numbered trades of eight symbols; two kafka sources in one consumer
group (each with its own bus and symbol table, like two serving processes) consume them.
Their trades and ownership announcements are captured from their buses.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.brokers import Broker
from tests.support.kafka import Rig, kafka_config, wait_for
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import TradeBatch
from tickserver.metrics import Metrics
from tickserver.ownership import OWNERSHIP_TOPIC, Ownership
from tickserver.sources.base import SourceContext
from tickserver.sources.kafka import KafkaSource, KafkaSourceConfig
from tickserver.symbols import Symbols

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

SYMS = ["AAPL", "MSFT", "NVDA", "SPY", "AMZN", "META", "TSLA", "GOOGL"]


class Serving:
    """One kafka source on its own bus, recording what it publishes and announces."""

    def __init__(self, broker: Broker, name: str, **source: Any) -> None:
        bootstrap = broker.bootstrap
        cfg = load_config(
            environ={},
            overrides={
                "kafka": {"bootstrap_servers": [bootstrap], "request_timeout_ms": 3000},
                "market": {"symbols": SYMS},
            },
        )
        self.name = name
        self.bus = Bus()
        self.symbols = Symbols(SYMS)
        ctx = SourceContext(config=cfg, bus=self.bus, symbols=self.symbols, metrics=Metrics())
        opts = {
            "session_timeout_ms": broker.session_timeout_ms,
            "heartbeat_interval_ms": 300,
            **source,
        }
        self.source = KafkaSource(ctx, KafkaSourceConfig(**opts))
        self.seqs: dict[str, list[int]] = collections.defaultdict(list)
        self.owned: frozenset[str] | None = None
        self.bus.attach(Topic.RAW_TRADES, self._on_trades, name="test")
        self.bus.attach(OWNERSHIP_TOPIC, self._on_owner, name="test")

    def _on_trades(self, b: TradeBatch) -> None:
        for sid, q in zip(b.symbol_id.tolist(), b.seq.tolist(), strict=True):
            self.seqs[self.symbols.name(sid)].append(q)

    def _on_owner(self, o: Ownership) -> None:
        self.owned = o.symbols


async def test_two_serving_sources_split_the_symbols_and_take_over_on_leave(
    broker: Broker, tmp_path: Path
) -> None:
    # Arrange: 8 symbols published over 4 partitions
    cfg = kafka_config(tmp_path, broker.bootstrap, partitions=4)
    async with Rig(cfg) as rig:
        for _ in range(10):
            rig.ticks(80, symbols=SYMS)
        await rig.wait_delivered()
    published = {s: list(v) for s, v in rig.published.items()}
    a = Serving(broker, "a")
    b = Serving(broker, "b")
    await a.source.start()
    await b.source.start()
    try:
        # Act 1: both join; wait until the symbols are split and every tick is consumed
        def split_done() -> bool:
            if not a.owned or not b.owned:
                return False
            return all(
                sorted((a if s in a.owned else b).seqs.get(s, [])) == published[s] for s in SYMS
            )

        await wait_for(split_done, 45, "both instances to own and consume their symbols")
        owned_a, owned_b = set(a.owned or ()), set(b.owned or ())
        consumed_a = {s: list(v) for s, v in a.seqs.items()}
        consumed_b = {s: list(v) for s, v in b.seqs.items()}
        # Act 2: one instance leaves; the other takes its symbols over
        await a.source.stop()
        await wait_for(
            lambda: (
                set(b.owned or ()) == set(SYMS)
                and all(sorted(set(b.seqs.get(s, []))) == published[s] for s in SYMS)
            ),
            45,
            "the survivor to own and replay every symbol",
        )
        health = b.source.health()
    finally:
        await a.source.stop()
        await b.source.stop()
    # Assert
    assert owned_a | owned_b == set(SYMS)
    assert not owned_a & owned_b
    assert owned_a
    assert owned_b
    for s in SYMS:
        mine, other = (consumed_a, consumed_b) if s in owned_a else (consumed_b, consumed_a)
        assert mine[s] == published[s]  # every tick, in order, once
        assert s not in other
    for s in owned_b:
        assert b.seqs[s] == published[s]  # kept symbols were not fed twice
    assert health.details["partitions"] == [0, 1, 2, 3]
    assert health.state == "ok"


async def test_source_feeds_redelivered_records_once(broker: Broker, tmp_path: Path) -> None:
    # Arrange: 40 trades published, then every record sent again (an at-least-once retry)
    cfg = kafka_config(tmp_path, broker.bootstrap, partitions=2)
    async with Rig(cfg) as rig:
        rig.ticks(40, symbols=SYMS[:2])
        await rig.wait_delivered()
    raw = await _read_raw(broker.bootstrap, "tickserver.ticks", 40)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for partition, key, value in raw:
            await producer.send_and_wait("tickserver.ticks", value, key=key, partition=partition)
    finally:
        await producer.stop()
    srv = Serving(broker, "solo")
    await srv.source.start()
    try:
        # Act
        await wait_for(
            lambda: srv.source.health().details["records_in"] >= 80, 30, "both copies to arrive"
        )
        health = srv.source.health()
    finally:
        await srv.source.stop()
    # Assert
    assert {s: v for s, v in srv.seqs.items()} == {s: v for s, v in rig.published.items()}
    assert health.details["duplicates_skipped"] == 40


async def _read_raw(bootstrap: str, topic: str, n: int) -> list[tuple[int, bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[int, bytes, bytes]] = []
    try:
        while len(out) < n:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, recs in batches.items():
                out.extend((tp.partition, r.key, r.value) for r in recs)
    finally:
        await consumer.stop()
    return out
