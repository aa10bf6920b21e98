"""Kafka end to end: ``tickserver`` subprocesses, a real broker, kcat and aiokafka as readers.

These need the C++ ``Engine`` (``tickserver run`` builds one).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.brokers import Broker
from tests.support.kafka import Collector, events_by_symbol, wait_for
from tests.support.server import TickServer
from tickserver import _core

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka,
    pytest.mark.skipif(
        not hasattr(_core, "Engine"), reason="needs the C++ core Engine (tickserver run)"
    ),
]

SYMS = ["AAPL", "MSFT", "NVDA", "SPY", "AMZN", "META", "TSLA", "GOOGL"]
Start = Callable[..., TickServer]
Reader = Callable[..., list[dict[str, Any]]]


def ingest_config(broker: Broker, *, events: int, rate: int = 4000, **kafka: Any) -> str:
    """A finite simulated feed published to ``broker``."""
    extra = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in kafka.items())
    return f"""
[market]
symbols = {SYMS!r}
intervals = ["1s", "1m"]
[engine]
advance_interval_ms = 20
bar_close_grace_ms = 50
[store]
enabled = false
[sources.sim]
rate = {rate}
batch_ms = 20
max_events = {events}
seed = 5
[kafka]
enabled = true
bootstrap_servers = ["{broker.bootstrap}"]
partitions = 4
spool_dir = "kafka-spool"
request_timeout_ms = 3000
retry_backoff_ms = 50
retry_backoff_max_ms = 500
{extra}
""".replace("'", '"')


def serving_config(broker: Broker) -> str:
    return f"""
