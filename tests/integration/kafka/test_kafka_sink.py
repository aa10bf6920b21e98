"""The Kafka publisher against real brokers (Tansu and noida-db), in-process on a real bus.

The sink, its spool and the broker are real and talk over sockets; only the event source is
this test, publishing numbered trades on the bus. Records are read back by Debian's kcat or
by an independent aiokafka consumer.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.brokers import Broker
from tests.support.kafka import (
    SYMBOLS,
    Collector,
    Rig,
    events_by_symbol,
    kafka_config,
    wait_for,
)
from tickserver.spool import Spool

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

Reader = Callable[..., list[dict[str, Any]]]


def _assert_complete_in_order(
    values: list[dict[str, Any]], published: dict[str, list[int]]
) -> None:
    """Per symbol: sseq runs 1..N without gaps, in order, and carries the published seqs."""
    got = events_by_symbol(values)
    assert sorted(got) == sorted(published)
    for sym, seqs in published.items():
        events = got[sym]
        # At-least-once: a retried batch may repeat; drop exact repeats, then demand 1..N.
        unique = list(dict.fromkeys(events))
        assert [e[1] for e in unique] == list(range(1, len(seqs) + 1)), sym
        assert [e[2] for e in unique] == seqs, sym


def _distinct(values: list[dict[str, Any]]) -> int:
    return sum(len(set(v)) for v in events_by_symbol(values).values())


@pytest.mark.parametrize("mode", ["immediate", "batched"])
async def test_published_records_validate_against_schema_and_keep_symbol_order(
    broker: Broker, kcat: Reader, record_schema: Any, tmp_path: Path, mode: str
) -> None:
    # Arrange
    cfg = kafka_config(tmp_path, broker.bootstrap, ticks=mode, bars=mode, signals=mode)
    # Act
    async with Rig(cfg) as rig:
        for _ in range(20):
            rig.ticks(250)
            await asyncio.sleep(0.005)
        rig.bars("1m")
        rig.signals()
        await rig.wait_delivered()
        session = rig.sink.session
    ticks = await asyncio.to_thread(kcat, "tickserver.ticks")
    bars = await asyncio.to_thread(kcat, "tickserver.bars.1m")
    signals = await asyncio.to_thread(kcat, "tickserver.signals")
    # Assert
    for row in ticks + bars + signals:
        record_schema.validate(row["value"])
        assert row["key"] == row["value"]["symbol"]
        assert row["headers"] == {
            "content-type": "application/json",
            "schema-version": "1",
            "record-type": row["value"]["type"],
        }
        assert row["value"]["session"] == session
    expected_type = "tick" if mode == "immediate" else "ticks"
    assert {r["value"]["type"] for r in ticks} == {expected_type}
    by_partition: dict[str, set[int]] = collections.defaultdict(set)
    for row in ticks:
        by_partition[row["key"]].add(row["partition"])
    assert all(len(p) == 1 for p in by_partition.values())  # one partition per symbol
    ordered = sorted(ticks, key=lambda r: (r["partition"], r["offset"]))
    _assert_complete_in_order([r["value"] for r in ordered], dict(rig.published))
    assert sorted(r["value"]["symbol"] for r in bars) == sorted(SYMBOLS)
    bar_vwaps = {r["value"]["symbol"]: r["value"]["vwap"] for r in bars}
    if mode == "immediate":
        assert bar_vwaps["MSFT"] is None  # NaN is published as null
    assert sorted((r["value"]["symbol"], str(r["value"]["rule"])) for r in signals) == [
        ("AAPL", "ema_cross" if mode == "immediate" else "['ema_cross']"),
        ("MSFT", "rsi_extreme" if mode == "immediate" else "['rsi_extreme']"),
    ]


async def test_idempotence_is_used_where_the_broker_grants_producer_ids(
    broker: Broker, tmp_path: Path
) -> None:
    # Arrange
    cfg = kafka_config(tmp_path, broker.bootstrap, idempotence="auto")
    # Act
    async with Rig(cfg) as rig:
        rig.ticks(100)
        await rig.wait_delivered()
        idempotent = rig.sink.idempotent
        delivered = rig.sink.delivered_events
        metrics = rig.metrics.render()
    # Assert
    assert idempotent is broker.supports_idempotence
    assert delivered == 100
    assert 'tickserver_kafka_events_total{kind="ticks"} 100' in metrics
    assert 'tickserver_kafka_records_total{topic="tickserver.ticks"} 100' in metrics
    assert "tickserver_kafka_connected 1" in metrics


async def test_unreachable_broker_at_start_spools_then_drains_in_order(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    # Arrange: the broker is down when the publisher starts
    broker.kill()
    cfg = kafka_config(tmp_path, broker.bootstrap)
    async with Rig(cfg) as rig:
        # Act
        for _ in range(10):
            rig.ticks(100)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        health = rig.sink.health()
        backlog = rig.sink.backlog()
        await asyncio.to_thread(broker.start)
        await rig.wait_delivered()
        recovered = rig.sink.health()
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert health.state == "degraded"
    assert "unavailable" in health.reason
    assert broker.bootstrap in health.reason
    assert backlog == 10  # one spool record per bus batch, none lost, none sent
    assert recovered.state == "ok"
    ordered = sorted(rows, key=lambda r: (r["partition"], r["offset"]))
    _assert_complete_in_order([r["value"] for r in ordered], dict(rig.published))


async def test_broker_killed_mid_stream_every_accepted_event_reaches_the_broker(
    broker: Broker, tmp_path: Path
) -> None:
    """SIGKILL the broker while events keep coming, restart it, account for every sseq.

    Both test brokers keep records in memory, so records they acknowledged and nobody read
    yet die with them. To make the proof exact, the independent consumer first catches up
    with everything acknowledged (the stream pauses for that moment), then the broker is
    killed and the stream resumes at once: every event published afterwards is accepted into
    the spool while the broker is dead and must reach the restarted broker.
    """
    # Arrange
    cfg = kafka_config(tmp_path, broker.bootstrap)
    topic = "tickserver.ticks"
    async with Rig(cfg) as rig:
        before = await Collector(broker.bootstrap, [topic]).start()
        try:
            for _ in range(20):
                rig.ticks(50)
                await asyncio.sleep(0.01)
            await rig.wait_delivered()
            accepted = rig.sink.accepted_events
            await wait_for(lambda: before.events(topic) >= accepted, 30, "the consumer")
        finally:
            await before.stop()
        # Act: kill the broker and keep the stream going
        await asyncio.to_thread(broker.kill)
        for _ in range(30):
            rig.ticks(50)
            await asyncio.sleep(0.02)
        await wait_for(lambda: rig.sink.health().state == "degraded", 10, "the outage")
        outage = rig.sink.health()
        spooled = rig.sink.backlog()
        await asyncio.to_thread(broker.start)
        for _ in range(10):
            rig.ticks(50)
            await asyncio.sleep(0.01)
        await rig.wait_delivered()
        total = rig.sink.accepted_events
    # A consumer that started before the restart can stall on Tansu's fresh log, so read
    # the restarted broker with a new one (kcat-style: from the beginning, to the end).
    after = await Collector(broker.bootstrap, [topic]).start()
    try:
        await wait_for(
            lambda: _distinct(before.values[topic] + after.values[topic]) >= total,
            30,
            "every event to be consumed",
        )
        seen = before.values[topic] + after.values[topic]
    finally:
        await after.stop()
    # Assert
    assert outage.state == "degraded"
    assert spooled > 0
    assert total == 3000
    _assert_complete_in_order(seen, dict(rig.published))


async def test_topic_deleted_under_running_publisher_is_created_again(
    broker: Broker, tmp_path: Path
) -> None:
    # Arrange
    cfg = kafka_config(tmp_path, broker.bootstrap, create_topics=True)
    async with Rig(cfg) as rig:
        rig.ticks(200)
        await rig.wait_delivered()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            # Act
            await admin.delete_topics(["tickserver.ticks"])
            before = rig.published.copy()
            rig.published.clear()
            rig.ticks(200)
            rig.ticks(200)
            await rig.wait_delivered(within=90)
            collector = await Collector(broker.bootstrap, ["tickserver.ticks"]).start()
            try:
                await wait_for(
                    lambda: collector.events("tickserver.ticks") >= 400, 30, "the consumer"
                )
            finally:
                await collector.stop()
            topics = await admin.list_topics()
        finally:
            await admin.close()
        health = rig.sink.health()
    # Assert: everything accepted after the deletion reached the recreated topic
    assert "tickserver.ticks" in topics
    assert health.state == "ok"
    got = events_by_symbol(collector.values["tickserver.ticks"])
    for sym, seqs in rig.published.items():
        assert [q for _, _, q in dict.fromkeys(got[sym])] == seqs
        first = len(before[sym]) + 1
        assert [s for _, s, _ in dict.fromkeys(got[sym])] == list(range(first, first + len(seqs)))


async def test_missing_topic_without_create_topics_is_a_clear_error_until_created(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    # Arrange: no topics exist and the publisher may not create them
    cfg = kafka_config(tmp_path, broker.bootstrap, create_topics=False, bars="off", signals="off")
    async with Rig(cfg) as rig:
        rig.ticks(100)
        # Act
        await wait_for(lambda: "do not exist" in rig.sink.health().reason, 20, "the error")
        waiting = rig.sink.health()
        backlog = rig.sink.backlog()
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("tickserver.ticks", 3, 1)])
        finally:
            await admin.close()
        await rig.wait_delivered()
        recovered = rig.sink.health()
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert waiting.state == "degraded"
    assert "tickserver.ticks" in waiting.reason
    assert "kafka.create_topics is false" in waiting.reason
    assert backlog == 1
    assert recovered.state == "ok"
    assert sorted(r["value"]["seq"] for r in rows) == list(range(1, 101))


async def test_record_larger_than_the_limit_is_dead_lettered_and_the_rest_flows(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    """A single-event record over the limit cannot be split: it goes to the dead-letter file.

    noida-db refuses records over ~1 MB itself, so there the publisher's own limit is raised
    above the broker's and the *broker* refuses the record; Tansu has no limit, so there the
    publisher's ``max_record_bytes`` is what the record exceeds.
    """
    # Arrange
    limit = 4_000_000 if broker.enforces_message_max_bytes else 200_000
    # noida-db's limit applies to the compressed batch: send it uncompressed
    cfg = kafka_config(tmp_path, broker.bootstrap, max_record_bytes=limit, compression="none")
    huge_source = "x" * (1_500_000 if broker.enforces_message_max_bytes else 300_000)
    async with Rig(cfg) as rig:
        rig.ticks(40)
        # Act: one trade whose record is too large, between normal ones
        rig.ticks(1, source=huge_source, symbols=["AAPL"])
        rig.ticks(40)
        await rig.wait_delivered(within=60)
        dead = rig.sink.dead_lettered
        metric = rig.metrics.render()
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert dead == 1
    assert 'tickserver_kafka_dead_letter_records_total{topic="tickserver.ticks"} 1' in metric
    lines = (tmp_path / "spool" / "dead-letter.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["topic"] == "tickserver.ticks"
    assert entry["key"] == "AAPL"
    assert json.loads(entry["value"])["seq"] == 41
    delivered = sorted(r["value"]["seq"] for r in rows)
    assert delivered == [q for q in range(1, 82) if q != 41]


async def test_batched_record_refused_by_the_broker_is_split_not_lost(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    if not broker.enforces_message_max_bytes:
        pytest.skip("Tansu accepts records of any size; the client-side split is unit-tested")
    # Arrange: the publisher's own limit is above the broker's ~1 MB
    cfg = kafka_config(
        tmp_path,
        broker.bootstrap,
        ticks="batched",
        max_record_bytes=8_000_000,
        flush_ms=2000,
        compression="none",  # noida-db's limit applies to the compressed batch
    )
    async with Rig(cfg) as rig:
        # Act: ~30k trades of one symbol in one window make a ~3 MB record
        for _ in range(30):
            rig.ticks(1000, symbols=["AAPL"])
        await rig.wait_delivered(within=60)
        splits = rig.sink.m_splits.value()
        dead = rig.sink.dead_lettered
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert splits >= 1
    assert dead == 0
    assert all(r["value"]["type"] == "ticks" for r in rows)
    _assert_complete_in_order(
        [r["value"] for r in sorted(rows, key=lambda r: r["offset"])], dict(rig.published)
    )


async def test_full_spool_drops_newest_loudly_and_announces_the_gap(
    broker: Broker, kcat: Reader, record_schema: jsonschema.protocols.Validator, tmp_path: Path
) -> None:
    # Arrange: broker down, the smallest spool
    broker.kill()
    cfg = kafka_config(tmp_path, broker.bootstrap, spool_max_bytes=1 << 20)
    async with Rig(cfg) as rig:
        # Act: ~45 bytes per trade in the spool: 40k trades overflow 1 MiB
        for _ in range(40):
            rig.ticks(1000)
        dropped = rig.sink.dropped_events
        health = rig.sink.health()
        metric = rig.metrics.render()
        await asyncio.to_thread(broker.start)
        await rig.wait_delivered(within=90)
        rig.ticks(100)  # room again: the gap notice goes out before these
        await rig.wait_delivered(within=30)
        accepted = rig.sink.accepted_events
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert dropped > 0
    assert health.state == "degraded"
    assert "spool full" in health.reason
    assert f'tickserver_kafka_dropped_events_total{{kind="ticks"}} {dropped}' in metric
    values = [r["value"] for r in sorted(rows, key=lambda r: (r["partition"], r["offset"]))]
    for v in values:
        record_schema.validate(v)
    gaps = [v for v in values if v["type"] == "gap"]
    assert sum(g["count"] for g in gaps) == dropped
    got = events_by_symbol(values)
    assert sum(len(set(e)) for e in got.values()) == accepted
    for sym in SYMBOLS:
        seen = {s for _, s, _ in got[sym]}
        missing = {
            s for g in gaps if g["symbol"] == sym for s in range(g["sseq"], g["last_sseq"] + 1)
        }
        assert seen.isdisjoint(missing)
        assert seen | missing == set(range(1, max(seen | missing) + 1)), sym


async def test_undecodable_spool_record_is_dead_lettered_and_delivery_goes_on(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    # Arrange: a record in the spool that is not a frame (e.g. from a future version)
    cfg = kafka_config(tmp_path, broker.bootstrap)
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    spool.append(b"not a frame")
    spool.close()
    # Act
    async with Rig(cfg) as rig:
        rig.ticks(10)
        await rig.wait_delivered()
        dead = rig.sink.dead_lettered
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert
    assert dead == 1
    entry = json.loads((tmp_path / "spool" / "dead-letter.jsonl").read_text())
    assert entry["record_type"] == "spool-frame"
    assert "cannot be decoded" in entry["error"]
    assert sorted(r["value"]["seq"] for r in rows) == list(range(1, 11))


async def test_previous_run_spool_is_delivered_before_the_new_session(
    broker: Broker, kcat: Reader, tmp_path: Path
) -> None:
    # Arrange: a first run accepts trades while the broker is down, then stops
    broker.kill()
    cfg = kafka_config(tmp_path, broker.bootstrap, shutdown_flush_s=0.2)
    async with Rig(cfg) as first:
        first.ticks(40)
        first.ticks(40)
    await asyncio.to_thread(broker.start)
    # Act: the next run, broker up
    async with Rig(cfg) as second:
        second.ticks(40)
        await second.wait_delivered()
    rows = await asyncio.to_thread(kcat, "tickserver.ticks")
    # Assert: per partition, every record of the old session comes before the new session's
    by_partition: dict[int, list[int]] = collections.defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["partition"], r["offset"])):
        by_partition[r["partition"]].append(r["value"]["session"])
    for sessions in by_partition.values():
        assert sessions == sorted(sessions, key=lambda s: s != first.sink.session)
    values = [r["value"] for r in rows]
    assert sum(v["session"] == first.sink.session for v in values) == 80
    assert sum(v["session"] == second.sink.session for v in values) == 40
