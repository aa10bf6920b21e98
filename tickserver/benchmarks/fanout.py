"""``tickserver bench fanout``: K real WebSocket GraphQL subscribers on loopback.

A ``tickserver run`` subprocess (simulated market at ``--ticks`` trades/s) serves K
``graphql-transport-ws`` clients subscribed to ``ticks`` (each client to one symbol, so the
server holds one fan-out group per symbol) or ``quotes`` (all symbols). Measured:

- server CPU µs per subscriber-message, two ways: the process's CPU time with K clients
  minus with none, ÷ messages the clients received over the same window (noisy at small K:
  the extra CPU is then close to the idle server's jitter); and, for the fan-out path, the
  server's own thread-CPU accounting of building and writing messages
  (``tickserver_ws_fanout_cpu_seconds_total`` ÷ ``…_messages_total``);
- tick → client latency (p50/p99): receive time - the newest tick's ``tsMs`` in the message,
  on a few probe clients that parse every message (the rest only count frames);
- server RSS with one extra subscriber that never reads (it must stay bounded: the server
  closes a connection more than 4 MiB behind).

Both the fan-out path (default) and strawberry's per-subscriber execution
(``server.subscription_fanout = false``) are measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tickserver.benchmarks.harness import Report

NAME = "fanout"
HELP = "CPU per subscriber-message and latency for K WebSocket GraphQL subscribers"

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "SPY"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--subscribers", default="10,100,1000", help="K values, comma-separated")
    p.add_argument("--ticks", type=float, default=10_000, help="trades per second of the feed")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window per run")
    p.add_argument(
        "--naive-max", type=int, default=100, help="largest K for strawberry's per-subscriber path"
    )
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mask_frame(payload: bytes) -> bytes:
    """A masked client→server text frame."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x81,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += bytes((0x80 | 126,)) + struct.pack("!H", n)
    else:
        head += bytes((0x80 | 127,)) + struct.pack("!Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


@dataclass
class _Client(asyncio.Protocol):
    """A minimal WebSocket client: counts frames; probes parse them for latency."""

    query: str
    probe: bool
    read: bool = True
    messages: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    buf: bytearray = field(default_factory=bytearray)
    upgraded: bool = False
    transport: Any = None
    closed: bool = False
    counting: bool = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            ).encode()
        )
        if not self.read:
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buf[: end + 4]
            self.upgraded = True
            self.transport.write(_mask_frame(orjson.dumps({"type": "connection_init"})))
            sub = {"type": "subscribe", "id": "1", "payload": {"query": self.query}}
            self.transport.write(_mask_frame(orjson.dumps(sub)))
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b1 = buf[pos + 1] & 0x7F
            hdr = 2
            if b1 == 126:
                if len(buf) - pos < 4:
                    break
                n = struct.unpack_from("!H", buf, pos + 2)[0]
                hdr = 4
            elif b1 == 127:
                if len(buf) - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                hdr = 10
            else:
                n = b1
            if len(buf) - pos < hdr + n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 0x1 and self.counting:
                self.messages += 1
                if self.probe:
                    now_ms = time.time() * 1000.0
                    msg = orjson.loads(bytes(buf[pos + hdr : pos + hdr + n]))
                    data = (msg.get("payload") or {}).get("data") or {}
                    rows = next(iter(data.values()), None) or []
                    stamps = [r["tsMs"] for r in rows if r.get("tsMs")]
                    if stamps:
                        self.latencies_ms.append(now_ms - max(stamps))
            elif opcode == 0x8:
                self.closed = True
            pos += hdr + n
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


def _server(port: int, workdir: Path, *, fanout: bool, ticks: float) -> subprocess.Popen[bytes]:
    trade_prob = 0.25
    cfg = f"""
[market]
symbols = {orjson.dumps(SYMBOLS).decode()}
[server]
subscription_fanout = {str(fanout).lower()}
max_subscriptions_per_connection = 4
[store]
enabled = false
[sources.sim]
rate = {ticks / trade_prob}
trade_prob = {trade_prob}
batch_ms = 50
"""
    path = workdir / f"fanout-{port}.toml"
    path.write_text(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSERVER_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tickserver",
            "run",
            "--config",
            str(path),
            "--port",
            str(port),
            "--log-format",
            "json",
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / f"fanout-{port}.log").open("wb"),
    )


