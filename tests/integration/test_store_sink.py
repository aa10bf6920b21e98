"""The store sink with real parts: a real bus, spool, Parquet files, and moto's S3 server over
HTTP on 127.0.0.1. The server-level tests (tickserver as a subprocess) are in
test_store_server.py."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.s3 import AWS_ENV, MotoS3
from tests.support.server import free_port
from tickserver import layout
from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import BarBatch, SignalBatch, TradeBatch, trades_from_columns
from tickserver.history import StoreReader
from tickserver.metrics import Metrics
from tickserver.sinks.base import SinkContext
from tickserver.sinks.store import StoreSink
from tickserver.storage import LocalStore, S3Store
from tickserver.symbols import Symbols

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "NVDA"]
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


# ----------------------------------------------------------------------------- helpers


class Feed:
    """Trade batches with a gap-free sequence, like a source's."""

    def __init__(self) -> None:
        self.seq = 0
        self.ts = T0

    def trades(self, n: int) -> TradeBatch:
        seq = np.arange(self.seq + 1, self.seq + n + 1)
        ts = self.ts + np.arange(n) * 1_000
        self.seq += n
        self.ts += n * 1_000
        return trades_from_columns(
            "sim", seq % 3, ts, 100 + (seq % 50) / 10, np.ones(n), seq, flags=seq % 3
        )


def make_sink(root: Path, bus: Bus | None = None, **store: Any) -> StoreSink:
    cfg = load_config(
        environ={},
        overrides={"store": {"path": str(root), "flush_interval_s": 3600, **store}},
    )
    return StoreSink(SinkContext(cfg, bus or Bus(), Symbols(SYMBOLS), Metrics()))


async def eventually(pred: Callable[[], bool], what: str, bound_s: float = 30.0) -> None:
    """Wait until ``pred()`` holds (a generous bound against hangs, not a speed check)."""
    deadline = time.monotonic() + bound_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


