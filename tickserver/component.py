"""The lifecycle every component (source, sink, engine) follows, and its health report.

A component has ``async start()``, an idempotent ``async stop()`` that flushes, supports
``async with``, and reports :class:`Health` for ``/readyz``, ``/metrics`` and GraphQL
``status``. Background-task failures are logged with context, never silently swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

State = Literal["starting", "ok", "degraded", "down", "stopped"]
Kind = Literal["source", "sink", "engine", "api"]


@dataclass
class Health:
    """What a component says about itself.

    ``state`` is ``ok`` when it does its job, ``degraded`` when it works around a problem
    (e.g. spooling to disk while the broker is down), ``down`` when it cannot work. ``details``
    holds counters and facts shown in ``status`` (connected, last event time, backlog, …).
    """

    name: str
    kind: Kind
    state: State = "starting"
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Whether this component lets ``/readyz`` answer 200."""
        return self.state == "ok"


@runtime_checkable
class Component(Protocol):
    """The lifecycle protocol."""

    name: str

    async def start(self) -> None:
        """Start background work; return once the component is running."""

    async def stop(self) -> None:
        """Stop and flush; safe to call more than once."""

    def health(self) -> Health:
        """Report the current state."""


class BaseComponent:
    """Convenience base: task supervision, idempotent stop, ``async with``."""

    kind: Kind = "source"

    def __init__(self, name: str) -> None:
        self.name = name
        self.log = logging.getLogger(f"tickserver.{self.kind}.{name}")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._health = Health(name=name, kind=self.kind)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a supervised task: a crash is logged and marks the component down."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.log.error("background task %s failed: %s", task.get_name(), exc, exc_info=exc)
            self.set_health("down", f"{task.get_name()} failed: {exc!r}")

    def set_health(self, state: State, reason: str = "", **details: Any) -> None:
        """Update the health report."""
        self._health.state = state
        self._health.reason = reason
        self._health.details.update(details)

    def health(self) -> Health:
        """Report the current state."""
        return self._health

    async def start(self) -> None:
        """Start background work (override and call ``spawn``)."""
        self.set_health("ok")

    async def stop(self) -> None:
        """Cancel background tasks and wait for them; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.cancel_tasks()
        self.set_health("stopped")

    async def cancel_tasks(self) -> None:
        """Cancel and await every supervised task."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
