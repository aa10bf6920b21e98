"""The README's example bot, run as written against a real server, prints trade ideas."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.server import TickServer

pytestmark = pytest.mark.integration

BOT = Path(__file__).resolve().parents[2] / "examples" / "bot.py"

# Signals on every trade so the bot has something to act on within a second.
FAST_SIGNALS = """
[store]
enabled = false
[sources.sim]
rate = 2000
batch_ms = 20
[[signals]]
name = "tick_cross"
kind = "crossover"
interval = "tick"
fast = "ema12"
slow = "ema26"
"""


def test_example_bot_prints_an_order_idea_per_signal(tickserver: Callable[..., TickServer]) -> None:
    # Arrange
    srv = tickserver(config=FAST_SIGNALS)
    # Act
    proc = subprocess.run(
        [
            sys.executable,
            str(BOT),
            "--url",
            srv.ws_url,
            "--symbols",
            "AAPL,MSFT",
            "--max-signals",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "tick_cross" in line
        assert (" BUY " in line) or (" SELL " in line)
        assert ("AAPL" in line) or ("MSFT" in line)
