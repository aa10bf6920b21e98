"""CloudWatch sink in ``api`` mode against moto's CloudWatch server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.support.server import free_port
from tickserver.bus import Bus
from tickserver.config import load_config
from tickserver.metrics import Metrics
from tickserver.sinks.base import SinkContext
from tickserver.sinks.cloudwatch import CloudWatchSink
from tickserver.symbols import Symbols

pytestmark = pytest.mark.integration

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, so nothing can reach a real account."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def start_moto(port: int) -> ThreadedMotoServer:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its backends in process memory: start every test from an empty account.
    httpx.post(f"http://127.0.0.1:{port}/moto-api/reset", timeout=10).raise_for_status()
    return server


@pytest.fixture
def moto_cloudwatch(aws_env: None) -> Iterator[str]:
    """moto's server on a free port; yields its endpoint URL."""
    port = free_port()
    server = start_moto(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def make_sink(endpoint: str, **cw: Any) -> tuple[CloudWatchSink, Any]:
    cfg = load_config(
        environ={},
        overrides={
            "cloudwatch": {
                "enabled": True,
                "mode": "api",
                "region": REGION,
                "endpoint_url": endpoint,
                "interval_s": 3600,
                "dimensions": {"Stack": "it"},
                **cw,
            }
        },
    )
    metrics = Metrics()
    events = metrics.counter("events_in_total", "Events", ["source", "type"])
    metrics.gauge("ready", "Ready").set(1)
    ctx = SinkContext(config=cfg, bus=Bus(), symbols=Symbols(), metrics=metrics)
    return CloudWatchSink(ctx), events


def read_sum(client: Any, name: str, dims: list[dict[str, str]]) -> float:
    now = dt.datetime.now(dt.UTC)
    res = client.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": "tickserver", "MetricName": name, "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=now - dt.timedelta(hours=1),
        EndTime=now + dt.timedelta(minutes=5),
    )
    return float(sum(res["MetricDataResults"][0]["Values"]))


async def test_put_metric_data_reaches_cloudwatch_and_reads_back(moto_cloudwatch: str) -> None:
    # Arrange
    sink, events = make_sink(moto_cloudwatch, market_open_metric=False)
    client = boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_cloudwatch)
    # Act
    await sink.start()
    events.inc(25, source="sim", type="trade")
    events.inc(5, source="sim", type="quote")
    await sink.stop()
    # Assert
    listed = client.list_metrics(Namespace="tickserver")["Metrics"]
    names = {m["MetricName"] for m in listed}
    assert {"EventsIn", "Ticks", "Ready", "Starts"} <= names
    stack = [{"Name": "Stack", "Value": "it"}]
    per_source = [*stack, {"Name": "Source", "Value": "sim"}, {"Name": "Type", "Value": "trade"}]
    assert read_sum(client, "Ticks", stack) == 25
    assert read_sum(client, "EventsIn", stack) == 30
    assert read_sum(client, "EventsIn", per_source) == 25
    assert read_sum(client, "Starts", stack) == 1
    assert sink.backlog() == 0


async def test_datapoints_survive_an_outage_and_are_sent_on_recovery(
    aws_env: None, tmp_path: Path
) -> None:
    # Arrange: the endpoint's port is reserved but nothing listens yet
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    sink, events = make_sink(endpoint, market_open_metric=False)
    await sink.start()  # first send fails: connection refused
    events.inc(10, source="sim", type="trade")
    await sink.flush()  # second interval fails too
    pending = sink.backlog()
    # Act
    server = start_moto(port)
    try:
        events.inc(1, source="sim", type="trade")
        await sink.flush()
        client = boto3.client("cloudwatch", region_name=REGION, endpoint_url=endpoint)
        total = read_sum(client, "Ticks", [{"Name": "Stack", "Value": "it"}])
        await sink.stop()
    finally:
        server.stop()
    # Assert
    assert pending > 0
    assert sink.backlog() == 0
    assert total == 11
    assert sink.m_errors.value() == 2
    assert sink.m_dropped.value() == 0
