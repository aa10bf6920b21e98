"""Source health reaches /readyz (feed facts, no messages) and /metrics."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tickserver.api.http import make_readyz
from tickserver.bus import Bus
from tickserver.component import Health
from tickserver.config import load_config
from tickserver.events import trades_from_columns
from tickserver.metrics import Metrics
from tickserver.sources.base import Source, SourceContext
from tickserver.symbols import Symbols


class Probe(Source):
    pass


class FakeState:
    def __init__(self, comps: list[Any]) -> None:
        self.comps = comps

    def healths(self) -> list[Health]:
        return [c.health() for c in self.comps]

    def readiness(self) -> tuple[bool, list[str]]:
        bad = [f"{h.name}: {h.state}" for h in self.healths() if not h.ready]
        return not bad, bad


async def test_readyz_reports_source_connection_lag_errors_backoff_and_budget() -> None:
    # Arrange
    ctx = SourceContext(
        config=load_config(environ={}), bus=Bus(), symbols=Symbols(), metrics=Metrics()
    )
    src = Probe("feed", ctx)
    src.budget_remaining = lambda: {"day": 3}  # type: ignore[method-assign]
    src.set_health("degraded", "stream down; reconnecting")
    src.set_connected(False)
    src.publish_trades(
        trades_from_columns("feed", [ctx.symbols.intern("X")], [5], [1.0], [1.0], [0])
    )
    src.record_error("disconnect", "socket closed")
    src.set_backoff(4.0, "stream disconnect", 2)
    app = web.Application()
    app.router.add_get("/readyz", make_readyz(FakeState([src])))  # type: ignore[arg-type]
    # Act
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/readyz")
        body = await resp.json()
    # Assert
    assert resp.status == 503
    feed = body["components"]["feed"]
    assert feed["state"] == "degraded"
    assert feed["connected"] is False
    assert feed["errors"] == {"disconnect": 1}
    assert feed["backoff"]["active"] is True
    assert feed["budget_remaining"] == {"day": 3}
    assert feed["last_event"].startswith("1970-01-01T00:00:00.000000005")
    assert "last_error" not in feed  # messages stay in the authenticated status
