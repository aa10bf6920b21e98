"""WebSocket auth failures reach the client as the protocol's close codes (4401, 4403).

Clients (the dashboard, graphql-ws) decide on these codes whether to ask for a token or to
retry; a plain 1000 "normal closure" makes them reconnect forever with the same bad token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import websockets

from tests.support.server import TickServer

pytestmark = pytest.mark.integration

TOKEN = "close-code-test-token"
CONFIG = """
[market]
symbols = ["AAPL"]
intervals = ["1s", "1m", "1d"]

[store]
enabled = false
"""


async def _close_code(url: str, payload: dict[str, str]) -> int | None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        return None


@pytest.mark.parametrize(("payload", "code"), [({}, 4401), ({"token": "wrong"}, 4403)])
async def test_bad_connection_init_token_closes_with_protocol_code(
    tickserver: Callable[..., TickServer], payload: dict[str, str], code: int
) -> None:
    # Arrange
    srv = tickserver(config=CONFIG, env={"TICKSERVER_API_TOKEN": TOKEN})
    # Act
    got = await _close_code(srv.ws_url, payload)
    # Assert
    assert got == code
