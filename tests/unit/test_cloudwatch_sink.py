"""CloudWatch sink: registry -> datapoints (deltas, totals, derived), EMF documents, targets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.emf import validate_emf
from tickserver.bus import Bus
from tickserver.config import ConfigError, load_config
from tickserver.metrics import Metrics
from tickserver.sinks.base import SinkContext
from tickserver.sinks.cloudwatch import (
    CloudWatchSink,
    Datum,
    MetricsReader,
    emf_records,
    load_calendar,
    market_open,
    metric_data,
)
from tickserver.symbols import Symbols


def engine_like_metrics() -> tuple[Metrics, Any, Any]:
    """A registry with the families the engine and the app register, under the same names."""
    m = Metrics()
    events = m.counter("events_in_total", "Events received", ["source", "type"])
    rejects = m.counter("rejects_total", "Rejected", ["source", "type", "reason"])
    backlog = m.gauge("sink_backlog", "Backlog", ["sink"])
    backlog.set(7, sink="store")
    backlog.set(3, sink="kafka")
    return m, events, rejects


def by_key(datums: list[Datum]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(d.name, d.dims): d.value for d in datums}


def make_sink(tmp_path: Path, **cw: Any) -> tuple[CloudWatchSink, Metrics, Any]:
    cfg = load_config(environ={}, overrides={"cloudwatch": {"enabled": True, **cw}})
    metrics, events, _ = engine_like_metrics()
    ctx = SinkContext(config=cfg, bus=Bus(), symbols=Symbols(["AAPL"]), metrics=metrics)
    return CloudWatchSink(ctx), metrics, events


def test_counters_become_deltas_per_interval_and_gauges_stay_values() -> None:
    # Arrange
    metrics, events, rejects = engine_like_metrics()
    reader = MetricsReader(metrics, global_dims={"Stack": "prod"})
    events.inc(100, source="sim", type="trade")
    events.inc(40, source="sim", type="quote")
    first = by_key(reader.read(1_000, 10.0))
    # Act
    events.inc(30, source="sim", type="trade")
    rejects.inc(2, source="sim", type="trade", reason="bad_price")
    second = by_key(reader.read(2_000, 20.0))
    # Assert
    stack = (("Stack", "prod"),)
    assert first[("EventsIn", (*stack, ("Source", "sim"), ("Type", "trade")))] == 100
    assert first[("Ticks", stack)] == 100
    assert second[("EventsIn", (*stack, ("Source", "sim"), ("Type", "trade")))] == 30
    assert second[("EventsIn", (*stack, ("Source", "sim"), ("Type", "quote")))] == 0
    assert second[("EventsIn", stack)] == 30
    assert second[("Ticks", stack)] == 30
    assert second[("TicksPerSecond", stack)] == pytest.approx(3.0)
    reject_dims = (*stack, ("Source", "sim"), ("Type", "trade"), ("Reason", "bad_price"))
    assert second[("Rejects", reject_dims)] == 2
    assert second[("SinkBacklog", (*stack, ("Sink", "store")))] == 7
    assert second[("SinkBacklog", stack)] == 10


def test_counter_reset_counts_from_zero_instead_of_going_negative() -> None:
    # Arrange
    metrics, events, _ = engine_like_metrics()
    reader = MetricsReader(metrics, global_dims={})
    events.inc(50, source="sim", type="trade")
    reader.read(1, 1.0)
    # Act: a new process would start its counter again from 0
    events._values.clear()
    events.inc(5, source="sim", type="trade")
    got = by_key(reader.read(2, 2.0))
    # Assert
    assert got[("Ticks", ())] == 5


def test_extra_metrics_are_exported_with_their_labels_as_dimensions() -> None:
    # Arrange
    metrics, _, _ = engine_like_metrics()
    spool = metrics.gauge("kafka_spool_bytes", "Spool size", ["topic"])
    spool.set(4096, topic="ticks")
    reader = MetricsReader(metrics, global_dims={}, extra=["kafka_spool_bytes"])
    # Act
    got = by_key(reader.read(1, 1.0))
    # Assert
    assert got[("KafkaSpoolBytes", (("Topic", "ticks"),))] == 4096


def test_emf_documents_follow_the_spec_and_carry_every_value() -> None:
    # Arrange
    metrics, events, _ = engine_like_metrics()
    events.inc(12, source="sim", type="trade")
    datums = MetricsReader(metrics, global_dims={"Stack": "s1"}).read(1_700_000_000_000, 1.0)
    # Act
    docs = emf_records(datums, "tickserver")
    # Assert
    for doc in docs:
        validate_emf(json.loads(json.dumps(doc)))
    seen = {
        (m["Name"], tuple((k, doc[k]) for k in directive["Dimensions"][0])): doc[m["Name"]]
        for doc in docs
        for directive in doc["_aws"]["CloudWatchMetrics"]
        for m in directive["Metrics"]
    }
    assert seen == {(d.name, d.dims): d.value for d in datums}
    assert all(doc["_aws"]["Timestamp"] == 1_700_000_000_000 for doc in docs)


def test_emf_splits_more_than_100_metrics_into_several_documents() -> None:
    # Arrange
    datums = [Datum(f"M{i}", (("Stack", "s"),), float(i), "Count", 5) for i in range(250)]
    # Act
    docs = emf_records(datums, "ns", storage_resolution=1)
    # Assert
    assert [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in docs] == [100, 100, 50]
    for doc in docs:
        validate_emf(doc)
        assert doc["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] == 1


def test_metric_data_entries_name_dimensions_and_unit() -> None:
    # Act
    [entry] = metric_data([Datum("Ready", (("Stack", "s"),), 1.0, "None", 1_000)])
    # Assert
    assert entry["MetricName"] == "Ready"
    assert entry["Dimensions"] == [{"Name": "Stack", "Value": "s"}]
    assert entry["Unit"] == "None"
    assert entry["Timestamp"].timestamp() == 1.0


def test_market_open_follows_the_exchange_calendar() -> None:
    # Arrange
    nyse = load_calendar("XNYS")
    monday_10am_new_york = 1_719_842_400 * 10**9  # 2024-07-01 14:00 UTC
    sunday = 1_719_756_000 * 10**9  # 2024-06-30 14:00 UTC
    # Act / Assert
    assert market_open(nyse, monday_10am_new_york) is True
    assert market_open(nyse, sunday) is False
    assert market_open(nyse, 0) is None  # 1970: outside the calendar, unknown


@pytest.mark.parametrize(
    "target", ["stdout", "file:/var/log/x.emf", "tcp://127.0.0.1:25888", "udp://[::1]:25888"]
)
def test_emf_target_accepts_the_documented_forms(target: str) -> None:
    cfg = load_config(environ={}, overrides={"cloudwatch": {"emf_target": target}})
    assert cfg.cloudwatch.emf_target == target


@pytest.mark.parametrize("target", ["file:", "http://x:1", "tcp://host", "udp://h:99999"])
def test_emf_target_rejects_other_forms_naming_the_key(target: str) -> None:
    with pytest.raises(ConfigError, match=r"cloudwatch\.emf_target: Value error, expected stdout"):
        load_config(environ={}, overrides={"cloudwatch": {"emf_target": target}})


async def test_sink_writes_starts_at_start_and_a_last_interval_at_stop(tmp_path: Path) -> None:
    # Arrange
    out = tmp_path / "metrics.emf"
    sink, _metrics, events = make_sink(
        tmp_path, emf_target=f"file:{out}", interval_s=3600, dimensions={"Stack": "t"}
    )
    # Act
    await sink.start()
    events.inc(9, source="sim", type="trade")
    await sink.stop()
    # Assert
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    for doc in docs:
        validate_emf(doc)
    totals = [d for d in docs if d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stack"]]]
    assert [d.get("Starts") for d in totals] == [1.0, None]
    assert [d["Ticks"] for d in totals] == [0.0, 9.0]
    assert "MarketOpen" in totals[0]
    assert sink.health().state == "stopped"


async def test_tcp_target_delivers_lines_to_an_agent_listener(tmp_path: Path) -> None:
    # Arrange: a listener standing in for the CloudWatch agent's EMF endpoint
    received: list[bytes] = []
    got_line = asyncio.Event()

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            received.append(line)
            got_line.set()
        writer.close()

    server = await asyncio.start_server(agent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink, _, _ = make_sink(
        tmp_path, emf_target=f"tcp://127.0.0.1:{port}", interval_s=3600, market_open_metric=False
    )
    try:
        # Act
        await sink.start()
        await asyncio.wait_for(got_line.wait(), 10)
        await sink.stop()
    finally:
        server.close()
        await server.wait_closed()
    # Assert
    docs = [json.loads(line) for line in received]
    for doc in docs:
        validate_emf(doc)
    assert any(d.get("Starts") == 1.0 for d in docs)


async def test_unreachable_tcp_target_is_counted_and_does_not_fail_the_sink(
    tmp_path: Path,
) -> None:
    # Arrange: nothing listens on this port
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink, metrics, _ = make_sink(
        tmp_path, emf_target=f"tcp://127.0.0.1:{port}", interval_s=3600, market_open_metric=False
    )
    # Act
    await sink.start()
    await sink.flush()
    state, details = sink.health().state, dict(sink.health().details)
    await sink.stop()
    # Assert
    assert state == "ok"
    assert details["errors"] >= 2
    assert "Connect call failed" in details["last_error"]
    assert "tickserver_cloudwatch_errors_total" in metrics.render()
