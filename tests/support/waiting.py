"""Wait for a condition (with a generous deadline) instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(cond: Callable[[], object], limit_s: float = 20.0, what: str = "") -> None:
    """Poll ``cond`` every 10 ms until it is truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


def until_sync(cond: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Blocking :func:`until` for tests that drive subprocesses."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or cond}")
        time.sleep(0.05)
