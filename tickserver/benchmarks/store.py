"""``tickserver bench store``: ticks/s from bus batches to Parquet, locally and on S3 (moto),
beside a naive pandas ``DataFrame.to_parquet`` per flush, in the same run.

tickserver's path is the real one, on one thread: every batch is encoded and appended to the
write-ahead spool (``StoreSink.accept``), and each flush reads the spool, decodes, sorts by
(symbol, ts_event) and writes zstd Parquet atomically (``StoreSink.flush_now``); the S3 case
then uploads the parts to moto's S3 server on 127.0.0.1 with boto3. The pandas peer builds a
DataFrame per flush from the same batches (symbol names mapped) and calls ``to_parquet``
(zstd), with no spool, no sorting and no fsync: the throughput one gets without durability.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tickserver.benchmarks.harness import Report

NAME = "store"
HELP = (
    "ticks/s written to Parquet: tickserver's store (spool + Parquet) locally and to a local "
    "S3 server (moto), vs pandas to_parquet per flush"
)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY"]
TARGET_LOCAL = 2_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tickserver bench store``."""
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    parser.add_argument("--ticks", type=int, default=4_000_000, help="ticks per repeat")
    parser.add_argument("--batch", type=int, default=10_000, help="ticks per bus batch")
    parser.add_argument(
        "--flush-ticks", type=int, default=1_000_000, help="ticks per flush (one part per flush)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repeats (median reported)")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto) cases")


def _batches(n: int, batch: int) -> list[Any]:
    from tickserver.events import trades_from_columns

    rng = np.random.default_rng(7)
    t0 = 1_767_225_600_000_000_000  # 2026-01-01, so every tick lands on one UTC date
    out = []
    price = 100.0 + np.cumsum(rng.normal(0, 0.01, n)).round(2)
    sym = rng.integers(0, len(SYMBOLS), n)
    for a in range(0, n, batch):
        b = min(a + batch, n)
        out.append(
            trades_from_columns(
                "sim",
                sym[a:b],
                t0 + np.arange(a, b) * 1000,
                price[a:b],
                rng.integers(1, 500, b - a).astype(np.float64),
                np.arange(a + 1, b + 1),
                flags=rng.integers(0, 3, b - a),
            )
        )
    return out


def _make_sink(root: Path, flush_bytes: int, s3: dict[str, Any] | None) -> Any:
    from tickserver.bus import Bus
    from tickserver.config import load_config
    from tickserver.metrics import Metrics
    from tickserver.sinks.base import SinkContext
    from tickserver.sinks.store import StoreSink
    from tickserver.symbols import Symbols

    store: dict[str, Any] = {
        "path": str(root),
        "flush_bytes": flush_bytes,
        "max_backlog_bytes": 16 << 30,
        "flush_interval_s": 3600,
        "cache_bytes": 0,
    }
    store.update(s3 or {})
    cfg = load_config(environ={}, overrides={"store": store})
    sink = StoreSink(SinkContext(cfg, Bus(), Symbols(SYMBOLS), Metrics()))
    sink._open()  # the synchronous part of start(): spool, outbox, S3 client
    return sink


def _run_tickserver(batches: list[Any], flush_every: int, root: Path, s3: Any) -> float:
    """Seconds to spool, flush (and upload) every batch."""
    flush_bytes = 1 << 40  # flushes are driven by tick count below
    sink = _make_sink(root, flush_bytes, s3)
    try:
        t0 = time.perf_counter()
        since = 0
        for b in batches:
            sink.accept(b)
            since += len(b)
            if since >= flush_every:
                sink.flush_now()
                since = 0
                if s3 is not None:
                    asyncio.run(sink._upload_pending())
        sink.flush_now()
        if s3 is not None:
            asyncio.run(sink._upload_pending())
            assert not sink._outbox, "bench: some parts failed to upload"
        return time.perf_counter() - t0
    finally:
        assert sink.spool is not None
        sink.spool.close()


