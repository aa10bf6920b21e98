"""The WebSocket fan-out fast path: subscriptions that pass their arguments as variables."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse

from tickserver.api.market import ApiError
from tickserver.api.schema import build_schema
from tickserver.api.ws import GraphQLWebSocket
from tickserver.config import Config
from tickserver.metrics import Metrics


class _Market:
    """Just the validation the fast path asks of the market view."""

    def symbol_ids(self, symbols: list[str]) -> list[int]:
        known = {"AAPL": 0, "MSFT": 1}
        for s in symbols:
            if s not in known:
                raise ApiError(f"unknown symbol {s!r}", "UNKNOWN_SYMBOL")
        return [known[s] for s in symbols]

    def interval_ns(self, interval: str, *, allow_tick: bool) -> int:
        if interval != "1s":
            raise ApiError(f"unknown interval {interval!r}", "UNKNOWN_INTERVAL")
        return 1_000_000_000


def _endpoint() -> GraphQLWebSocket:
    state: Any = SimpleNamespace(config=Config(), metrics=Metrics())
    return GraphQLWebSocket(state, build_schema(), _Market())  # type: ignore[arg-type]


BARS = """subscription Bars($interval: String!, $symbols: [String!]) {
  bars(interval: $interval, symbols: $symbols, forming: true) { symbol tsMs close final }
}"""


def _group(ws: GraphQLWebSocket, query: str, variables: dict[str, Any]) -> Any:
    doc = parse(query)
    op = doc.definitions[0]
    assert isinstance(op, OperationDefinitionNode)
    return ws._fast_group(doc, op, variables)


def test_fast_path_reads_arguments_given_as_variables() -> None:
    # Arrange
    ws = _endpoint()
    # Act
    group = _group(ws, BARS, {"interval": "1s", "symbols": ["AAPL"]})
    # Assert
    assert group is not None
    assert group.symbols == ("AAPL",)
    assert group.extra == {"interval": "1s", "forming": True}


def test_fast_path_groups_equal_operations_whether_inline_or_by_variable() -> None:
    # Arrange
    ws = _endpoint()
    inline = BARS.replace("$interval", '"1s"').replace("$symbols", '["AAPL"]')
    inline = inline.replace('Bars("1s": String!, ["AAPL"]: [String!])', "Bars")
    # Act
    by_variable = _group(ws, BARS, {"interval": "1s", "symbols": ["AAPL"]})
    by_literal = _group(ws, inline, {})
    # Assert
    assert by_variable is by_literal


def test_fast_path_reports_a_badly_typed_variable_as_an_api_error() -> None:
    # Arrange
    ws = _endpoint()
    # Act / Assert
    with pytest.raises(ApiError) as err:
        _group(ws, BARS, {"interval": 5, "symbols": ["AAPL"]})
    assert err.value.code == "BAD_USER_INPUT"
    assert "interval" in str(err.value)


def test_fast_path_checks_symbols_given_as_variables() -> None:
    # Arrange
    ws = _endpoint()
    # Act / Assert
    with pytest.raises(ApiError) as err:
        _group(ws, BARS, {"interval": "1s", "symbols": ["NOPE"]})
    assert err.value.code == "UNKNOWN_SYMBOL"