def local_rows(root: Path, kind: str = "trades") -> pa.Table:
    files = sorted((root / f"type={kind}").rglob("*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files])


def seqs(table: pa.Table) -> list[int]:
    return sorted(table.column("seq").to_pylist()) if table.num_rows else []


def s3_rows(moto: MotoS3, bucket: str, prefix: str = "") -> pa.Table:
    c = moto.client()
    tables = [
        pq.read_table(pa.BufferReader(c.get_object(Bucket=bucket, Key=k)["Body"].read()))
        for k in moto.keys(bucket, prefix)
        if "type=trades" in k
    ]
    return pa.concat_tables(tables) if tables else pa.table({})


def abandon(sink: StoreSink) -> None:
    """What a crash leaves: no flush, no upload; only the files on disk."""
    for t in list(sink._tasks):
        t.cancel()
    for d in sink._detach:
        d()
    assert sink.spool is not None
    sink.spool.close()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
async def started() -> AsyncIterator[list[StoreSink]]:
    sinks: list[StoreSink] = []
    yield sinks
    for s in sinks:
        await s.stop()


# ----------------------------------------------------------------------------- local


async def test_store_writes_trades_final_bars_and_signals_to_local_parquet(
    tmp_path: Path, started: list[StoreSink]
) -> None:
    # Arrange
    bus = Bus()
    sink = make_sink(tmp_path, bus)
    await sink.start()
    started.append(sink)
    feed = Feed()
    batch = feed.trades(3000)
    bar_cols = {
        "symbol_id": np.array([0, 1], np.uint32),
        "ts_event": np.array([T0, T0], np.int64),
        "open": np.array([1.0, 2.0]),
        "high": np.array([1.5, 2.5]),
        "low": np.array([0.5, 1.5]),
        "close": np.array([1.2, 2.2]),
        "volume": np.array([10.0, 20.0]),
        "vwap": np.array([1.1, 2.1]),
        "trades": np.array([3, 4], np.uint64),
    }
    signal = SignalBatch(
        rules=("ema_cross",),
        symbol_id=np.array([2], np.uint32),
        ts_event=np.array([T0 + 5], np.int64),
        rule_id=np.array([0], np.uint16),
        direction=np.array([1], np.int8),
        value=np.array([0.25]),
    )

    # Act
    bus.publish(Topic.TRADES, batch)
    bus.publish(Topic.BARS, BarBatch(interval="1m", final=True, **bar_cols))
    bus.publish(Topic.BARS, BarBatch(interval="1m", final=False, **bar_cols))  # forming: skipped
    bus.publish(Topic.SIGNALS, signal)
    await sink.stop()

    # Assert: pyarrow sees exactly what was published.
    trades = local_rows(tmp_path)
    assert seqs(trades) == list(range(1, 3001))
    by_seq = {r["seq"]: r for r in trades.to_pylist()}
    assert by_seq[7]["symbol"] == SYMBOLS[7 % 3]
    assert by_seq[7]["price"] == pytest.approx(100 + 7 / 10)
    assert by_seq[7]["ts_event"].value == T0 + 6_000
    bar_table = pq.read_table(next((tmp_path / "type=bars" / "interval=1m").rglob("*.parquet")))
    assert bar_table.num_rows == 2
    assert bar_table.to_pylist()[1]["vwap"] == pytest.approx(2.1)
    sig = pq.read_table(next((tmp_path / "type=signals").rglob("*.parquet"))).to_pylist()
    assert [(s["symbol"], s["rule"], s["interval"], s["direction"]) for s in sig] == [
        ("NVDA", "ema_cross", "1m", 1)
    ]
    # DuckDB reads the Hive layout as is.
    con = duckdb.connect()
    row = con.execute(
        f"select count(*), count(distinct seq), min(seq), max(seq), any_value(date)::varchar "
        f"from read_parquet('{tmp_path}/type=trades/*/*.parquet', hive_partitioning=true)"
    ).fetchone()
    assert row == (3000, 3000, 1, 3000, "2026-01-01")
    bars_db = con.execute(
        f"select symbol, interval, close from read_parquet("
        f"'{tmp_path}/type=bars/*/*/*.parquet', hive_partitioning=true) order by symbol"
    ).fetchall()
    assert bars_db == [("AAPL", "1m", 1.2), ("MSFT", "1m", 2.2)]


async def test_store_recovers_a_leftover_spool_at_start_and_writes_it_exactly_once(
    tmp_path: Path, started: list[StoreSink]
) -> None:
    # Arrange: accepted events, then a crash before any flush.
    feed = Feed()
    first = make_sink(tmp_path)
    await first.start()
    for _ in range(5):
        first.accept(feed.trades(500))
    abandon(first)
    assert local_rows(tmp_path).num_rows == 0

    # Act: the next start recovers and flushes them.
    second = make_sink(tmp_path, flush_interval_s=0.05)
    await second.start()
    started.append(second)
    await eventually(lambda: second.backlog() == 0, "recovered spool flushed")

    # Assert
    assert seqs(local_rows(tmp_path)) == list(range(1, 2501))


async def test_store_redoes_a_flush_cut_between_parts_and_commit_under_the_same_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[StoreSink]
) -> None:
    # Arrange: a flush that dies after writing its parts, before committing the spool.
    feed = Feed()
    first = make_sink(tmp_path)
    await first.start()
    for _ in range(4):
        first.accept(feed.trades(250))
    assert first.spool is not None

    def crash(_offset: int) -> None:
        raise RuntimeError("simulated crash before commit")

    monkeypatch.setattr(first.spool, "commit", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        await asyncio.to_thread(first.flush_now)
    names_before = sorted(p.name for p in (tmp_path / "type=trades").rglob("*.parquet"))
    assert (tmp_path / "flush-intent").exists()
    monkeypatch.undo()
    abandon(first)

    # Act: restart; meanwhile more events arrive.
    second = make_sink(tmp_path)
    await second.start()
    started.append(second)
    second.accept(feed.trades(100))
    await asyncio.to_thread(second.flush_now)

    # Assert: the redone part replaced itself; every event exactly once.
    names_after = sorted(p.name for p in (tmp_path / "type=trades").rglob("*.parquet"))
    assert names_before[0] in names_after
    assert len(names_after) == 2
    assert not (tmp_path / "flush-intent").exists()
    assert seqs(local_rows(tmp_path)) == list(range(1, 1101))


async def test_store_quarantines_a_corrupt_leftover_spool_segment_and_recovers_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, started: list[StoreSink]
) -> None:
    # Arrange: several spool segments (small backlog bound => small segments), then damage.
    feed = Feed()
    first = make_sink(tmp_path, max_backlog_bytes=1 << 20)
    await first.start()
    for _ in range(6):
        first.accept(feed.trades(2000))  # ~90 KB records, 128 KiB segments
    abandon(first)
    segs = sorted((tmp_path / "spool").glob("*.seg"))
    assert len(segs) >= 3
    victim = segs[1]
    data = bytearray(victim.read_bytes())
    data[100:110] = b"\x00" * 10
    victim.write_bytes(bytes(data))

    # Act
    with caplog.at_level(logging.ERROR):
        second = make_sink(tmp_path, max_backlog_bytes=1 << 20)
        await second.start()
        started.append(second)
        await asyncio.to_thread(second.flush_now)

    # Assert: a clear message naming the file; every other record recovered.
    assert victim.name in caplog.text
    assert "quarantine" in caplog.text
    assert "lost offsets" in caplog.text
    got = seqs(local_rows(tmp_path))
    assert len(got) >= 8000
    assert got == sorted(set(got))
    assert set(got) <= set(range(1, 12001))
    assert second.health().details["quarantined"]


@pytest.fixture
def tiny_spool_fs(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/spool`` on a 512 KiB tmpfs (needs mount permission; skipped otherwise)."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(spool_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
    try:
        yield spool_dir
    finally:
        subprocess.run(["umount", "-l", str(spool_dir)], check=False)


async def test_store_on_a_full_disk_refuses_events_loudly_and_keeps_the_accepted(
    tmp_path: Path,
    tiny_spool_fs: Path,
    caplog: pytest.LogCaptureFixture,
    started: list[StoreSink],
) -> None:
    # Arrange: the spool on a 512 KiB filesystem; Parquet parts on the normal disk.
    sink = make_sink(tmp_path)
    await sink.start()
    started.append(sink)
    feed = Feed()

    # Act: more than fits.
    with caplog.at_level(logging.ERROR):
        for _ in range(20):
            sink.accept(feed.trades(1000))
    state, reason = sink.health().state, sink.health().reason
    dropped = sink._dropped
    await asyncio.to_thread(sink.flush_now)  # frees the spool
    sink.accept(feed.trades(10))
    await asyncio.to_thread(sink.flush_now)

    # Assert: refused loudly with the reason and place; everything accepted is stored.
    assert dropped > 0
    assert state == "degraded"
    assert "no space" in reason
    assert str(tiny_spool_fs) in reason
    assert "DROPPING" in caplog.text
    got = seqs(local_rows(tmp_path))
    accepted_before = 20_000 - dropped
    assert got[:accepted_before] == list(range(1, accepted_before + 1))
    assert got[accepted_before:] == list(range(20_001, 20_011))


# ----------------------------------------------------------------------------- S3


async def test_store_uploads_parts_to_s3_under_deterministic_keys(
    tmp_path: Path, moto: MotoS3, aws: None, started: list[StoreSink]
) -> None:
    # Arrange
    bucket = moto.new_bucket()
    sink = make_sink(
        tmp_path,
        s3_bucket=bucket,
        s3_prefix="md/",
        s3_endpoint_url=moto.endpoint,
        flush_interval_s=0.05,
    )
    await sink.start()
    started.append(sink)
    feed = Feed()

    # Act
    sink.accept(feed.trades(1000))
    await eventually(lambda: sink.backlog() == 0 and moto.keys(bucket), "upload")
    sink.accept(feed.trades(1000))
    await eventually(lambda: sink.backlog() == 0 and len(moto.keys(bucket)) == 2, "upload 2")

    # Assert: keys follow the layout and name the spool offsets they hold.
    keys = moto.keys(bucket)
    assert all(k.startswith("md/type=trades/date=2026-01-01/part-") for k in keys)
    ranges = [layout.parse_part_name(k)[1:] for k in keys]  # type: ignore[index]
    assert ranges == [(0, 0), (1, 1)]
    assert seqs(s3_rows(moto, bucket)) == list(range(1, 2001))
    assert sink.health().state == "ok"
    assert not list((tmp_path / "outbox").rglob("*.parquet"))


async def test_store_keeps_the_backlog_on_disk_while_s3_is_down_and_drains_it(
    tmp_path: Path, aws: None, started: list[StoreSink]
) -> None:
    # Arrange: a dedicated S3 server we can stop and restart.
    server = MotoS3().start()
    try:
        bucket = server.new_bucket()
        sink = make_sink(
            tmp_path,
            s3_bucket=bucket,
            s3_endpoint_url=server.endpoint,
            flush_interval_s=0.05,
            s3_max_attempts=1,
            s3_retry_max_s=0.2,
        )
        await sink.start()
        started.append(sink)
        feed = Feed()
        sink.accept(feed.trades(500))
        await eventually(lambda: sink.backlog() == 0, "first upload")

        # Act: outage.
        server.stop()
        for _ in range(3):
            sink.accept(feed.trades(500))
            await asyncio.sleep(0.1)
        await eventually(lambda: sink.health().state == "degraded", "degraded during outage")
        reason = sink.health().reason
        details = dict(sink.health().details)
        metrics = sink.ctx.metrics.render()
        server.start()
        await eventually(lambda: sink.backlog() == 0, "drain after outage")

        # Assert
        assert "S3 unreachable" in reason or "S3 request failed" in reason
        assert details["outbox_parts"] >= 1
        assert details["backlog_events"] >= 500
        assert "tickserver_store_outbox_parts " in metrics
        assert "tickserver_store_outbox_parts 0\n" not in metrics
        assert seqs(s3_rows(server, bucket)) == list(range(1, 2001))
        assert sink.health().state == "ok"
    finally:
        server.stop()


async def test_store_reports_a_missing_bucket_and_uploads_once_it_exists(
    tmp_path: Path, moto: MotoS3, aws: None, started: list[StoreSink]
) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:8]}"
    sink = make_sink(
        tmp_path,
        s3_bucket=bucket,
        s3_endpoint_url=moto.endpoint,
        flush_interval_s=0.05,
        s3_max_attempts=1,
        s3_retry_max_s=0.2,
    )
    await sink.start()
    started.append(sink)
    sink.accept(Feed().trades(100))

    await eventually(lambda: "does not exist" in sink.health().reason, "missing bucket reason")
    assert sink.health().state == "degraded"
    assert sink.backlog() == 100
    moto.client().create_bucket(Bucket=bucket)
    await eventually(lambda: sink.backlog() == 0, "upload after the bucket exists")
    assert seqs(s3_rows(moto, bucket)) == list(range(1, 101))