async def _wait_ready(port: int, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            line = await r.readline()
            w.close()
            if b" 200 " in line:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("tickserver did not become ready")


async def _fanout_counters(port: int) -> tuple[float, float]:
    """(fan-out CPU seconds, fan-out messages) from the server's /metrics."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = (await r.read()).decode()
    w.close()
    vals = {
        "tickserver_ws_fanout_cpu_seconds_total": 0.0,
        "tickserver_ws_fanout_messages_total": 0.0,
    }
    for line in body.splitlines():
        name, _, value = line.partition(" ")
        if name in vals:
            vals[name] = float(value)
    return vals["tickserver_ws_fanout_cpu_seconds_total"], vals[
        "tickserver_ws_fanout_messages_total"
    ]


async def _measure(
    port: int, pid: int, k: int, field_name: str, seconds: float, *, stalled: bool
) -> dict[str, float]:
    import psutil

    proc = psutil.Process(pid)
    loop = asyncio.get_running_loop()
    clients: list[_Client] = []
    for i in range(k):
        if field_name == "ticks":
            sym = SYMBOLS[i % len(SYMBOLS)]
            q = f'subscription {{ ticks(symbols: ["{sym}"]) {{ symbol price size tsMs }} }}'
        else:
            q = "subscription { quotes { symbol last bid ask bidSize askSize tsMs } }"
        c = _Client(query=q, probe=i < 8)
        await loop.create_connection(lambda c=c: c, "127.0.0.1", port)  # type: ignore[misc]
        clients.append(c)
    stall: _Client | None = None
    if stalled:
        stall = _Client(
            query="subscription { ticks { symbol price size tsMs seq side ts } }",
            probe=False,
            read=False,
        )
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        await loop.create_connection(lambda: stall, sock=sock)
        # The stalled client never reads, so it cannot see the upgrade reply: subscribe blind.
        await asyncio.sleep(0.2)
        stall.transport.write(_mask_frame(orjson.dumps({"type": "connection_init"})))
        sub = {"type": "subscribe", "id": "1", "payload": {"query": stall.query}}
        stall.transport.write(_mask_frame(orjson.dumps(sub)))
    await asyncio.sleep(1.0)  # joins and warm-up
    rss0 = proc.memory_info().rss
    for c in clients:
        c.counting = True
    fan0 = await _fanout_counters(port)
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1 = sum(proc.cpu_times()[:2])
    elapsed = time.perf_counter() - t0
    fan1 = await _fanout_counters(port)
    for c in clients:
        c.counting = False
    rss1 = proc.memory_info().rss
    msgs = sum(c.messages for c in clients)
    lats = sorted(x for c in clients for x in c.latencies_ms)
    for c in clients:
        if c.transport:
            c.transport.close()
    if stall is not None and stall.transport:
        stall.transport.close()
    await asyncio.sleep(0.3)
    out = {
        "fanout_cpu_s": fan1[0] - fan0[0],
        "fanout_msgs": fan1[1] - fan0[1],
        "cpu_s": (cpu1 - cpu0) / elapsed,
        "messages": float(msgs),
        "msgs_per_s": msgs / elapsed,
        "rss_mb_start": rss0 / 2**20,
        "rss_mb_end": rss1 / 2**20,
        "closed": float(sum(c.closed for c in clients)),
    }
    if lats:
        out["p50_ms"] = statistics.median(lats)
        out["p99_ms"] = lats[min(len(lats) - 1, int(0.99 * len(lats)))]
    return out


async def _run_mode(
    fanout: bool, ks: list[int], fields: list[str], args: argparse.Namespace, report: Report
) -> None:
    system = "tickserver-fanout" if fanout else "strawberry-per-subscriber"
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        proc = _server(port, Path(tmp), fanout=fanout, ticks=args.ticks)
        try:
            await _wait_ready(port)
            idle = await _measure(port, proc.pid, 0, "ticks", args.seconds, stalled=False)
            for field_name in fields:
                for k in ks:
                    stalled = fanout and k == ks[min(1, len(ks) - 1)]
                    m = await _measure(port, proc.pid, k, field_name, args.seconds, stalled=stalled)
                    extra_cpu = max(0.0, m["cpu_s"] - idle["cpu_s"])
                    us = 1e6 * extra_cpu / m["msgs_per_s"] if m["msgs_per_s"] else float("nan")
                    case = f"{field_name} K={k}"
                    report.add(system, f"{case}: process CPU us per subscriber-message", us)
                    if fanout and m["fanout_msgs"]:
                        report.add(
                            system,
                            f"{case}: fan-out CPU us per subscriber-message (instrumented)",
                            1e6 * m["fanout_cpu_s"] / m["fanout_msgs"],
                        )
                    if "p99_ms" in m:
                        report.add(system, f"{case}: p50 latency ms", m["p50_ms"])
                        report.add(system, f"{case}: p99 latency ms", m["p99_ms"])
                    report.extra[f"{system} {case} msgs/s"] = round(m["msgs_per_s"])
                    if stalled:
                        report.extra[f"{system} {case} RSS MB with a stalled subscriber"] = (
                            f"{m['rss_mb_start']:.0f} -> {m['rss_mb_end']:.0f}"
                        )
            report.extra[f"{system} idle server CPU %"] = round(100 * idle["cpu_s"], 1)
        finally:
            proc.terminate()
            proc.wait(30)


def run(args: argparse.Namespace) -> Report:
    """Run the benchmark and return its report."""
    ks = [int(x) for x in args.subscribers.split(",")]
    if args.quick:
        ks, args.seconds = [2, 5], 1.0
    report = Report(bench=NAME, unit="µs or ms (see case)", baseline="tickserver-fanout")
    fields = ["ticks", "quotes"]
    asyncio.run(_run_mode(True, ks, fields, args, report))
    asyncio.run(_run_mode(False, [k for k in ks if k <= args.naive_max], fields, args, report))
    report.notes.append(
        f"feed: {args.ticks:,.0f} trades/s over {len(SYMBOLS)} symbols; ticks clients take one "
        "symbol each, quotes clients all symbols"
    )
    return report
