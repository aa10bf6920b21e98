"""Composition root: ``build_app(cfg)`` wires every component into one aiohttp application.

Components are cleanup contexts registered in the order bus → sinks → engine → sources, so
startup brings sinks up before anything flows and shutdown stops sources first, then the
engine (closing forming bars), and flushes sinks last.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tickserver.bus import Bus
from tickserver.component import Component, Health
from tickserver.config import Config
from tickserver.engine import Engine
from tickserver.metrics import Family, Metrics, Sample
from tickserver.ownership import OWNERSHIP_TOPIC, Ownership
from tickserver.sinks.base import Sink, SinkContext
from tickserver.sources import registry
from tickserver.sources.base import Source, SourceContext
from tickserver.symbols import Symbols

log = logging.getLogger(__name__)

# (name, module, enabled?) — each module exposes ``create(ctx: SinkContext) -> Sink``.
# CloudWatch comes first so that it stops last: its final datapoints then show the backlog
# the other sinks left after flushing, not the one they had before.
SINKS: list[tuple[str, str, Callable[[Config], bool]]] = [
    ("cloudwatch", "tickserver.sinks.cloudwatch", lambda c: c.cloudwatch.enabled),
    ("store", "tickserver.sinks.store", lambda c: c.store.enabled),
    ("kafka", "tickserver.sinks.kafka", lambda c: c.kafka.enabled),
]


@dataclass
class AppState:
    """Everything the routes and resolvers need, stored under ``APP_STATE``."""

    config: Config
    bus: Bus
    symbols: Symbols
    metrics: Metrics
    engine: Engine
    sources: list[Source]
    sinks: list[Sink]
    token: str | None
    started_at: float = field(default_factory=time.monotonic)
    started_wall_ns: int = field(default_factory=time.time_ns)
    extras: dict[str, Any] = field(default_factory=dict)

    def components(self) -> list[Component]:
        """Every component, in start order."""
        return [*self.sinks, self.engine, *self.sources]

    def healths(self) -> list[Health]:
        """Health of every component."""
        return [c.health() for c in self.components()]

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when every source delivers and every sink is healthy; else the reasons."""
        reasons = []
        for h in self.healths():
            if not h.ready:
                reasons.append(
                    f"{h.kind} {h.name}: {h.state}" + (f" ({h.reason})" if h.reason else "")
                )
        return not reasons, reasons

    def uptime_s(self) -> float:
        """Seconds since the app was built."""
        return time.monotonic() - self.started_at

    def collect_metrics(self) -> Iterable[Family]:
        """Report readiness, sink backlogs and bus drops as metric families (for /metrics
        and the CloudWatch sink, which read only the registry)."""
        m = self.metrics
        ready = m.family("ready", "gauge", "1 when /readyz answers 200, else 0")
        ready.samples = [Sample(ready.name, (), 1.0 if self.readiness()[0] else 0.0)]
        backlog = m.family("sink_backlog", "gauge", "Records accepted by a sink, not yet delivered")
        backlog.samples = [
            Sample(backlog.name, (("sink", s.name),), float(s.backlog())) for s in self.sinks
        ]
        drops = m.family("bus_dropped_subscribers_total", "counter", "Slow bus subscribers dropped")
        drops.samples = [
            Sample(drops.name, (("subscriber", k),), float(v))
            for k, v in sorted(self.bus.stats.dropped_subscribers.items())
        ]
        return [ready, backlog, drops]


APP_STATE = web.AppKey("tickserver_state", AppState)


def _component_ctx(
    component: Component,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        await component.start()
        try:
            yield
        finally:
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)

    return ctx


def build_sinks(cfg: Config, ctx: SinkContext) -> list[Sink]:
    """Create the enabled sinks."""
    sinks: list[Sink] = []
    for name, module, enabled in SINKS:
        if not enabled(cfg):
            continue
        if importlib.util.find_spec(module) is None:
            raise RuntimeError(f"sink {name!r} is enabled but {module} is not installed")
        sinks.append(importlib.import_module(module).create(ctx))
    return sinks


