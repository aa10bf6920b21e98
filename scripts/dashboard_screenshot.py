#!/usr/bin/env python3
"""Take the README's dashboard screenshot with the browser-test tooling.

Starts ``tickserver run`` (simulated market, 1-second bars, EMA/Bollinger indicators and two
signal rules on 1 s so the chart has overlays and markers within a minute) on a free port,
opens the dashboard in Debian's headless Chromium, waits until the chart holds ``--bars``
candles and a signal has fired, and writes a PNG.

Usage::

    python scripts/dashboard_screenshot.py                       # docs/images/dashboard.png
    python scripts/dashboard_screenshot.py --dark --out /tmp/dark.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.e2e.browser import launch  # noqa: E402
from tests.support.server import TickServer  # noqa: E402

CONFIG = """
[market]
intervals = ["1s", "1m", "5m", "1h", "1d"]

[engine]
bar_close_grace_ms = 100

[[indicators]]
name = "ema12"
kind = "ema"
period = 12
intervals = ["1s", "1m"]

[[indicators]]
name = "ema26"
kind = "ema"
period = 26
intervals = ["1s", "1m"]

[[indicators]]
name = "bb"
kind = "bbands"
period = 20
k = 2.0
intervals = ["1s", "1m"]

[[signals]]
name = "ema_cross"
kind = "crossover"
fast = "ema12"
slow = "ema26"
interval = "1s"

[[signals]]
name = "bb_breakout"
kind = "breakout"
band = "bb"
interval = "1s"

[store]
enabled = false

[sources.sim]
seed = 42
rate = 800
volatility = 1.5
"""


def main() -> int:
    """Start a server, wait for a lively chart, and save the screenshot."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    p.add_argument("--bars", type=int, default=70, help="candles to wait for (1 per second)")
    p.add_argument("--dark", action="store_true", help="dark theme")
    p.add_argument("--width", type=int, default=1440)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="tickserver-shot-") as tmp:
        srv = TickServer(Path(tmp), config=CONFIG)
        srv.start()
        try:
            with sync_playwright() as pw:
                browser = launch(pw)
                ctx = browser.new_context(
                    viewport={"width": args.width, "height": args.height},
                    color_scheme="dark" if args.dark else "light",
                )
                page = ctx.new_page()
                page.goto(f"{srv.url}/#symbol=NVDA&interval=1s")
                page.wait_for_selector("html[data-conn='live']", timeout=30_000)
                deadline = time.monotonic() + args.bars * 2 + 60
                while time.monotonic() < deadline:
                    snap = page.evaluate("window.tickserverDashboard.chart()")
                    n, marks = len(snap["candles"]), len(snap["markers"])
                    if sys.stderr.isatty() or n % 10 == 0:
                        end = "\r" if sys.stderr.isatty() else "\n"
                        print(f"candles {n}/{args.bars}, markers {marks}", end=end, file=sys.stderr)
                    if n >= args.bars and marks > 0:
                        break
                    time.sleep(1)
                print(file=sys.stderr)
                page.mouse.move(0, 0)  # no crosshair or hover in the picture
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            srv.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
