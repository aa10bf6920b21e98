"""The WebSocket fan-out path answers exactly what strawberry's own execution answers."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from graphql import parse

from tickserver.api.schema import Context
from tickserver.api.ws import GraphQLWebSocket, _pick_operation
from tickserver.app import APP_STATE, AppState, build_app
from tickserver.bus import Topic
from tickserver.config import load_config
from tickserver.events import Flag, trades_from_columns

S = 1_000_000_000
T0 = 1_795_600_000 * S


@pytest.fixture
def state() -> AppState:
    cfg = load_config(
        environ={},
        overrides={"store": {"enabled": False}, "market": {"intervals": ["1s", "1m"]}},
    )
    app = build_app(cfg, source_names=[])
    st = app[APP_STATE]
    for name in ("AAA", "BBB"):
        st.symbols.intern(name)
    return st


def _batch(n: int, start_seq: int, t0: int) -> Any:
    rng = np.random.default_rng(start_seq)
    return trades_from_columns(
        "test",
        rng.integers(0, 2, n),
        t0 + np.arange(n) * 50_000_000,
        100 + rng.normal(0, 0.1, n).cumsum(),
        rng.integers(1, 10, n) * 100.0,
        np.arange(start_seq, start_seq + n),
        flags=rng.choice([Flag.BUY, Flag.SELL, Flag.NONE], n),
    )


async def _reference(state: AppState, query: str, publish: list[tuple[str, Any]]) -> Any:
    schema = state.extras["schema"]
    agen = await schema.subscribe(query, context_value=Context(state, state.extras["market"]))
    task = asyncio.ensure_future(agen.__anext__())
    for _ in range(5):
        await asyncio.sleep(0)
    for topic, item in publish:
        state.bus.publish(topic, item)
    result = await asyncio.wait_for(task, 5)
    await agen.aclose()
    assert not result.errors, result.errors
    return result.data


def _fast(state: AppState, query: str, items: list[Any]) -> Any:
    ws = GraphQLWebSocket(state, state.extras["schema"], state.extras["market"])
    doc = parse(query)
    op = _pick_operation(doc, None)
    assert op is not None
    group = ws._fast_group(doc, op, {})
    assert group is not None, "the query should take the fast path"
    return {group.response_key: ws._row_builder(group)(items)}


@pytest.mark.parametrize(
    "query",
    [
        'subscription { ticks(symbols: ["AAA"]) { p: price symbol ts tsMs seq side __typename } }',
        "subscription { t: ticks { ...F size } } fragment F on Tick { seq price }",
    ],
)
async def test_fast_ticks_equal_strawberry_execution(state: AppState, query: str) -> None:
    # Arrange
    batch = _batch(40, 1, T0)
    state.engine.on_trades(batch)
    # Act
    want = await _reference(state, query, [(Topic.TRADES, batch)])
    got = _fast(state, query, [batch])
    # Assert
    assert got == want


async def test_fast_quotes_equal_strawberry_execution(state: AppState) -> None:
    batch = _batch(40, 1, T0)
    state.engine.on_trades(batch)
    query = "subscription { quotes { symbol last bid ask volume open changePct ts tsMs } }"
    want = await _reference(state, query, [(Topic.TRADES, batch)])
    assert _fast(state, query, [batch]) == want


async def test_fast_bars_equal_strawberry_execution(state: AppState) -> None:
    # Arrange: enough trades over enough seconds for bars to close
    state.engine.on_trades(_batch(400, 1, T0))
    published: list[tuple[str, Any]] = []
    state.bus.attach(Topic.BARS, lambda b: published.append((Topic.BARS, b)), name="t")
    state.engine.on_trades(_batch(400, 401, T0 + 20 * S))
    bars = [item for t, item in published if t == Topic.BARS]
    assert bars
    q_bars = (
        'subscription { bars(interval: "1s") '
        "{ symbol interval ts open high low close volume vwap trades final } }"
    )
    # Act / Assert
    assert _fast(state, q_bars, bars) == await _reference(
        state, q_bars, [(Topic.BARS, b) for b in bars]
    )
