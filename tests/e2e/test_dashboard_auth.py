"""The dashboard against a server that requires a bearer token: it asks for one, uses it on
HTTP and in the WebSocket ``connection_init``, and remembers it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect

from tests.e2e.browser import SCREENSHOTS, Recorder, dashboard_page
from tests.e2e.conftest import DASHBOARD_TOML
from tests.support.server import TickServer

pytestmark = [pytest.mark.browser, pytest.mark.integration]

Start = Callable[..., TickServer]
TOKEN = "dashboard-test-token-7f3a"
# Chromium logs every 401 answer as a console error; those are the expected ones here.
UNAUTHORIZED = re.compile(r"status of 401")


def start_with_token(tickserver: Start) -> TickServer:
    return tickserver(config=DASHBOARD_TOML, env={"TICKSERVER_API_TOKEN": TOKEN})


def record_auth(page: Page) -> dict[str, list[Any]]:
    """Authorization headers of /graphql requests and connection_init payloads sent."""
    seen: dict[str, list[Any]] = {"http": [], "ws": []}

    def on_ws(ws: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            msg = json.loads(payload)
            if msg.get("type") == "connection_init":
                seen["ws"].append(msg.get("payload"))

        ws.on("framesent", sent)

    page.on(
        "request",
        lambda r: (
            seen["http"].append(r.headers.get("authorization"))
            if r.url.endswith("/graphql")
            else None
        ),
    )
    page.on("websocket", on_ws)
    return seen


def assert_only_unauthorized_errors(rec: Recorder) -> None:
    assert rec.page_errors == []
    assert all(UNAUTHORIZED.search(e) for e in rec.errors()), rec.errors()
    assert rec.foreign_requests() == []


def test_dashboard_asks_for_the_token_and_uses_it(tickserver: Start, browser: Browser) -> None:
    # Arrange
    srv = start_with_token(tickserver)
    with dashboard_page(browser, srv.url, name="auth-prompt") as (page, rec):
        seen = record_auth(page)
        # Act: the page opens without a token
        page.goto(f"{srv.url}/")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        asked_state = page.get_attribute("html", "data-conn")
        page.screenshot(path=str(SCREENSHOTS / "auth-dialog.png"))
        # Act: a wrong token, then the right one
        page.fill("#token-dialog input[name=token]", "not-the-token")
        page.keyboard.press("Enter")
        expect(dialog.locator(".token-message")).to_contain_text("refused")
        page.fill("#token-dialog input[name=token]", TOKEN)
        page.click("#token-dialog button[type=submit]")
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#watchlist td.col-last')]"
            ".every((td) => /[0-9]/.test(td.textContent))"
        )
        stored = page.evaluate("localStorage.getItem('tickserver.token')")
        # Act: a reload uses the stored token without asking
        page.reload()
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        # Assert
        assert asked_state == "auth"
        expect(dialog).to_be_hidden()
        assert stored == TOKEN
        assert f"Bearer {TOKEN}" in seen["http"]
        assert "Bearer not-the-token" in seen["http"]
        assert {"token": TOKEN} in seen["ws"]
        assert all(p in ({"token": TOKEN}, {}, None) for p in seen["ws"])
        assert_only_unauthorized_errors(rec)


def test_token_in_the_url_fragment_is_used_and_removed_from_the_address(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = start_with_token(tickserver)
    with dashboard_page(browser, srv.url, name="auth-fragment") as (page, rec):
        seen = record_auth(page)
        # Act
        page.goto(f"{srv.url}/#token={TOKEN}&interval=1s")
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        page.wait_for_selector("#server-status .chip[data-state='ok']")
        # Assert
        expect(page.locator("#token-dialog")).to_be_hidden()
        assert TOKEN not in page.url
        assert page.url.endswith("#interval=1s")
        assert seen["ws"] == [{"token": TOKEN}]
        assert set(seen["http"]) == {f"Bearer {TOKEN}"}
        assert rec.errors() == []
        assert rec.page_errors == []
        assert rec.foreign_requests() == []


def test_a_refused_websocket_token_brings_the_prompt_back(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange: a page that got in, then the stored token stops matching (server restarted
    # with another token on the same port).
    srv = start_with_token(tickserver)
    with dashboard_page(browser, srv.url, name="auth-refused") as (page, rec):
        page.goto(f"{srv.url}/#token={TOKEN}")
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        # Act
        assert srv.stop() == 0
        tickserver(
            config=DASHBOARD_TOML, env={"TICKSERVER_API_TOKEN": "rotated-token"}, port=srv.port
        )
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible(timeout=60_000)
        page.fill("#token-dialog input[name=token]", "rotated-token")
        page.keyboard.press("Enter")
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        # Assert
        expect(dialog).to_be_hidden()
        assert page.evaluate("localStorage.getItem('tickserver.token')") == "rotated-token"
        assert rec.page_errors == []
        assert rec.foreign_requests() == []