[market]
symbols = {SYMS!r}
intervals = ["1s", "1m"]
[store]
enabled = false
[kafka]
bootstrap_servers = ["{broker.bootstrap}"]
request_timeout_ms = 3000
[sources.kafka]
session_timeout_ms = {broker.session_timeout_ms}
heartbeat_interval_ms = 300
rebalance_timeout_ms = 10000
""".replace("'", '"')


def status(srv: TickServer) -> dict[str, Any]:
    body = srv.graphql(
        "{ status { ownedSymbols sources { name state reason details } "
        "sinks { name state reason details } } symbols }"
    )
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def kafka_sink(srv: TickServer) -> dict[str, Any]:
    return next(s for s in status(srv)["status"]["sinks"] if s["name"] == "kafka")


def wait(cond: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def feed_done_and_delivered(srv: TickServer) -> bool:
    st = status(srv)["status"]
    sim = next(s for s in st["sources"] if s["name"] == "sim")
    sink = next(s for s in st["sinks"] if s["name"] == "kafka")
    return sim["reason"] == "finished" and sink["details"]["backlog_records"] == 0


def served_ticks(srv: TickServer, symbols: list[str]) -> dict[str, list[int]]:
    """symbol -> seqs of the trades the server holds, oldest first."""
    out = {}
    for s in symbols:
        body = srv.graphql(
            "query($s: String!) { ticks(symbol: $s, last: 100000) { seq } }", {"s": s}
        )
        assert "errors" not in body, body
        out[s] = [t["seq"] for t in body["data"]["ticks"]]
    return out


def test_kcat_reads_every_published_tick_and_each_record_matches_the_schema(
    broker: Broker, kcat: Reader, record_schema: Any, tickserver: Start
) -> None:
    # Arrange / Act: a finite feed, published immediately
    srv = tickserver(config=ingest_config(broker, events=6000))
    wait(lambda: feed_done_and_delivered(srv), 60, "the feed to end and reach the broker")
    held = served_ticks(srv, SYMS)
    ticks = kcat("tickserver.ticks")
    bars = kcat("tickserver.bars.1s")
    # Assert
    for row in ticks + bars:
        record_schema.validate(row["value"])
        assert row["headers"]["schema-version"] == "1"
        assert row["key"] == row["value"]["symbol"]
    got = events_by_symbol(
        [r["value"] for r in sorted(ticks, key=lambda r: (r["partition"], r["offset"]))]
    )
    assert {s: [q for _, _, q in dict.fromkeys(v)] for s, v in got.items()} == {
        s: v for s, v in held.items() if v
    }
    assert bars, "1s bars were published"


def test_broker_unreachable_at_start_readyz_degraded_then_everything_arrives(
    broker: Broker, tickserver: Start, kcat: Reader
) -> None:
    # Arrange: the broker is down
    broker.kill()
    srv = tickserver(config=ingest_config(broker, events=3000), wait_ready=False)
    # Act
    wait(lambda: status(srv)["status"]["sources"][0]["reason"] == "finished", 60, "the feed")
    ready = httpx.get(srv.url + "/readyz", timeout=5)
    quote = srv.graphql('{ quote(symbol: "AAPL") { last } }')
    spooled = kafka_sink(srv)["details"]["backlog_records"]
    broker.start()
    wait(lambda: httpx.get(srv.url + "/readyz", timeout=5).status_code == 200, 60, "readiness")
    wait(lambda: feed_done_and_delivered(srv), 60, "the spool to drain")
    held = served_ticks(srv, SYMS)
    rows = kcat("tickserver.ticks")
    # Assert
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "degraded"
    assert any(
        r.startswith("sink kafka: degraded") and broker.bootstrap in r for r in body["reasons"]
    )
    assert quote["data"]["quote"]["last"] is not None  # still serving
    assert spooled > 0
    got = events_by_symbol(
        [r["value"] for r in sorted(rows, key=lambda r: (r["partition"], r["offset"]))]
    )
    assert {s: [q for _, _, q in dict.fromkeys(v)] for s, v in got.items()} == {
        s: v for s, v in held.items() if v
    }


async def test_broker_sigkill_mid_stream_every_accepted_tick_reaches_the_broker(
    broker: Broker, tickserver: Start
) -> None:
    """SIGKILL the broker mid-stream, restart it, account for every tick by sequence number.

    Both test brokers keep records in memory, so what they acknowledged and nobody read yet
    dies with them. For an exact proof, tickserver is frozen (SIGSTOP) for the moment the
    independent consumer needs to catch up with the broker; then the broker is SIGKILLed and
    tickserver resumes at once, its feed still running: everything from then on is accepted
    while the broker is dead and must reach it after its restart.
    """
    # Arrange
    srv = await asyncio.to_thread(
        tickserver, config=ingest_config(broker, events=40_000, rate=5000)
    )
    topic = "tickserver.ticks"
    before = await Collector(broker.bootstrap, [topic]).start()
    assert srv.proc is not None
    try:
        await asyncio.sleep(2.0)
        # Act: freeze tickserver, let the consumer drain the broker, kill the broker
        os.kill(srv.proc.pid, signal.SIGSTOP)
        await before.wait_caught_up(30)
    finally:
        await before.stop()
        await asyncio.to_thread(broker.kill)
        os.kill(srv.proc.pid, signal.SIGCONT)
    await asyncio.to_thread(
        wait, lambda: kafka_sink(srv)["state"] == "degraded", 15, "the sink to notice the outage"
    )
    outage = await asyncio.to_thread(kafka_sink, srv)
    await asyncio.to_thread(broker.start)
    await asyncio.to_thread(
        wait, lambda: feed_done_and_delivered(srv), 90, "the feed to reach the broker"
    )
    held = await asyncio.to_thread(served_ticks, srv, SYMS)
    after = await Collector(broker.bootstrap, [topic]).start()
    total = sum(len(v) for v in held.values())
    try:
        await wait_for(
            lambda: _distinct(before.values[topic] + after.values[topic]) >= total,
            30,
            "every tick to be consumed",
        )
        seen = before.values[topic] + after.values[topic]
    finally:
        await after.stop()
    # Assert
    assert outage["state"] == "degraded"
    assert outage["details"]["backlog_records"] > 0  # accepted into the spool meanwhile
    assert before.values[topic], "the consumer saw records before the kill"
    got = {s: sorted({q for _, _, q in v}) for s, v in events_by_symbol(seen).items()}
    assert got == {s: sorted(v) for s, v in held.items() if v}


def _distinct(values: list[dict[str, Any]]) -> int:
    return sum(len(set(v)) for v in events_by_symbol(values).values())


def test_scale_out_two_serving_instances_share_the_symbols_and_take_over(
    broker: Broker, tickserver: Start
) -> None:
    # Arrange: one ingest instance and two serving instances in one group
    ingest = tickserver(config=ingest_config(broker, events=8000))
    a = tickserver(("run", "--source", "kafka"), config=serving_config(broker))
    b = tickserver(("run", "--source", "kafka"), config=serving_config(broker))
    wait(lambda: feed_done_and_delivered(ingest), 60, "the ingest feed")
    truth = {s: v for s, v in served_ticks(ingest, SYMS).items() if v}

    def split() -> tuple[set[str], set[str]] | None:
        oa = set(status(a)["status"]["ownedSymbols"] or [])
        ob = set(status(b)["status"]["ownedSymbols"] or [])
        if not oa or not ob or oa | ob != set(SYMS):
            return None
        return oa, ob

    wait(lambda: split() is not None, 60, "both serving instances to own symbols")
    owned_a, owned_b = split() or (set(), set())
    wait(
        lambda: (
            served_ticks(a, sorted(owned_a & set(truth)))
            == {s: truth[s] for s in owned_a & set(truth)}
            and served_ticks(b, sorted(owned_b & set(truth)))
            == {s: truth[s] for s in owned_b & set(truth)}
        ),
        60,
        "each serving instance to hold its symbols' ticks",
    )
    symbols_a = status(a)["symbols"]
    foreign = a.graphql(f'{{ quote(symbol: "{sorted(owned_b)[0]}") {{ last }} }}')
    # Act: stop one serving instance
    a.stop()
    wait(
        lambda: set(status(b)["status"]["ownedSymbols"] or []) == set(SYMS),
        60,
        "the survivor to own every symbol",
    )
    wait(lambda: served_ticks(b, sorted(truth)) == truth, 60, "the survivor to hold every tick")
    # Assert
    assert not owned_a & owned_b
    assert owned_a | owned_b == set(SYMS)
    assert sorted(symbols_a) == sorted(owned_a)
    assert foreign["errors"][0]["extensions"]["code"] == "UNKNOWN_SYMBOL"
    assert sorted(status(b)["symbols"]) == sorted(SYMS)
    counts = collections.Counter(len(v) for v in truth.values())
    assert sum(k * n for k, n in counts.items()) > 1000  # enough ticks to mean something


def test_serving_instance_without_broker_starts_and_reports_why(
    broker: Broker, tickserver: Start
) -> None:
    # Arrange
    broker.kill()
    # Act
    srv = tickserver(("run", "--source", "kafka"), config=serving_config(broker), wait_ready=False)
    wait(
        lambda: "cannot consume" in status(srv)["status"]["sources"][0]["reason"],
        30,
        "the source to report the broker",
    )
    ready = httpx.get(srv.url + "/readyz", timeout=5)
    # Assert
    assert ready.status_code == 503
    assert status(srv)["status"]["ownedSymbols"] == []
    assert status(srv)["symbols"] == []
