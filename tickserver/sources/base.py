"""The Source protocol: what a market-data provider module implements.

A source is a component (``start``/``stop``/``health``) that publishes batches on the bus:
``Topic.RAW_TRADES`` (:class:`~tickserver.events.TradeBatch`), ``Topic.RAW_QUOTES``
(:class:`~tickserver.events.QuoteBatch`) and/or ``Topic.RAW_BOOK``
(:class:`~tickserver.events.BookDeltaBatch`). Sources know events and the bus, never the API
or the sinks. Each source numbers what it publishes with its own gap-free sequence
(:meth:`Source.next_seq`).

Adding a provider is one module that defines a pydantic config model (its ``[sources.<name>]``
section), a :class:`Source` subclass and a module-level ``PLUGIN = SourcePlugin(...)``,
registered by name in :mod:`tickserver.sources.registry` or by a third-party package under
the ``tickserver.sources`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from tickserver.bus import Topic
from tickserver.component import BaseComponent, Kind

if TYPE_CHECKING:
    from tickserver.bus import Bus
    from tickserver.config import Config
    from tickserver.events import BookDeltaBatch, QuoteBatch, TradeBatch
    from tickserver.metrics import Metrics
    from tickserver.symbols import Symbols


@dataclass(frozen=True)
class SourceContext:
    """What a source gets from the app: the bus, the symbol table, metrics and the config."""

    config: Config
    bus: Bus
    symbols: Symbols
    metrics: Metrics
    symbols_override: tuple[str, ...] | None = None
    """Symbols given on the command line (``--symbols``), replacing the configured ones."""

    def symbols_for(self, configured: list[str] | None) -> list[str]:
        """Pick a source's symbols: command line, else its section, else ``market.symbols``."""
        if self.symbols_override:
            return list(self.symbols_override)
        if configured:
            return list(configured)
        return list(self.config.market.symbols)


class Source(BaseComponent):
    """Base class of sources: sequence numbering and publishing helpers."""

    kind: Kind = "source"
    live: bool = True
    """Live sources stamp ``ts_event`` near the wall clock, so the engine closes bars on the
    wall clock; replay sources set this False and bars close on event time."""

    def __init__(self, name: str, ctx: SourceContext) -> None:
        super().__init__(name)
        self.ctx = ctx
        self._seq = 0
        self.events_out = 0

    def next_seq(self, n: int) -> NDArray[np.uint64]:
        """Reserve ``n`` sequence numbers (1-based, gap-free per source) and return them."""
        start = self._seq + 1
        self._seq += n
        return np.arange(start, start + n, dtype=np.uint64)

    @property
    def last_seq(self) -> int:
        """The last sequence number handed out."""
        return self._seq

    def publish_trades(self, batch: TradeBatch) -> None:
        """Hand a trade batch to the engine (via the bus)."""
        if len(batch):
            self.events_out += len(batch)
            self.ctx.bus.publish(Topic.RAW_TRADES, batch)

    def publish_quotes(self, batch: QuoteBatch) -> None:
        """Hand a quote batch to the engine (via the bus)."""
        if len(batch):
            self.events_out += len(batch)
            self.ctx.bus.publish(Topic.RAW_QUOTES, batch)

    def publish_book(self, batch: BookDeltaBatch) -> None:
        """Hand an L2 delta batch to the engine (via the bus)."""
        if len(batch):
            self.events_out += len(batch)
            self.ctx.bus.publish(Topic.RAW_BOOK, batch)


@dataclass(frozen=True)
class SourcePlugin:
    """How the registry knows a provider: its name, config model and factory."""

    name: str
    config_model: type[BaseModel]
    factory: Callable[[SourceContext, Any], Source]
    description: str = ""