def _run_pandas(batches: list[Any], flush_every: int, root: Path, s3: Any) -> float:
    import io

    import pandas as pd

    names = np.array(SYMBOLS, dtype=object)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pending: list[Any] = []
    n_files = 0

    def flush() -> None:
        nonlocal n_files
        if not pending:
            return
        df = pd.DataFrame(
            {
                "symbol": np.concatenate([names[b.symbol_id] for b in pending]),
                "ts_event": pd.to_datetime(np.concatenate([b.ts_event for b in pending]), utc=True),
                "ts_init": pd.to_datetime(np.concatenate([b.ts_init for b in pending]), utc=True),
                "price": np.concatenate([b.price for b in pending]),
                "size": np.concatenate([b.size for b in pending]),
                "seq": np.concatenate([b.seq for b in pending]).astype(np.int64),
                "flags": np.concatenate([b.flags for b in pending]).astype(np.int32),
                "source": "sim",
            }
        )
        if s3 is None:
            df.to_parquet(root / f"part-{n_files}.parquet", compression="zstd", index=False)
        else:
            buf = io.BytesIO()
            df.to_parquet(buf, compression="zstd", index=False)
            s3["client"].put_object(
                Bucket=s3["bucket"], Key=f"pandas/part-{n_files}.parquet", Body=buf.getvalue()
            )
        n_files += 1
        pending.clear()

    since = 0
    for b in batches:
        pending.append(b)
        since += len(b)
        if since >= flush_every:
            flush()
            since = 0
    flush()
    return time.perf_counter() - t0


def _median_rate(fn: Any, n: int, repeat: int, tmp: Path, label: str, *a: Any) -> float:
    rates = []
    for i in range(-1, repeat):  # run -1 warms up (imports, allocator) and is not counted
        root = tmp / f"{label}-{i}"
        secs = fn(*a, root)
        if i >= 0:
            rates.append(n / secs)
        shutil.rmtree(root, ignore_errors=True)
    return float(np.median(rates))


def run(args: argparse.Namespace) -> Report:
    """Run the benchmark."""
    n = 200_000 if args.quick else args.ticks
    repeat = 1 if args.quick else args.repeat
    flush_every = min(args.flush_ticks, n)
    batches = _batches(n, args.batch)
    report = Report(bench=NAME, unit="ticks/s", lower_is_better=False, baseline="tickserver")
    tmp = Path(tempfile.mkdtemp(prefix="tickserver-bench-store-"))
    try:
        with _one_core(report):
            _local_cases(report, batches, flush_every, n, repeat, tmp)
        if not args.no_s3:
            _s3_cases(report, batches, flush_every, n, repeat, tmp)
        local = report.results["tickserver/local-parquet"]
        report.extra["ticks"] = n
        report.extra["ticks_per_flush"] = flush_every
        report.extra["target_local_ticks_per_s"] = TARGET_LOCAL
        report.extra["meets_target"] = bool(local >= TARGET_LOCAL)
        report.notes.append(
            "tickserver includes the write-ahead spool (append + fsync policy batch), sorting by "
            "(symbol, ts_event) and atomic file writes; pandas writes unsorted with no spool"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


@contextlib.contextmanager
def _one_core(report: Report) -> Iterator[None]:
    """Pin this thread to one CPU and pyarrow to one thread (the local cases' "one core")."""
    import pyarrow as pa

    old_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    old_pa = pa.cpu_count()
    try:
        if old_cpus:
            cpu = min(old_cpus)
            os.sched_setaffinity(0, {cpu})
            report.extra["local_cases_cpu"] = cpu
        pa.set_cpu_count(1)
        yield
    finally:
        pa.set_cpu_count(old_pa)
        if old_cpus:
            os.sched_setaffinity(0, old_cpus)


def _local_cases(
    report: Report, batches: list[Any], flush_every: int, n: int, repeat: int, tmp: Path
) -> None:
    report.add(
        "tickserver",
        "local-parquet",
        _median_rate(
            lambda root: _run_tickserver(batches, flush_every, root, None),
            n,
            repeat,
            tmp,
            "ts-local",
        ),
    )
    report.add(
        "pandas-to_parquet",
        "local-parquet",
        _median_rate(
            lambda root: _run_pandas(batches, flush_every, root, None),
            n,
            repeat,
            tmp,
            "pd-local",
        ),
    )


def _s3_cases(
    report: Report, batches: list[Any], flush_every: int, n: int, repeat: int, tmp: Path
) -> None:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        report.notes.append("S3 cases skipped: moto[server] is not installed")
        return
    import socket

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        s3cfg = {"s3_bucket": "bench", "s3_endpoint_url": endpoint, "s3_prefix": "ts"}
        report.add(
            "tickserver",
            "s3-moto",
            _median_rate(
                lambda root: _run_tickserver(batches, flush_every, root, s3cfg),
                n,
                repeat,
                tmp,
                "ts-s3",
            ),
        )
        report.add(
            "pandas-to_parquet",
            "s3-moto",
            _median_rate(
                lambda root: _run_pandas(
                    batches, flush_every, root, {"client": client, "bucket": "bench"}
                ),
                n,
                repeat,
                tmp,
                "pd-s3",
            ),
        )
        report.notes.append(f"S3 = moto's server on {endpoint} (in this process)")
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