async def test_store_reports_access_denied_and_keeps_the_data(
    tmp_path: Path, moto: MotoS3, monkeypatch: pytest.MonkeyPatch, started: list[StoreSink]
) -> None:
    # Arrange: an IAM user that may list and read, not write; moto enforces IAM.
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    bucket = moto.new_bucket()
    creds = moto.user_allowed(bucket, ["s3:ListBucket", "s3:GetObject"])
    for k, v in creds.items():
        monkeypatch.setenv(k, v)
    moto.enforce_auth(True)
    try:
        sink = make_sink(
            tmp_path,
            s3_bucket=bucket,
            s3_endpoint_url=moto.endpoint,
            flush_interval_s=0.05,
            s3_max_attempts=1,
            s3_retry_max_s=0.2,
        )
        await sink.start()
        started.append(sink)
        sink.accept(Feed().trades(100))

        # Act / Assert
        await eventually(lambda: "access denied" in sink.health().reason, "access denied")
        assert "s3:PutObject" in sink.health().reason
        assert sink.backlog() == 100
        assert sink.health().details["outbox_parts"] == 1
    finally:
        moto.enforce_auth(False)


async def test_store_drops_loudly_when_the_local_backlog_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, aws: None, started: list[StoreSink]
) -> None:
    # Arrange: S3 unreachable (nothing listens on the port); a 1 MiB backlog bound.
    sink = make_sink(
        tmp_path,
        s3_bucket="never-reached",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        max_backlog_bytes=1 << 20,
        s3_max_attempts=1,
    )
    await sink.start()
    started.append(sink)
    feed = Feed()

    # Act
    with caplog.at_level(logging.ERROR):
        for _ in range(40):
            sink.accept(feed.trades(1000))

    # Assert: explicit, counted, visible; what was accepted is intact.
    state, reason = sink.health().state, sink.health().reason
    assert sink._dropped > 0
    assert state == "degraded"
    assert "backlog full" in reason
    assert "store.max_backlog_bytes" in reason
    assert "DROPPING" in caplog.text
    assert 'tickserver_store_dropped_total{type="trades"}' in sink.ctx.metrics.render()
    accepted = 40_000 - sink._dropped
    assert sink.backlog() == accepted


