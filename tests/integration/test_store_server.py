"""The store inside ``tickserver run`` (a real subprocess): SIGKILL mid-stream, an S3 outage
seen through /readyz and /metrics, and history queries across the store/ring seam.

What "accepted" means (docs/store.md): an event is accepted once the store sink appended it
to its spool, which happens synchronously in the same bus publish that puts the trade into
the engine's ring. So any trade a client could see through the API had been accepted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest

from tests.support.s3 import AWS_ENV, MotoS3
from tests.support.server import TickServer

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "NVDA"]


def config(store_path: Path, *, ring: int = 100_000, extra_store: str = "") -> str:
    return f"""
[market]
symbols = {SYMBOLS!r}
intervals = ["1s", "1m"]
ring_capacity = {ring}
bar_capacity = {max(ring, 16)}
[engine]
advance_interval_ms = 20
bar_close_grace_ms = 50
[sources.sim]
rate = 3000
batch_ms = 20
seed = 11
[store]
path = "{store_path}"
flush_interval_s = 0.2
{extra_store}
"""


def wait_for(pred: Callable[[], bool], what: str, bound_s: float = 60.0) -> None:
    deadline = time.monotonic() + bound_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.05)


def max_seen_seq(srv: TickServer) -> int:
    """The highest trade sequence number any client can see right now."""
    q = "query($s: String!) { ticks(symbol: $s, last: 1) { seq } }"
    best = 0
    for s in SYMBOLS:
        body = srv.graphql(q, {"s": s})
        for t in body["data"]["ticks"]:
            best = max(best, int(t["seq"]))
    return best


def store_trades(root: Path) -> pa.Table:
    files = sorted((root / "type=trades").rglob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_sigkill_mid_stream_loses_and_duplicates_no_accepted_trade(
    tickserver: Callable[..., TickServer], tmp_path: Path
) -> None:
    # Arrange: trades flowing into the store.
    data = tmp_path / "data"
    first = tickserver(config=config(data))
    wait_for(lambda: max_seen_seq(first) > 2000, "trades flowing")
    wait_for(lambda: (data / "type=trades").exists(), "a first flush")

    # Act: note what clients have seen, crash the process, restart, stop cleanly.
    seen = max_seen_seq(first)
    time.sleep(0.1)
    first.kill()
    killed_at = time.time_ns()
    second = tickserver(config=config(data))
    wait_for(lambda: max_seen_seq(second) > 0, "second run trading")
    assert second.stop(signal.SIGTERM) == 0

    # Assert: the first run's trades are 1..K, each exactly once, K >= what was seen.
    t = store_trades(data)
    ts = t.column("ts_event").cast(pa.int64()).to_numpy()
    run1 = sorted(t.filter(pa.array(ts < killed_at)).column("seq").to_pylist())
    assert run1[-1] >= seen
    assert run1 == list(range(1, run1[-1] + 1))


@pytest.fixture
def moto_server() -> Iterator[MotoS3]:
    server = MotoS3().start()
    try:
        yield server
    finally:
        server.stop()


def test_s3_outage_degrades_readyz_keeps_serving_and_drains_on_recovery(
    tickserver: Callable[..., TickServer], tmp_path: Path, moto_server: MotoS3
) -> None:
    # Arrange: a server uploading to moto.
    bucket = moto_server.new_bucket()
    cfg = config(
        tmp_path / "data",
        extra_store=f's3_bucket = "{bucket}"\ns3_endpoint_url = "{moto_server.endpoint}"\n'
        "s3_max_attempts = 1\ns3_retry_max_s = 0.5\n",
    )
    srv = tickserver(config=cfg, env=AWS_ENV)
    wait_for(lambda: len(moto_server.keys(bucket)) > 0, "first upload")

    # Act: S3 goes away.
    moto_server.stop()
    wait_for(lambda: httpx.get(srv.url + "/readyz").status_code == 503, "readyz degraded")
    ready = httpx.get(srv.url + "/readyz").json()
    metrics = httpx.get(srv.url + "/metrics").text
    status = srv.graphql("{ status { ready sinks { name state reason details } } }")
    still_serving = max_seen_seq(srv)
    moto_server.start()
    wait_for(lambda: httpx.get(srv.url + "/readyz").status_code == 200, "readyz ok again")
    assert srv.stop(signal.SIGTERM) == 0

    # Assert: visible while down, nothing lost after.
    assert ready["status"] == "degraded"
    assert any(r.startswith("sink store: degraded") for r in ready["reasons"])
    outbox = [ln for ln in metrics.splitlines() if ln.startswith("tickserver_store_outbox_parts ")]
    assert outbox
    assert float(outbox[0].split()[1]) >= 1
    sink = next(s for s in status["data"]["status"]["sinks"] if s["name"] == "store")
    assert sink["state"] == "degraded"
    assert sink["details"]["backlog_events"] > 0
    assert still_serving > 0
    c = moto_server.client()
    tables = [
        pq.read_table(pa.BufferReader(c.get_object(Bucket=bucket, Key=k)["Body"].read()))
        for k in moto_server.keys(bucket)
        if "type=trades" in k
    ]
    got = sorted(pa.concat_tables(tables).column("seq").to_pylist())
    assert got == list(range(1, len(got) + 1))
    assert not list((tmp_path / "data" / "outbox").rglob("*.parquet"))


HISTORY = """
query($s: String!, $i: String!, $from: String!, $to: String) {
  history(symbol: $s, interval: $i, from: $from, to: $to, limit: 1000000) {
    ticks { seq ts price }
    bars { ts open close volume trades }
    truncated coldRows hotRows
  }
}
"""


FINITE = """
[market]
symbols = ["AAPL", "MSFT", "NVDA"]
intervals = ["1s", "1m"]
ring_capacity = 16
bar_capacity = 16
[sources.sim]
rate = 3000
batch_ms = 20
seed = 5
realtime = false
max_events = 90000
[store]
path = "{path}"
flush_interval_s = 0.2
"""


def source_finished(srv: TickServer) -> bool:
    body = srv.graphql("{ status { sources { reason } } }")
    return all(s["reason"] == "finished" for s in body["data"]["status"]["sources"])


def test_history_joins_store_and_ring_without_gap_or_duplicate(
    tickserver: Callable[..., TickServer], tmp_path: Path
) -> None:
    # Arrange: 30 s of event time (bars close on event time), a ring of 16 trades and 16
    # bars per symbol, so most of the answer must come from the store.
    data = tmp_path / "data"
    srv = tickserver(config=FINITE.format(path=data))
    wait_for(lambda: source_finished(srv), "the finite feed to finish")
    far = str(time.time_ns() + 10**15)
    ring = srv.graphql('{ ticks(symbol: "MSFT", last: 16) { ts } }')["data"]["ticks"]

    # Act
    ticks = srv.graphql(HISTORY, {"s": "MSFT", "i": "tick", "from": "0", "to": far})
    bars = srv.graphql(HISTORY, {"s": "MSFT", "i": "1s", "from": "0", "to": far})
    ranged = srv.graphql(
        'query($to: String) { bars(symbol: "MSFT", interval: "1s", last: 1000, '
        'forming: false, from: "0", to: $to) { ts close } }',
        {"to": far},
    )
    # Strictly after the oldest trade in memory (the seam itself is also read from the store).
    hot_only = srv.graphql(HISTORY, {"s": "MSFT", "i": "tick", "from": ring[1]["ts"], "to": far})
    assert srv.stop(signal.SIGTERM) == 0

    # Assert: the API's answer equals the store's content (read after a clean stop).
    h = ticks["data"]["history"]
    assert not h["truncated"]
    assert h["coldRows"] > 0
    assert h["hotRows"] == 16
    t = store_trades(data)
    want = sorted(
        int(q)
        for q, sym in zip(t.column("seq").to_pylist(), t.column("symbol").to_pylist(), strict=True)
        if sym == "MSFT"
    )
    assert [int(r["seq"]) for r in h["ticks"]] == want  # every trade, once, in order
    b = bars["data"]["history"]
    stored = pa.concat_tables(
        [pq.read_table(f) for f in sorted((data / "type=bars" / "interval=1s").rglob("*.parquet"))]
    )
    msft = stored.filter(pa.compute.equal(stored.column("symbol"), "MSFT")).sort_by("ts_event")
    assert b["hotRows"] == 16
    assert b["coldRows"] > 0
    assert len(b["bars"]) == msft.num_rows > 16
    assert [r["trades"] for r in b["bars"]] == msft.column("trades").to_pylist()
    assert [r["close"] for r in b["bars"]] == msft.column("close").to_pylist()
    assert [r["ts"] for r in ranged["data"]["bars"]] == [r["ts"] for r in b["bars"]]
    assert hot_only["data"]["history"]["coldRows"] == 0
    assert len(hot_only["data"]["history"]["ticks"]) == 15


def test_history_rejects_a_backwards_range_and_unknown_interval(
    tickserver: Callable[..., TickServer], tmp_path: Path
) -> None:
    srv = tickserver(config=config(tmp_path / "data"))

    backwards = srv.graphql(HISTORY, {"s": "AAPL", "i": "tick", "from": "2000", "to": "1000"})
    unknown = srv.graphql(HISTORY, {"s": "AAPL", "i": "7m", "from": "0", "to": None})

    def code(body: dict[str, Any]) -> str:
        return str(body["errors"][0]["extensions"]["code"])

    assert code(backwards) == "BAD_ARGUMENT"
    assert code(unknown) == "UNKNOWN_INTERVAL"
