"""The Lambda compactor against moto's S3 server, with synthetic S3 events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.test_store_sink import Feed, make_sink
from tests.support.s3 import AWS_ENV, MotoS3
from tickserver import compactor, layout
from tickserver.events import BarBatch
from tickserver.history import StoreReader
from tickserver.storage import S3Store

pytestmark = pytest.mark.integration

DATE = "2026-01-01"
T0 = 1_767_225_600_000_000_000


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)


def write_parts(root: Path, moto: MotoS3, bucket: str, feed: Feed, batches: int) -> None:
    """Upload ``batches`` parts of 300 trades each (plus one 1m bar part) from one writer."""
    sink = make_sink(root, s3_bucket=bucket, s3_prefix="md", s3_endpoint_url=moto.endpoint)
    sink._open()
    try:
        for _ in range(batches):
            sink.accept(feed.trades(300))
            sink.flush_now()
        sink.accept(
            BarBatch(
                interval="1m",
                final=True,
                symbol_id=np.array([0, 1], np.uint32),
                ts_event=np.array([T0, T0 + 60_000_000_000], np.int64),
                open=np.ones(2),
                high=np.ones(2),
                low=np.ones(2),
                close=np.ones(2),
                volume=np.ones(2),
                vwap=np.ones(2),
                trades=np.ones(2, np.uint64),
            )
        )
        sink.flush_now()
        assert asyncio.run(sink._upload_pending())
    finally:
        assert sink.spool is not None
        sink.spool.close()


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace("=", "%3D")}},
            }
        ]
    }


def day_keys(moto: MotoS3, bucket: str, kind: str = "trades") -> list[str]:
    return [k.rsplit("/", 1)[1] for k in moto.keys(bucket, f"md/type={kind}/date={DATE}/")]


def compacted(moto: MotoS3, bucket: str, symbol: str) -> pa.Table:
    key = f"md/type=trades/date={DATE}/{layout.compacted_name(symbol)}"
    body = moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(pa.BufferReader(body))


def test_compactor_turns_a_days_parts_into_one_sorted_file_per_symbol(
    tmp_path: Path, moto: MotoS3
) -> None:
    # Arrange: parts from two writers (two tickserver instances) for a closed day.
    bucket = moto.new_bucket()
    feed = Feed()
    write_parts(tmp_path / "a", moto, bucket, feed, 3)
    write_parts(tmp_path / "b", moto, bucket, feed, 2)
    parts = day_keys(moto, bucket)
    assert len(parts) == 5

    # Act: the S3 notification of one part.
    out = compactor.run(
        s3_event(bucket, f"md/type=trades/date={DATE}/{parts[0]}"), client=moto.client()
    )

    # Assert: one file per symbol, every trade once, sorted by time; parts gone.
    assert sorted(day_keys(moto, bucket)) == [
        "compact-AAPL.parquet",
        "compact-MSFT.parquet",
        "compact-NVDA.parquet",
    ]
    for i, sym in enumerate(["AAPL", "MSFT", "NVDA"]):
        t = compacted(moto, bucket, sym)
        want = [s for s in range(1, 1501) if s % 3 == (0, 1, 2)[i]]
        assert t.column("seq").to_pylist() == want
        ts = t.column("ts_event").cast(pa.int64()).to_pylist()
        assert ts == sorted(ts)
        lineage = layout.lineage_loads(t.schema.metadata[layout.LINEAGE_KEY])
        assert sum(len(r) for r in lineage.values()) == 2  # one contiguous range per writer
    trades_report = next(r for r in out["compacted"] if r["type"] == "trades" and r["date"] == DATE)
    assert trades_report["parts"] == 5
    assert trades_report["parts_deleted"] == 5
    assert trades_report["rows_added"] == 1500
    # The bars of that day were not in the event's type: untouched.
    assert all(k.startswith("part-") for k in day_keys(moto, bucket, "bars/interval=1m"))


def test_compactor_is_idempotent_and_merges_late_parts(tmp_path: Path, moto: MotoS3) -> None:
    # Arrange: a compacted day.
    bucket = moto.new_bucket()
    feed = Feed()
    write_parts(tmp_path / "a", moto, bucket, feed, 2)
    event = {"bucket": bucket, "prefix": "md", "date": DATE, "types": ["trades"]}
    compactor.run(event, client=moto.client())
    before = compacted(moto, bucket, "AAPL")

    # Act 1: run again: nothing to do, nothing changes.
    again = compactor.run(event, client=moto.client())

    # Assert 1
    assert again["compacted"][0]["parts"] == 0
    assert compacted(moto, bucket, "AAPL").equals(before)

    # Act 2: a late part for the closed day (e.g. drained after an outage).
    write_parts(tmp_path / "a", moto, bucket, feed, 1)
    late = compactor.run(event, client=moto.client())

    # Assert 2: merged once, part removed.
    assert late["compacted"][0]["rows_added"] == 300
    assert compacted(moto, bucket, "MSFT").column("seq").to_pylist() == [
        s for s in range(1, 901) if s % 3 == 1
    ]
    assert not [k for k in day_keys(moto, bucket) if k.startswith("part-")]


class CrashingClient:
    """A boto3 client that dies (like a Lambda timeout) at the n-th call of ``op``."""

    def __init__(self, real: Any, op: str, n: int) -> None:
        self.real, self.op, self.n, self.calls = real, op, n, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name != self.op:
            return attr

        def wrapped(*a: Any, **kw: Any) -> Any:
            self.calls += 1
            if self.calls == self.n:
                raise TimeoutError("simulated Lambda timeout")
            return attr(*a, **kw)

        return wrapped


@pytest.mark.parametrize(("op", "n"), [("put_object", 2), ("delete_object", 2)])
def test_compactor_crashing_half_way_loses_and_duplicates_nothing_on_rerun(
    tmp_path: Path, moto: MotoS3, op: str, n: int
) -> None:
    # Arrange
    bucket = moto.new_bucket()
    feed = Feed()
    write_parts(tmp_path / "a", moto, bucket, feed, 3)
    event = {"bucket": bucket, "prefix": "md", "date": DATE, "types": ["trades"]}

    # Act: a run dies half-way, then a complete run.
    with pytest.raises(TimeoutError):
        compactor.run(event, client=CrashingClient(moto.client(), op, n))
    compactor.run(event, client=moto.client())

    # Assert
    for sym, r in (("AAPL", 0), ("MSFT", 1), ("NVDA", 2)):
        assert compacted(moto, bucket, sym).column("seq").to_pylist() == [
            s for s in range(1, 901) if s % 3 == r
        ]
    assert not [k for k in day_keys(moto, bucket) if k.startswith("part-")]


class RacingClient:
    """Before the first conditional write, another compactor rewrites the target."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name != "put_object":
            return attr

        def wrapped(**kw: Any) -> Any:
            if not self.raced and "IfMatch" in kw:
                self.raced = True
                body = self.real.get_object(Bucket=kw["Bucket"], Key=kw["Key"])["Body"].read()
                t = pq.read_table(pa.BufferReader(body))
                sink = pa.BufferOutputStream()
                pq.write_table(t, sink, row_group_size=7)  # same rows, other bytes, new ETag
                self.real.put_object(
                    Bucket=kw["Bucket"], Key=kw["Key"], Body=sink.getvalue().to_pybytes()
                )
            return attr(**kw)

        return wrapped


