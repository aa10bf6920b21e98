"""A minimal tickserver source plug-in: one synthetic trade per symbol every ``interval_s``.

Everything a provider needs is here: a pydantic model for its ``[sources.example]`` section,
a :class:`tickserver.sources.base.Source` subclass that publishes batches, and the module-level
``PLUGIN`` that the ``tickserver.sources`` entry point (see ``pyproject.toml``) points at.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tickserver.config import CsvList
from tickserver.events import trades_from_columns
from tickserver.sources.base import Source, SourceContext, SourcePlugin


class ExampleConfig(BaseModel):
    """``[sources.example]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # unknown keys are errors

    symbols: CsvList | None = None
    price: float = Field(100.0, gt=0)
    interval_s: float = Field(1.0, gt=0)


class ExampleSource(Source):
    """Publishes ``price * (1 + 0.001 * sin(n))`` for each symbol every ``interval_s``."""

    def __init__(self, ctx: SourceContext, cfg: ExampleConfig) -> None:
        super().__init__("example", ctx)
        self.cfg = cfg
        self.symbols = ctx.symbols_for(cfg.symbols)  # --symbols, else the section, else market
        self.ids = ctx.symbols.intern_many(self.symbols)
        self.ticks = 0

    async def start(self) -> None:
        self.spawn(self._run(), name="ticker")  # supervised: a crash is logged, health -> down
        self.set_connected(True)
        self.set_health("ok", "ticking")

    def tick(self) -> None:
        """Publish one trade per symbol now."""
        n = len(self.ids)
        now = time.time_ns()
        px = self.cfg.price * (1.0 + 0.001 * math.sin(self.ticks))
        self.publish_trades(  # validated, numbered and put on the bus by the base class
            trades_from_columns(
                self.name, self.ids, np.full(n, now), np.full(n, px), np.ones(n), np.zeros(n)
            )
        )
        self.ticks += 1

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.cfg.interval_s)


PLUGIN = SourcePlugin(
    name="example",
    config_model=ExampleConfig,
    factory=ExampleSource,
    description="Example plug-in: a steady synthetic ticker.",
)
