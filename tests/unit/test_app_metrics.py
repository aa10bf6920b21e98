"""The app reports readiness, sink backlogs and bus drops through the metrics registry."""

from __future__ import annotations

from tickserver.app import AppState
from tickserver.bus import Bus
from tickserver.component import BaseComponent
from tickserver.config import load_config
from tickserver.metrics import Metrics
from tickserver.sinks.base import Sink, SinkContext
from tickserver.symbols import Symbols


class SpoolingSink(Sink):
    def __init__(self, ctx: SinkContext, pending: int) -> None:
        super().__init__("spooling", ctx)
        self.pending = pending

    def backlog(self) -> int:
        return self.pending


def make_state(sink_state: str, pending: int) -> AppState:
    cfg = load_config(environ={})
    metrics, bus, symbols = Metrics(), Bus(default_maxsize=1), Symbols()
    sink = SpoolingSink(SinkContext(cfg, bus, symbols, metrics), pending)
    sink.set_health(sink_state)  # type: ignore[arg-type]
    engine = BaseComponent("engine")
    engine.set_health("ok")
    state = AppState(cfg, bus, symbols, metrics, engine, [], [sink], None)  # type: ignore[arg-type]
    metrics.register_collector(state.collect_metrics)
    return state


def test_metrics_report_ready_backlog_and_dropped_subscribers() -> None:
    # Arrange
    state = make_state("ok", pending=42)
    sub = state.bus.subscribe("trades", name="dashboard:1", maxsize=1)
    state.bus.publish("trades", 1)
    state.bus.publish("trades", 2)  # over maxsize, no conflater: dropped
    # Act
    text = state.metrics.render()
    # Assert
    assert sub.closed
    assert "tickserver_ready 1\n" in text
    assert 'tickserver_sink_backlog{sink="spooling"} 42\n' in text
    assert 'tickserver_bus_dropped_subscribers_total{subscriber="dashboard"} 1\n' in text


def test_ready_metric_is_zero_while_a_sink_is_degraded() -> None:
    # Arrange
    state = make_state("degraded", pending=0)
    # Act
    text = state.metrics.render()
    # Assert
    assert "tickserver_ready 0\n" in text
