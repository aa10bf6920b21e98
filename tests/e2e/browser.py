"""Drive Debian's headless Chromium with Playwright: launch options and a recording page.

Nothing here downloads a browser: Playwright is pointed at ``/usr/bin/chromium`` (the
``chromium`` package that ``scripts/test`` installs), or at ``$CHROMIUM`` if set.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Request, WebSocket

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What Chromium logs as console errors while the server is down (expected during an outage).
NETWORK_ERROR = re.compile(
    r"ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|ERR_EMPTY_RESPONSE"
    r"|WebSocket connection to .* failed"
)


def chromium_path() -> str:
    """The Chromium binary: ``$CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise RuntimeError(
            f"Chromium not found at {path}: install Debian's 'chromium' package "
            "(scripts/test does) or set CHROMIUM=/path/to/chromium"
        )
    return path


def launch(pw: Playwright) -> Browser:
    """Launch headless Chromium (never a downloaded one)."""
    return pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


@dataclass
class Recorder:
    """Everything a page did that a test may want to check afterwards."""

    origin: str
    console: list[tuple[float, str, str]] = field(default_factory=list)  # (time, type, text)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)

    def on_console(self, msg: ConsoleMessage) -> None:
        self.console.append((time.monotonic(), msg.type, msg.text))

    def on_request(self, req: Request) -> None:
        self.requests.append(req.url)

    def on_websocket(self, ws: WebSocket) -> None:
        self.websockets.append(ws.url)

    def errors(self, since: float = 0.0, until: float = float("inf")) -> list[str]:
        """Console errors logged in ``[since, until)``."""
        return [text for t, kind, text in self.console if kind == "error" and since <= t < until]

    def foreign_requests(self) -> list[str]:
        """Requests (HTTP and WebSocket) to anywhere but the page's own origin."""
        own = urlsplit(self.origin)
        out = []
        for url in [*self.requests, *self.websockets]:
            u = urlsplit(url)
            if u.scheme == "data":
                continue  # inline, no network
            same = u.hostname == own.hostname and u.port == own.port
            if not same or u.scheme not in ("http", "ws"):
                out.append(url)
        return out


@contextmanager
def dashboard_page(
    browser: Browser,
    origin: str,
    *,
    name: str,
    width: int = 1440,
    height: int = 900,
    color_scheme: Any = "light",
    on_page: Callable[[Page], None] | None = None,
) -> Iterator[tuple[Page, Recorder]]:
    """A fresh browser context and page that records console, errors and requests.

    A screenshot ``artifacts/screenshots/<name>.png`` is saved when the block ends, whether
    it passed or failed, for a person to look at.
    """
    ctx = browser.new_context(
        viewport={"width": width, "height": height},
        color_scheme=color_scheme,
        reduced_motion="no-preference",
        service_workers="block",
    )
    page = ctx.new_page()
    rec = Recorder(origin)
    page.on("console", rec.on_console)
    page.on("pageerror", lambda exc: rec.page_errors.append(str(exc)))
    page.on("request", rec.on_request)
    page.on("websocket", rec.on_websocket)
    if on_page is not None:
        on_page(page)
    try:
        yield page, rec
    finally:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        finally:
            ctx.close()


def chart(page: Page) -> dict[str, Any]:
    """What the chart draws (series data as lightweight-charts holds it)."""
    snap: dict[str, Any] = page.evaluate("window.tickserverDashboard.chart()")
    return snap


def wait_for_chart(page: Page, predicate: str, timeout_s: float = 60) -> dict[str, Any]:
    """Wait until ``predicate`` (JS, over ``c`` = the chart snapshot) holds; return the snapshot."""
    # A function, not an expression: Playwright would eval() an expression in the page,
    # which the page's Content-Security-Policy rightly refuses.
    page.wait_for_function(
        f"() => {{ const c = window.tickserverDashboard?.chart(); return !!c && ({predicate}); }}",
        timeout=timeout_s * 1000,
        polling=200,
    )
    return chart(page)