async def test_s3_store_uploads_large_parts_in_multipart_with_sse_kms(
    tmp_path: Path, moto: MotoS3, aws: None
) -> None:
    import boto3

    bucket = moto.new_bucket()
    kms = boto3.client("kms", endpoint_url=moto.endpoint, region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    store = S3Store(
        bucket,
        "p",
        endpoint_url=moto.endpoint,
        sse="aws:kms",
        kms_key_id=key_id,
        multipart_threshold=5 << 20,
        multipart_chunk=5 << 20,
    )
    big = tmp_path / "big.parquet"
    big.write_bytes(os.urandom(11 << 20))

    await asyncio.to_thread(store.put_file, big, "type=trades/date=2026-01-01/x.parquet")

    head = moto.client().head_object(Bucket=bucket, Key="p/type=trades/date=2026-01-01/x.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # three parts of 5 MiB, 5 MiB, 1 MiB
    assert head["ServerSideEncryption"] == "aws:kms"
    assert key_id in head["SSEKMSKeyId"]
    assert head["ContentLength"] == 11 << 20


async def test_history_reader_merges_spool_outbox_and_s3_without_duplicates(
    tmp_path: Path, moto: MotoS3, aws: None
) -> None:
    # Arrange: driven by hand (no background tasks): A uploaded, B in the outbox, C spooled.
    bucket = moto.new_bucket()
    sink = make_sink(tmp_path, s3_bucket=bucket, s3_endpoint_url=moto.endpoint, cache_bytes=0)
    sink._open()
    feed = Feed()
    try:
        sink.accept(feed.trades(300))
        sink.flush_now()
        assert await sink._upload_pending()
        sink.accept(feed.trades(300))
        sink.flush_now()
        sink.accept(feed.trades(300))
        # The same part both uploaded and still in the outbox (an upload racing a read).
        key = moto.keys(bucket)[0]
        dup = tmp_path / "outbox" / key
        dup.parent.mkdir(parents=True, exist_ok=True)
        dup.write_bytes(moto.client().get_object(Bucket=bucket, Key=key)["Body"].read())
        reader = sink.reader
        assert reader is not None

        # Act
        table = reader.read("trades", symbol="MSFT", start_ns=0, end_ns=T0 + 10**12)
        window = reader.read("trades", symbol="MSFT", start_ns=T0 + 100_000, end_ns=T0 + 700_000)
    finally:
        assert sink.spool is not None
        sink.spool.close()

    # Assert: every MSFT trade (seq % 3 == 1) once, in time order; the window is half-open.
    assert table.column("seq").to_pylist() == [s for s in range(1, 901) if s % 3 == 1]
    ts = [t.value for t in window.column("ts_event").to_pylist()]
    assert min(ts) >= T0 + 100_000
    assert max(ts) < T0 + 700_000
    assert window.num_rows == len([s for s in range(101, 701) if s % 3 == 1])


# ----------------------------------------------------------------------------- export CLI


def _export(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickserver", "export", *args],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TICKSERVER_")},
            **(env or {}),
        },
        check=False,
        timeout=120,
    )


