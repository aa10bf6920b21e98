"""Shared fixtures: a factory of real ``tickserver`` subprocesses that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import netguard
from tests.support.server import TickServer

# Tests are offline: any connection that leaves the machine fails (and fails the test).
netguard.install()


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    before = len(netguard.BLOCKED)
    yield
    blocked = netguard.BLOCKED[before:]
    assert not blocked, f"test tried to reach the network: {blocked}"


@pytest.fixture
def tickserver(tmp_path: Path) -> Iterator[Callable[..., TickServer]]:
    """Return ``start(args=("run",), config=None, env=None, ...)`` -> a started TickServer."""
    started: list[TickServer] = []

    def start(*args: Any, wait_ready: bool = True, **kwargs: Any) -> TickServer:
        srv = TickServer(tmp_path / f"srv{len(started)}", *args, **kwargs)
        started.append(srv)
        return srv.start(wait_ready=wait_ready)

    yield start
    for srv in started:
        srv.kill()