def build_sources(
    cfg: Config,
    ctx: SourceContext,
    names: list[str] | None = None,
    source_symbols: dict[str, list[str]] | None = None,
) -> list[Source]:
    """Create the enabled sources (``names`` overrides ``sources.enabled``).

    ``source_symbols`` gives a source its own symbols (``--symbols yfinance=AAPL``).

    Raises
    ------
    ValueError
        When two sources would publish the same symbol (their ticks would interleave).
    """
    out: list[Source] = []
    for name in names or cfg.sources.enabled:
        plugin = registry.get(name)
        section = plugin.config_model.model_validate(cfg.source_section(name))
        own = (source_symbols or {}).get(name)
        sctx = dataclasses.replace(ctx, symbols_override=tuple(own)) if own else ctx
        out.append(plugin.factory(sctx, section))
    check_symbol_overlap(out)
    return out


def _follow_ownership(bus: Bus, market: Any) -> None:
    """Serve only the symbols an owning source (``kafka``) announces (docs/kafka.md)."""

    def on_ownership(o: Ownership) -> None:
        market.owned = None if o.symbols is None else set(o.symbols)

    bus.attach(OWNERSHIP_TOPIC, on_ownership, name="api.ownership")


def check_symbol_overlap(sources: list[Source]) -> None:
    """Refuse two sources serving one symbol: give each its own (``[sources.<name>] symbols``).

    Raises
    ------
    ValueError
        Naming the symbol and both sources.
    """
    owner: dict[str, str] = {}
    for src in sources:
        for sym in getattr(src, "symbols", ()):
            if sym in owner and owner[sym] != src.name:
                raise ValueError(
                    f"symbol {sym} is served by both {owner[sym]!r} and {src.name!r}; give each "
                    "source its own symbols ([sources.<name>] symbols = [...] or "
                    "--symbols NAME=A,B)"
                )
            owner[sym] = src.name


def build_app(
    cfg: Config,
    *,
    source_names: list[str] | None = None,
    symbols_override: list[str] | None = None,
    extra_sources: list[Callable[[SourceContext], Source]] | None = None,
    source_symbols: dict[str, list[str]] | None = None,
) -> web.Application:
    """Build the application: components, routes, GraphQL.

    Parameters
    ----------
    cfg
        The configuration tree.
    source_names
        Run these sources instead of ``sources.enabled`` (``--source``).
    symbols_override
        Symbols for the sources instead of their configured ones (``--symbols``).
    extra_sources
        Factories of additional sources (used by ``tickserver replay``).
    source_symbols
        Per-source symbols (``--symbols NAME=A,B``), taking precedence over ``symbols_override``.
    """
    from tickserver.api import http

    metrics = Metrics()
    bus = Bus(default_maxsize=cfg.bus.subscriber_maxsize)
    # Sources register the symbols they serve; `symbols` then lists exactly those.
    symbols = Symbols()
    sink_ctx = SinkContext(config=cfg, bus=bus, symbols=symbols, metrics=metrics)
    src_ctx = SourceContext(
        config=cfg,
        bus=bus,
        symbols=symbols,
        metrics=metrics,
        symbols_override=tuple(symbols_override) if symbols_override else None,
    )
    sinks = build_sinks(cfg, sink_ctx)
    sources = (
        build_sources(cfg, src_ctx, source_names, source_symbols) if source_names != [] else []
    )
    for factory in extra_sources or []:
        sources.append(factory(src_ctx))
    check_symbol_overlap(sources)
    live = any(s.live for s in sources) or not sources
    engine = Engine(cfg, bus, symbols, metrics, live_clock=live)
    token = os.environ.get(cfg.server.auth_token_env) or None

    state = AppState(
        config=cfg,
        bus=bus,
        symbols=symbols,
        metrics=metrics,
        engine=engine,
        sources=sources,
        sinks=sinks,
        token=token,
    )
    metrics.register_collector(state.collect_metrics)
    app = http.create_web_app(state)
    app[APP_STATE] = state
    _follow_ownership(bus, state.extras["market"])
    for sink in sinks:
        app.cleanup_ctx.append(_component_ctx(sink))
    app.cleanup_ctx.append(_component_ctx(engine))
    for src in sources:
        app.cleanup_ctx.append(_component_ctx(src))
    return app
