"""The Kafka sink without a broker: acceptance into the spool, sseq numbering, spool full."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.support.kafka import SYMBOLS, Rig, kafka_config, wait_for
from tests.support.server import free_port
from tickserver.bus import Topic
from tickserver.events import BarBatch
from tickserver.kafka.client import KafkaConfigError
from tickserver.kafka.records import Kind, unpack_frame


def unreachable() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens there


def spooled_frames(rig: Rig) -> list:  # type: ignore[type-arg]
    assert rig.sink.spool is not None
    return [unpack_frame(d) for _, d in rig.sink.spool.read(0, max_records=100_000)]


async def test_events_are_accepted_into_the_spool_while_the_broker_is_unreachable(
    tmp_path: Path,
) -> None:
    # Arrange
    addr = unreachable()
    async with Rig(kafka_config(tmp_path, addr)) as rig:
        # Act
        rig.ticks(10)
        rig.ticks(5)
        await wait_for(lambda: "unavailable" in rig.sink.health().reason, 10, "the failure")
        health = rig.sink.health()
        # Assert
        assert health.state == "degraded"
        assert addr in health.reason
        assert health.details["accepted_events"] == 15
        assert health.details["connected"] is False
        assert rig.sink.backlog() == 2
        assert rig.bus.stats.callback_errors == {}


async def test_sseq_counts_each_topic_and_symbol_from_one_across_batches(tmp_path: Path) -> None:
    # Arrange
    async with Rig(kafka_config(tmp_path, unreachable())) as rig:
        # Act
        rig.ticks(6)  # AAPL MSFT NVDA SPY AAPL MSFT
        rig.ticks(3)  # AAPL MSFT NVDA
        frames = spooled_frames(rig)
    # Assert
    sseq: dict[str, list[int]] = {s: [] for s in SYMBOLS}
    for fr in frames:
        for sym, q in zip(fr.cols["sym"].tolist(), fr.cols["sseq"].tolist(), strict=True):
            sseq[fr.symbols[sym]].append(q)
    assert sseq == {"AAPL": [1, 2, 3], "MSFT": [1, 2, 3], "NVDA": [1, 2], "SPY": [1]}
    assert all(fr.session == rig.sink.session for fr in frames)


async def test_full_spool_drops_the_newest_batch_counts_and_reports_it(tmp_path: Path) -> None:
    # Arrange: the smallest spool and no broker
    cfg = kafka_config(tmp_path, unreachable(), spool_max_bytes=1 << 20)
    async with Rig(cfg) as rig:
        # Act
        for _ in range(40):
            rig.ticks(1000)
        health = rig.sink.health()
        dropped = rig.sink.dropped_events
        metrics = rig.metrics.render()
        errors = dict(rig.bus.stats.callback_errors)
    # Assert
    assert 0 < dropped < 40_000
    assert dropped % 1000 == 0  # whole batches, the newest ones
    assert health.state == "degraded"
    assert f"spool full: dropped {dropped} events" in health.reason
    assert f'tickserver_kafka_dropped_events_total{{kind="ticks"}} {dropped}' in metrics
    assert errors == {}  # never an exception into the bus


async def test_gap_notice_is_spooled_before_the_next_accepted_batch(tmp_path: Path) -> None:
    # Arrange: a full spool that is then emptied by hand
    cfg = kafka_config(tmp_path, unreachable(), spool_max_bytes=1 << 20)
    async with Rig(cfg) as rig:
        while rig.sink.dropped_events == 0:
            rig.ticks(1000)
        dropped = rig.sink.dropped_events
        spool = rig.sink.spool
        assert spool is not None
        spool.commit(spool.next_offset - 1)  # as if everything had been delivered
        # Act
        rig.ticks(4)
        frames = spooled_frames(rig)
    # Assert
    assert [f.kind for f in frames] == [Kind.GAP, Kind.TICKS]
    gaps = frames[0].gaps
    assert sum(g.last_sseq - g.first_sseq + 1 for g in gaps) == dropped
    first_after = {
        frames[1].symbols[s]: q
        for s, q in zip(
            frames[1].cols["sym"].tolist(), frames[1].cols["sseq"].tolist(), strict=True
        )
    }
    for g in gaps:
        assert first_after[g.symbol] == g.last_sseq + 1  # numbering goes on after the hole


async def test_only_final_bars_of_published_intervals_are_accepted(tmp_path: Path) -> None:
    # Arrange
    cfg = kafka_config(tmp_path, unreachable(), bar_intervals=["1m"])
    async with Rig(cfg) as rig:

        def bars(interval: str, final: bool) -> BarBatch:
            one = np.ones(1)
            return BarBatch(
                interval=interval,
                final=final,
                symbol_id=np.zeros(1, dtype=np.uint32),
                ts_event=np.zeros(1, dtype=np.int64),
                open=one,
                high=one,
                low=one,
                close=one,
                volume=one,
                vwap=one,
                trades=np.ones(1, dtype=np.uint64),
            )

        # Act
        rig.bus.publish(Topic.BARS, bars("1m", True))
        rig.bus.publish(Topic.BARS, bars("1m", False))
        rig.bus.publish(Topic.BARS, bars("5m", True))
        frames = spooled_frames(rig)
    # Assert
    assert [(f.kind, f.interval, f.final) for f in frames] == [(Kind.BARS, "1m", True)]
    assert rig.sink.topics() == ["tickserver.ticks", "tickserver.signals", "tickserver.bars.1m"]


def test_missing_secret_fails_when_the_sink_is_created(tmp_path: Path) -> None:
    cfg = kafka_config(
        tmp_path,
        unreachable(),
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password_env="TICKSERVER_TEST_UNSET_PASSWORD_VAR",
    )
    with pytest.raises(KafkaConfigError, match="TICKSERVER_TEST_UNSET_PASSWORD_VAR"):
        Rig(cfg)


async def test_stop_keeps_undelivered_records_for_the_next_run(tmp_path: Path) -> None:
    # Arrange
    cfg = kafka_config(tmp_path, unreachable(), shutdown_flush_s=0.2)
    async with Rig(cfg) as rig:
        rig.ticks(7)
        await asyncio.sleep(0.05)
    # Act: a second run on the same spool directory
    async with Rig(cfg) as again:
        left = again.sink.backlog()
        frames = spooled_frames(again)
    # Assert
    assert left == 1
    assert frames[0].session == rig.sink.session != again.sink.session
    assert len(frames[0]) == 7