def test_compactor_racing_another_compactor_starts_over_instead_of_overwriting(
    tmp_path: Path, moto: MotoS3
) -> None:
    bucket = moto.new_bucket()
    feed = Feed()
    write_parts(tmp_path / "a", moto, bucket, feed, 1)
    event = {"bucket": bucket, "prefix": "md", "date": DATE, "types": ["trades"]}
    compactor.run(event, client=moto.client())
    write_parts(tmp_path / "a", moto, bucket, feed, 1)
    racer = RacingClient(moto.client())

    out = compactor.run(event, client=racer)

    assert racer.raced
    assert out["compacted"][0]["rounds"] == 2
    assert compacted(moto, bucket, "NVDA").column("seq").to_pylist() == [
        s for s in range(1, 601) if s % 3 == 2
    ]


def test_compactor_leaves_an_open_day_alone_unless_forced(tmp_path: Path, moto: MotoS3) -> None:
    bucket = moto.new_bucket()
    write_parts(tmp_path / "a", moto, bucket, Feed(), 1)
    key = f"md/type=trades/date={DATE}/{day_keys(moto, bucket)[0]}"
    day_end = T0 / 1e9 + 86_400

    early = compactor.run(s3_event(bucket, key), client=moto.client(), now=day_end + 60)
    forced = compactor.run(
        {"bucket": bucket, "prefix": "md", "date": DATE, "force": True},
        client=moto.client(),
        now=day_end - 60,
    )

    assert [r for r in early["compacted"] if r["date"] == DATE] == []  # only the day before
    assert any(f"{DATE}: day still open" in s for s in early["skipped"])
    kinds = {(r["type"], r["interval"]) for r in forced["compacted"]}
    assert kinds == {("trades", None), ("quotes", None), ("signals", None), ("bars", "1m")}
    assert day_keys(moto, bucket, "bars/interval=1m") == [
        "compact-AAPL.parquet",
        "compact-MSFT.parquet",
    ]


def test_history_reads_compacted_days_and_new_parts_alike(tmp_path: Path, moto: MotoS3) -> None:
    bucket = moto.new_bucket()
    feed = Feed()
    write_parts(tmp_path / "a", moto, bucket, feed, 2)
    compactor.run({"bucket": bucket, "prefix": "md", "date": DATE}, client=moto.client())
    write_parts(tmp_path / "a", moto, bucket, feed, 1)
    reader = StoreReader(S3Store(bucket, "md", endpoint_url=moto.endpoint))

    t = reader.read("trades", symbol="AAPL", start_ns=T0, end_ns=T0 + 10**12)

    assert t.column("seq").to_pylist() == [s for s in range(1, 901) if s % 3 == 0]


def test_compactor_handler_entry_point_reads_its_endpoint_from_the_environment(
    tmp_path: Path, moto: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = moto.new_bucket()
    write_parts(tmp_path / "a", moto, bucket, Feed(), 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto.endpoint)

    out = compactor.handler({"bucket": bucket, "prefix": "md", "date": DATE}, None)

    assert out["compacted"]
    assert "compact-AAPL.parquet" in day_keys(moto, bucket)
