"""Fixtures for the dashboard's browser tests: one headless Chromium per session, and the
TOML a tickserver subprocess runs with so candles and signals appear within seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.browser import launch

# A fast simulated market, 1-second bars, and a crossover of two short EMAs on 1 s bars so a
# signal fires a few seconds after start. No sinks: these tests are about the page.
DASHBOARD_TOML = """
[market]
symbols = ["AAPL", "MSFT", "NVDA", "SPY"]
intervals = ["1s", "1m", "1d"]

[engine]
advance_interval_ms = 50
bar_close_grace_ms = 50
forming_update_ms = 100

[[indicators]]
name = "ema2"
kind = "ema"
period = 2
intervals = ["1s"]

[[indicators]]
name = "ema4"
kind = "ema"
period = 4
intervals = ["1s"]

[[signals]]
name = "fast_cross"
kind = "crossover"
fast = "ema2"
slow = "ema4"
interval = "1s"

[store]
enabled = false

[sources.sim]
seed = 11
rate = 1000
batch_ms = 20
volatility = 2.0
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, shared by a module's tests (each gets its own context).

    Module-scoped, not session-scoped: Playwright's sync API runs an event loop on the main
    thread while it is alive, which would stop pytest-asyncio's tests in later modules.
    """
    with sync_playwright() as pw:
        b = launch(pw)
        try:
            yield b
        finally:
            b.close()