async def test_export_writes_csv_and_parquet_equal_to_what_was_stored(tmp_path: Path) -> None:
    # Arrange: a local store with two symbols' trades and some 1m bars.
    store = tmp_path / "data"
    sink = make_sink(store)
    await sink.start()
    feed = Feed()
    sink.accept(feed.trades(900))
    await sink.stop()
    cfg = tmp_path / "ts.toml"
    cfg.write_text(f'[store]\npath = "{store}"\n')

    # Act
    csv_run = _export(
        [
            "--config",
            str(cfg),
            "--symbol",
            "MSFT",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-02",
            "--out",
            str(tmp_path / "msft.csv"),
        ]
    )
    pq_run = _export(
        [
            "--config",
            str(cfg),
            "--symbol",
            "MSFT",
            "--from",
            str(T0 // 1_000_000),
            "--out",
            str(tmp_path / "msft.parquet"),
        ]
    )
    bad = _export(
        [
            "--config",
            str(cfg),
            "--symbol",
            "MSFT",
            "--from",
            "yesterday",
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )

    # Assert
    assert csv_run.returncode == 0, csv_run.stderr
    assert pq_run.returncode == 0, pq_run.stderr
    import pyarrow.csv as pacsv

    from_csv = pacsv.read_csv(tmp_path / "msft.csv")
    from_pq = pq.read_table(tmp_path / "msft.parquet")
    want = [s for s in range(1, 901) if s % 3 == 1]
    assert from_csv.column("seq").to_pylist() == want
    assert from_pq.column("seq").to_pylist() == want
    assert from_pq.column("price").to_pylist() == [100 + (s % 50) / 10 for s in want]
    assert "wrote 300 trades of MSFT" in csv_run.stderr
    assert bad.returncode == 2
    assert "not an ISO-8601 timestamp" in bad.stderr


async def test_export_reads_an_s3_store(tmp_path: Path, moto: MotoS3, aws: None) -> None:
    bucket = moto.new_bucket()
    store = tmp_path / "data"
    sink = make_sink(store, s3_bucket=bucket, s3_endpoint_url=moto.endpoint, cache_bytes=0)
    await sink.start()
    sink.accept(Feed().trades(90))
    await sink.stop()
    assert moto.keys(bucket)
    cfg = tmp_path / "ts.toml"
    cfg.write_text(
        f'[store]\npath = "{store}"\ns3_bucket = "{bucket}"\ns3_endpoint_url = "{moto.endpoint}"\n'
    )

    run = _export(
        [
            "--config",
            str(cfg),
            "--symbol",
            "AAPL",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-02",
            "--out",
            str(tmp_path / "a.parquet"),
        ],
        env=AWS_ENV,
    )

    assert run.returncode == 0, run.stderr
    assert pq.read_table(tmp_path / "a.parquet").column("seq").to_pylist() == list(range(3, 91, 3))


def test_local_store_lists_only_parquet_files(tmp_path: Path) -> None:
    (tmp_path / "type=trades" / "date=2026-01-01").mkdir(parents=True)
    (tmp_path / "type=trades" / "date=2026-01-01" / "a.parquet").write_bytes(b"x")
    (tmp_path / "type=trades" / "date=2026-01-01" / ".a.parquet.tmp").write_bytes(b"x")

    assert LocalStore(tmp_path).list_files("type=trades") == [
        ("type=trades/date=2026-01-01/a.parquet", 1)
    ]
    assert (
        StoreReader(LocalStore(tmp_path)).read("trades", symbol="A", start_ns=1, end_ns=1).num_rows
        == 0
    )


async def test_store_spools_a_batch_larger_than_its_bounds_in_pieces(
    tmp_path: Path, started: list[StoreSink]
) -> None:
    # A replay chunk of 100k trades (~4.5 MB); with a 16 MiB backlog, records stay <= 2 MiB.
    sink = make_sink(tmp_path, max_backlog_bytes=16 << 20)
    await sink.start()
    started.append(sink)
    assert sink.spool is not None

    sink.accept(Feed().trades(100_000))
    records = sink.spool.next_offset
    await asyncio.to_thread(sink.flush_now)

    assert records == 3
    assert sink._dropped == 0
    assert seqs(local_rows(tmp_path)) == list(range(1, 100_001))
