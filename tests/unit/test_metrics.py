"""Metrics rendered in the Prometheus text format."""

from __future__ import annotations

from tickserver.metrics import Metrics, Sample


def test_render_counter_gauge_histogram_and_collector() -> None:
    # Arrange
    m = Metrics()
    c = m.counter("events_total", "Events", ["source"])
    g = m.gauge("depth", "Queue depth")
    h = m.histogram("lat_seconds", "Latency", [0.1, 1.0])
    fam = m.family("backlog", "gauge", "Backlog")
    fam.samples = [Sample(fam.name, (("sink", 'a"b'),), 3.0)]
    m.register_collector(lambda: [fam])
    # Act
    c.inc(2, source="sim")
    g.set(1.5)
    h.observe(0.05)
    h.observe(5.0)
    text = m.render()
    # Assert
    assert 'tickserver_events_total{source="sim"} 2' in text
    assert "tickserver_depth 1.5" in text
    assert 'tickserver_lat_seconds_bucket{le="0.1"} 1' in text
    assert 'tickserver_lat_seconds_bucket{le="+Inf"} 2' in text
    assert "tickserver_lat_seconds_count 2" in text
    assert 'tickserver_backlog{sink="a\\"b"} 3' in text
    assert "# TYPE tickserver_events_total counter" in text
