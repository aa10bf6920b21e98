"""``tickserver bench dashboard``: the dashboard's rendering cost in headless Chromium.

A ``tickserver run`` subprocess simulates ``--symbols`` symbols; the dashboard (all symbols in
the watchlist, one on a 1 s chart, its book, the signals feed) runs in Debian's headless
Chromium, driven by Playwright. Over ``--seconds``, per rendering mode:

- main-thread busy %: Chromium's ``TaskDuration`` (Performance domain) over wall time;
- frames/s and the 99th-percentile frame interval, from a ``requestAnimationFrame`` probe;
- long frames: intervals over 50 ms (visible stutter);
- quote updates/s the page received (what the feed asks it to show).

Modes: ``per-frame`` (the dashboard: each view draws at most once per animation frame) and
``immediate`` (``#render=immediate``: each message is drawn as it arrives, the naive way).
Needs Playwright (``[bench]`` or ``[test]`` extra) and Chromium (``apt-get install chromium``
or ``$CHROMIUM``); no browser is downloaded.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tickserver.benchmarks.harness import Report

NAME = "dashboard"
HELP = "dashboard rendering cost in headless Chromium: per-frame batching vs drawing each message"

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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of this benchmark."""
    p.add_argument("--symbols", type=int, default=50, help="symbols in the watchlist")
    p.add_argument(
        "--rate", type=float, default=4000, help="simulated events/s (trades + book changes)"
    )
    p.add_argument(
        "--batch-ms",
        type=int,
        default=5,
        help="the feed publishes a batch this often: the page gets ~1000/N messages/s",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window per mode")
    p.add_argument("--quick", action="store_true", help="short run (smoke test)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(
    port: int, workdir: Path, symbols: list[str], rate: float, batch_ms: int
) -> subprocess.Popen[bytes]:
    names = ", ".join(f'"{s}"' for s in symbols)
    cfg = f"""
[market]
symbols = [{names}]
intervals = ["1s", "1m", "1d"]
[store]
enabled = false
[sources.sim]
rate = {rate}
batch_ms = {batch_ms}
"""
    path = workdir / "dashboard-bench.toml"
    path.write_text(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKSERVER_")}
    cmd = [sys.executable, "-m", "tickserver", "run", "--config", str(path), "--port", str(port)]
    cmd += ["--log-format", "json", "--log-level", "WARNING"]
    log = (workdir / "dashboard-bench.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tickserver exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("tickserver did not become ready")


def _chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        raise SystemExit("Chromium not found: apt-get install chromium, or set CHROMIUM=/path")
    return path


FRAME_PROBE = """() => {
  window.__benchFrames = [];
  const tick = (t) => { window.__benchFrames.push(t); requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def _measure(browser: Any, url: str, seconds: float, immediate: bool) -> dict[str, float]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = ctx.new_page()
        frag = "#interval=1s" + ("&render=immediate" if immediate else "")
        page.goto(url + "/" + frag)
        page.wait_for_selector("html[data-conn='live']", timeout=30_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#watchlist td.col-last')]"
            ".every((td) => /[0-9]/.test(td.textContent))",
            timeout=30_000,
        )
        time.sleep(2.0)  # warm-up: history loaded, JIT settled
        cdp = ctx.new_cdp_session(page)
        cdp.send("Performance.enable", {"timeDomain": "timeTicks"})

        def task_seconds() -> float:
            metrics = cdp.send("Performance.getMetrics")["metrics"]
            return float(next(m["value"] for m in metrics if m["name"] == "TaskDuration"))

        page.evaluate(FRAME_PROBE)
        busy0, q0 = task_seconds(), page.evaluate("tickserverDashboard.quoteUpdates()")
        t0 = time.perf_counter()
        time.sleep(seconds)
        busy1, q1 = task_seconds(), page.evaluate("tickserverDashboard.quoteUpdates()")
        wall = time.perf_counter() - t0
        stamps: list[float] = page.evaluate("window.__benchFrames")
    finally:
        ctx.close()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    span_s = (stamps[-1] - stamps[0]) / 1000 if len(stamps) > 1 else wall
    return {
        "busy_pct": 100.0 * (busy1 - busy0) / wall,
        "fps": (len(stamps) - 1) / span_s if span_s > 0 else 0.0,
        "p99_frame_ms": statistics.quantiles(gaps, n=100)[98] if len(gaps) >= 2 else 0.0,
        "long_frames": float(sum(1 for g in gaps if g > 50)),
        "quote_updates_per_s": (q1 - q0) / wall,
    }


def run(args: argparse.Namespace) -> Report:
    """Run the benchmark and return its report."""
    from playwright.sync_api import sync_playwright

    if args.quick:
        args.seconds = 2.0
    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]
    report = Report(bench=NAME, unit="see case", baseline="per-frame")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tickserver-bench-") as tmp:
        proc = _server(port, Path(tmp), symbols, args.rate, args.batch_ms)
        try:
            _wait_ready(port, proc)
            url = f"http://127.0.0.1:{port}"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
                try:
                    for mode, immediate in (("per-frame", False), ("immediate", True)):
                        print(f"measuring {mode} for {args.seconds:g} s…", file=sys.stderr)
                        m = _measure(browser, url, args.seconds, immediate)
                        report.add(mode, "main-thread busy %", m["busy_pct"])
                        report.add(mode, "p99 frame interval ms", m["p99_frame_ms"])
                        report.extra[f"{mode}: frames/s"] = round(m["fps"], 1)
                        report.extra[f"{mode}: long frames (>50 ms)"] = int(m["long_frames"])
                        report.extra[f"{mode}: quote updates/s"] = round(m["quote_updates_per_s"])
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    report.notes.append(
        f"{args.symbols} symbols, simulated feed at {args.rate:,.0f} events/s, 1 s chart of "
        "one symbol with its book and the signals feed; headless Chromium, 1440x900"
    )
    return report
