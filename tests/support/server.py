"""Run ``tickserver`` as a real subprocess on a free port, and talk to it over sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TickServer:
    """A ``tickserver`` process. Logs (JSON lines) go to ``log_path``."""

    def __init__(
        self,
        workdir: Path,
        args: Sequence[str] = ("run",),
        *,
        config: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.args = list(args)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "tickserver.toml"
            self.config_path.write_text(config)
        self.env = (
            {k: v for k, v in os.environ.items() if not k.startswith("TICKSERVER_")}
            | {"PYTHONUNBUFFERED": "1"}
            | (env or {})
        )
        self.log_path = workdir / "tickserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "tickserver", *self.args]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        cmd += ["--port", str(self.port), "--host", "127.0.0.1", "--log-format", "json"]
        return cmd

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> TickServer:
        """Start the process; wait until it listens (and /readyz is 200 if ``wait_ready``)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.env, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    f"tickserver exited with {self.proc.returncode}:\n{self.logs()[-4000:]}"
                )
            try:
                r = httpx.get(self.url + ("/readyz" if wait_ready else "/healthz"), timeout=1.0)
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"tickserver not ready within {timeout}s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.logs().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit on its own and return its exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if not self._log.closed:
            self._log.close()
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (crash) the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "_log") and not self._log.closed:
            self._log.close()

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """POST a GraphQL query and return the JSON body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.post(
            self.url + "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
            timeout=10,
        )
        body: dict[str, Any] = r.json()
        return body

    def __enter__(self) -> TickServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
