"""The source plug-in interface: entry points, config sections, sequence numbers, health,
several sources at once for different symbols."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.plugins import EXAMPLE_SRC, write_example_dist_info
from tickserver.app import check_symbol_overlap
from tickserver.bus import Bus, Topic
from tickserver.cli import parse_symbols_args
from tickserver.config import ConfigError, load_config
from tickserver.events import TradeBatch, trades_from_columns
from tickserver.metrics import Metrics
from tickserver.sources import registry
from tickserver.sources.base import Source, SourceContext
from tickserver.symbols import Symbols


def make_ctx(symbols: tuple[str, ...] | None = None, **cfg: Any) -> SourceContext:
    config = load_config(environ={}, overrides=cfg or None)
    return SourceContext(
        config=config,
        bus=Bus(),
        symbols=Symbols(),
        metrics=Metrics(),
        symbols_override=symbols,
    )


@pytest.fixture
def example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = write_example_dist_info(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    registry.refresh()
    yield
    registry.refresh()


def test_example_plugin_is_found_through_its_entry_point(example_plugin: None) -> None:
    # Act
    plugin = registry.get("example")
    # Assert
    assert "example" in registry.available()
    assert plugin.name == "example"
    assert plugin.config_model.__name__ == "ExampleConfig"


def test_unknown_source_names_the_available_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown source 'nope'; available: .*yfinance"):
        registry.get("nope")


def test_plugin_config_section_is_validated_by_its_own_model(
    example_plugin: None, tmp_path: Path
) -> None:
    # Arrange
    path = tmp_path / "c.toml"
    path.write_text('[sources]\nenabled = ["example"]\n[sources.example]\nprice = -1\n')
    # Act / Assert
    with pytest.raises(ConfigError, match=r"sources\.example\.price: Input should be greater"):
        load_config(path, environ={})


async def test_example_source_publishes_validated_numbered_trades(example_plugin: None) -> None:
    # Arrange
    ctx = make_ctx(("DEMO", "TEST"))
    plugin = registry.get("example")
    src = plugin.factory(ctx, plugin.config_model.model_validate({"interval_s": 0.01}))
    got: list[TradeBatch] = []
    enough = asyncio.Event()

    def collect(b: TradeBatch) -> None:
        got.append(b)
        if sum(len(x) for x in got) >= 6:
            enough.set()

    ctx.bus.attach(Topic.RAW_TRADES, collect, name="test")
    # Act
    async with src:
        await asyncio.wait_for(enough.wait(), 10)
    # Assert: both symbols, sequence 1..n without gaps
    seq = np.concatenate([b.seq for b in got])
    assert seq.tolist() == list(range(1, len(seq) + 1))
    assert {ctx.symbols.name(int(s)) for b in got for s in b.symbol_id} == {"DEMO", "TEST"}
    assert src.health().details["connected"] is True


class Probe(Source):
    """A source driven by the test."""


def test_sequence_stays_gap_free_when_validation_drops_rows() -> None:
    # Arrange: the source reserves numbers like the sim does, one row is invalid
    ctx = make_ctx()
    src = Probe("probe", ctx)
    sid = ctx.symbols.intern("AAPL")
    got: list[TradeBatch] = []
    ctx.bus.attach(Topic.RAW_TRADES, got.append, name="test")
    # Act
    for prices in ([10.0, -1.0, 10.1], [10.2, 10.3]):
        n = len(prices)
        ts = np.arange(n) + (1 if not got else 100)
        src.publish_trades(
            trades_from_columns("probe", np.full(n, sid), ts, prices, np.ones(n), src.next_seq(n))
        )
    # Assert
    assert np.concatenate([b.seq for b in got]).tolist() == [1, 2, 3, 4]
    assert src.last_seq == 4
    assert src.validator.counts[("trade", "bad_price", "reject")] == 1


def test_health_reports_connection_lag_errors_backoff_and_budget() -> None:
    # Arrange
    ctx = make_ctx()
    src = Probe("probe", ctx)
    src.budget_remaining = lambda: {"day": 7}  # type: ignore[method-assign]
    sid = ctx.symbols.intern("AAPL")
    src.set_connected(True)
    src.publish_trades(
        trades_from_columns("probe", [sid], [1_000], [10.0], [1.0], [0], ts_init=2_000_001_000)
    )
    src.record_error("rate_limited", "slow down")
    src.set_backoff(30.0, "rate limited", attempt=2)
    # Act
    d = src.health().details
    text = ctx.metrics.render()
    # Assert
    assert d["connected"] is True
    assert d["lag_s"] == 2.0
    assert d["errors"] == {"rate_limited": 1}
    assert d["backoff"]["active"]
    assert d["backoff"]["reason"] == "rate limited"
    assert d["budget_remaining"] == {"day": 7}
    assert 'tickserver_source_errors_total{source="probe",kind="rate_limited"} 1' in text
    assert 'tickserver_source_connected{source="probe"} 1' in text
    assert 'tickserver_source_budget_remaining{source="probe",window="day"} 7' in text
    assert 'tickserver_source_lag_seconds{source="probe"} 2' in text


def test_two_sources_on_one_symbol_are_refused() -> None:
    ctx = make_ctx()
    a, b = Probe("a", ctx), Probe("b", ctx)
    a.symbols, b.symbols = ["AAPL", "MSFT"], ["IBM", "MSFT"]
    with pytest.raises(ValueError, match="symbol MSFT is served by both 'a' and 'b'"):
        check_symbol_overlap([a, b])


def test_sources_with_different_symbols_run_side_by_side() -> None:
    ctx = make_ctx()
    a, b = Probe("a", ctx), Probe("b", ctx)
    a.symbols, b.symbols = ["AAPL"], ["IBM"]
    check_symbol_overlap([a, b])


def test_symbols_flag_gives_each_source_its_own_symbols() -> None:
    assert parse_symbols_args(["aapl, msft"]) == (["AAPL", "MSFT"], {})
    assert parse_symbols_args(["yfinance=AAPL,MSFT", "alphavantage=IBM"]) == (
        None,
        {"yfinance": ["AAPL", "MSFT"], "alphavantage": ["IBM"]},
    )
    with pytest.raises(ValueError, match="no symbols"):
        parse_symbols_args(["yfinance="])
    with pytest.raises(ValueError, match="given twice"):
        parse_symbols_args(["a=X", "a=Y"])


def test_build_sources_applies_per_source_symbols(example_plugin: None) -> None:
    from tickserver.app import build_sources

    ctx = make_ctx()
    cfg = ctx.config
    srcs = build_sources(cfg, ctx, ["sim", "example"], {"example": ["DEMO"], "sim": ["AAPL"]})
    assert {s.name: s.symbols for s in srcs} == {"sim": ["AAPL"], "example": ["DEMO"]}
