"""Helpers for Kafka tests: an in-process sink on a real bus, events, an independent consumer."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tickserver.bus import Bus, Topic
from tickserver.config import load_config
from tickserver.events import BarBatch, SignalBatch, TradeBatch, trades_from_columns
from tickserver.metrics import Metrics
from tickserver.sinks.base import SinkContext
from tickserver.sinks.kafka import KafkaSink
from tickserver.symbols import Symbols

SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY"]


def kafka_config(tmp_path: Path, bootstrap: str, **kafka: Any) -> Any:
    """A config with the Kafka sink on ``bootstrap``, fast retries, a spool under tmp_path."""
    section = {
        "enabled": True,
        "bootstrap_servers": [bootstrap],
        "spool_dir": str(tmp_path / "spool"),
        "partitions": 4,
        "request_timeout_ms": 3000,
        "retry_backoff_ms": 50,
        "retry_backoff_max_ms": 500,
        "flush_ms": 50,
        "shutdown_flush_s": 5.0,
        **kafka,
    }
    return load_config(environ={}, overrides={"kafka": section, "market": {"symbols": SYMBOLS}})


class Rig:
    """A bus, a symbol table and a started :class:`KafkaSink`; publishes numbered ticks."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.bus = Bus()
        self.symbols = Symbols(SYMBOLS)
        self.metrics = Metrics()
        self.sink = KafkaSink(SinkContext(cfg, self.bus, self.symbols, self.metrics))
        self.seq = 0
        self.published: dict[str, list[int]] = collections.defaultdict(list)

    async def __aenter__(self) -> Rig:
        await self.sink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sink.stop()

    def ticks(self, n: int, *, source: str = "sim", symbols: list[str] | None = None) -> TradeBatch:
        """Publish ``n`` trades round-robin over ``symbols``; return the batch."""
        names = symbols or SYMBOLS
        ids = np.array([self.symbols.intern(s) for s in names], dtype=np.uint32)[
            np.arange(n) % len(names)
        ]
        seq = np.arange(self.seq + 1, self.seq + n + 1, dtype=np.uint64)
        self.seq += n
        now = time.time_ns()
        batch = trades_from_columns(
            source,
            ids,
            now + np.arange(n, dtype=np.int64),
            100.0 + (seq % 100).astype(np.float64) / 100.0,
            np.full(n, 10.0),
            seq,
            flags=1,
        )
        for sid, q in zip(ids.tolist(), seq.tolist(), strict=True):
            self.published[self.symbols.name(sid)].append(q)
        self.bus.publish(Topic.TRADES, batch)
        return batch

    def bars(self, interval: str = "1m") -> BarBatch:
        """Publish one final bar per symbol."""
        k = len(SYMBOLS)
        batch = BarBatch(
            interval=interval,
            final=True,
            symbol_id=np.arange(k, dtype=np.uint32),
            ts_event=np.full(k, 1_800_000_000_000_000_000, dtype=np.int64),
            open=np.full(k, 10.0),
            high=np.full(k, 11.0),
            low=np.full(k, 9.0),
            close=np.full(k, 10.5),
            volume=np.full(k, 1000.0),
            vwap=np.array([10.2, np.nan, 10.1, 10.0])[:k],
            trades=np.full(k, 7, dtype=np.uint64),
        )
        self.bus.publish(Topic.BARS, batch)
        return batch

    def signals(self) -> SignalBatch:
        """Publish two signals."""
        batch = SignalBatch(
            rules=("ema_cross", "rsi_extreme"),
            symbol_id=np.array([0, 1], dtype=np.uint32),
            ts_event=np.array([1, 2], dtype=np.int64) + 1_800_000_000_000_000_000,
            rule_id=np.array([0, 1], dtype=np.uint16),
            direction=np.array([1, -1], dtype=np.int8),
            value=np.array([0.5, 71.2]),
        )
        self.bus.publish(Topic.SIGNALS, batch)
        return batch

    async def wait_delivered(self, within: float = 60.0) -> None:
        """Wait until the spool is empty (every accepted record acknowledged)."""
        await wait_for(lambda: self.sink.backlog() == 0, within, "the spool to drain")


async def wait_for(
    cond: Callable[[], bool | Awaitable[bool]], within: float, what: str, every: float = 0.05
) -> None:
    """Poll ``cond`` until true; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        res = cond()
        if not isinstance(res, bool):
            res = await res
        if res:
            return
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


class Collector:
    """An independent aiokafka consumer of whole topics, from the earliest offset.

    Keeps every record value seen, keyed by topic. Start a new one after restarting an
    in-memory broker: an old consumer's positions point past the new, empty logs.
    """

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.values: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> Collector:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
            metadata_max_age_ms=500,
            request_timeout_ms=3000,
            retry_backoff_ms=50,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=100, max_records=10_000)
            except Exception:  # broker down or restarting: keep trying, like any consumer
                await asyncio.sleep(0.1)
                continue
            for tp, recs in batches.items():
                for r in recs:
                    self.values[tp.topic].append(orjson.loads(r.value))

    async def wait_caught_up(self, within: float) -> None:
        """Wait until every assigned partition is read up to its high watermark (stable)."""
        deadline = time.monotonic() + within
        stable = 0
        while time.monotonic() < deadline:
            tps = self._consumer.assignment()
            done = bool(tps)
            for tp in tps:
                hw = self._consumer.highwater(tp)
                if hw is None or await self._consumer.position(tp) < hw:
                    done = False
            stable = stable + 1 if done else 0
            if stable >= 3:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"the consumer did not catch up within {within}s")

    def events(self, topic: str) -> int:
        """Events seen on ``topic`` (a batched record counts its ``n``; duplicates count)."""
        return sum(int(v.get("n", 1)) for v in self.values[topic] if v["type"] != "gap")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # the broker may be gone
                await self._consumer.stop()


def events_by_symbol(values: list[dict[str, Any]]) -> dict[str, list[tuple[int, int, int]]]:
    """Flatten tick records (immediate or batched) to ``symbol -> [(session, sseq, seq)]``."""
    out: dict[str, list[tuple[int, int, int]]] = collections.defaultdict(list)
    for v in values:
        if v["type"] == "tick":
            out[v["symbol"]].append((v["session"], v["sseq"], v["seq"]))
        elif v["type"] == "ticks":
            out[v["symbol"]].extend(
                (v["session"], s, q) for s, q in zip(v["sseq"], v["seq"], strict=True)
            )
    return out
