"""The Sink protocol: components that take events off the bus and deliver them elsewhere.

A sink attaches lossless callbacks to bus topics (``Bus.attach``); the callback only appends
to an in-memory buffer or an on-disk spool (never blocks), and the sink's own background task
delivers (Kafka, S3, CloudWatch). Sinks that must not lose data spool to disk while their
destination is down and catch up when it returns; ``health()`` reports the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tickserver.component import BaseComponent, Kind

if TYPE_CHECKING:
    from tickserver.bus import Bus
    from tickserver.config import Config
    from tickserver.metrics import Metrics
    from tickserver.symbols import Symbols


@dataclass(frozen=True)
class SinkContext:
    """What a sink gets from the app."""

    config: Config
    bus: Bus
    symbols: Symbols
    metrics: Metrics


class Sink(BaseComponent):
    """Base class of sinks."""

    kind: Kind = "sink"

    def __init__(self, name: str, ctx: SinkContext) -> None:
        super().__init__(name)
        self.ctx = ctx

    def backlog(self) -> int:
        """Records accepted but not yet delivered (0 if the sink does not buffer)."""
        return 0
