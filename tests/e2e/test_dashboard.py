"""The dashboard in a real browser (Debian's headless Chromium) against a real
``tickserver run`` subprocess with the simulated feed.

Every test ends by checking that the page logged no console error, threw nothing, and made
no request outside its own origin. Screenshots land in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import talib
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import (
    NETWORK_ERROR,
    SCREENSHOTS,
    Recorder,
    dashboard_page,
    wait_for_chart,
)
from tests.e2e.conftest import DASHBOARD_TOML
from tests.support.server import TickServer

pytestmark = [pytest.mark.browser, pytest.mark.integration]

Start = Callable[..., TickServer]

# Counts the pixel columns of the chart's main canvas that hold a vertical run (>= 3 px) of
# the up or down candle colour: candles are vertical; the last-price line is horizontal.
CANDLE_COLUMNS_JS = """() => {
  const css = getComputedStyle(document.documentElement);
  const rgb = (v) => {
    const h = v.trim().replace('#', '');
    return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  };
  const colours = [rgb(css.getPropertyValue('--up')), rgb(css.getPropertyValue('--down'))];
  const canvases = [...document.querySelectorAll('#chart canvas')];
  const main = canvases.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  const { width, height } = main;
  const px = main.getContext('2d').getImageData(0, 0, width, height).data;
  const near = (i, c) => [0, 1, 2].every((k) => Math.abs(px[i + k] - c[k]) < 8);
  let columns = 0;
  for (let x = 0; x < width; x++) {
    let run = 0, best = 0;
    for (let y = 0; y < height; y++) {
      const i = (y * width + x) * 4;
      run = colours.some((c) => near(i, c)) ? run + 1 : 0;
      best = Math.max(best, run);
    }
    if (best >= 3) columns++;
  }
  return columns;
}"""


def assert_clean(rec: Recorder) -> None:
    """No console errors, no uncaught exceptions, nothing fetched from another origin."""
    assert rec.page_errors == []
    assert rec.errors() == []
    assert rec.foreign_requests() == []


def open_live(page: Page, srv: TickServer, fragment: str = "") -> None:
    """Load the dashboard and wait until its WebSocket is live."""
    page.goto(f"{srv.url}/{fragment}")
    page.wait_for_selector("html[data-conn='live']", timeout=30_000)


def server_bars(srv: TickServer, symbol: str, interval: str = "1s") -> list[dict[str, Any]]:
    """Closed bars as the server reports them (times in seconds, as the chart keys them)."""
    body = srv.graphql(
        "query($s: String!, $i: String!) { bars(symbol: $s, interval: $i, last: 500, "
        "forming: false) { tsMs open high low close } }",
        {"s": symbol, "i": interval},
    )
    return [
        {"time": int(b["tsMs"] // 1000), **{k: b[k] for k in ("open", "high", "low", "close")}}
        for b in body["data"]["bars"]
    ]


def wait_for_server_bars_in_chart(page: Page, bars: list[dict[str, Any]]) -> dict[str, Any]:
    """Wait until every one of ``bars`` is drawn with the same OHLC; return the chart."""
    return wait_for_chart(
        page,
        f"""(() => {{
          const want = {json.dumps(bars)};
          const have = new Map(c.candles.map((b) => [b.time, b]));
          return want.every((w) => {{
            const h = have.get(w.time);
            return h && ['open', 'high', 'low', 'close'].every((k) => h[k] === w[k]);
          }});
        }})()""",
    )


def test_watchlist_lists_every_symbol_and_updates_live(tickserver: Start, browser: Browser) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="watchlist") as (page, rec):
        # Act
        open_live(page, srv)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#watchlist td.col-last')]"
            ".every((td) => /^[0-9,]+[.][0-9]{2}$/.test(td.textContent))"
        )
        first = page.eval_on_selector_all(
            "#watchlist td.col-last", "tds => tds.map((td) => td.textContent)"
        )
        updates = page.evaluate("window.tickserverDashboard.quoteUpdates()")
        page.wait_for_function(
            """([updates, first]) => window.tickserverDashboard.quoteUpdates() > updates + 40
              && JSON.stringify([...document.querySelectorAll('#watchlist td.col-last')]
                   .map((td) => td.textContent)) !== JSON.stringify(first)""",
            arg=[updates, first],
        )
        page.wait_for_selector("#watchlist td.col-last[data-flash]")
        # Assert
        symbols = page.eval_on_selector_all(
            "#watchlist tbody tr", "trs => trs.map((tr) => tr.dataset.symbol)"
        )
        assert symbols == ["AAPL", "MSFT", "NVDA", "SPY"]
        rows = page.eval_on_selector_all(
            "#watchlist tbody tr",
            """trs => trs.map((tr) => ({
                bid: tr.querySelector('.col-bid').textContent,
                ask: tr.querySelector('.col-ask').textContent,
                chg: tr.querySelector('.col-changePct').textContent,
                vol: tr.querySelector('.col-volume').textContent,
                align: getComputedStyle(tr.querySelector('.col-last')).textAlign,
            }))""",
        )
        for r in rows:
            bid, ask = (float(r[k].replace(",", "")) for k in ("bid", "ask"))
            assert bid < ask
            assert r["chg"].endswith("%")
            assert r["vol"][0].isdigit()
            assert r["align"] == "right"
        assert_clean(rec)


def test_page_loads_only_from_its_own_origin_under_its_csp(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="origin") as (page, rec):
        # Act
        response = page.goto(f"{srv.url}/")
        page.wait_for_selector("html[data-conn='live']")
        page.wait_for_selector("#server-status .chip[data-state='ok']")
        # Assert
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert any(u.endswith("/static/vendor/graphql-ws/client.js") for u in rec.requests)
        assert any(
            u.endswith("/lightweight-charts.standalone.production.mjs") for u in rec.requests
        )
        assert rec.websockets == [srv.ws_url]
        link = page.locator("#tv-attribution")
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", "https://www.tradingview.com/")
        expect(page.locator("footer")).to_contain_text("TradingView, Inc.")
        expect(page.locator("#server-status .sources")).to_contain_text("sim ok")
        expect(page.locator("#server-status .drops")).to_have_text("drops 0")
        assert_clean(rec)


def test_chart_draws_the_servers_bars_with_volume_and_overlays(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="chart") as (page, rec):
        open_live(page, srv)
        # Act
        page.click("#intervals button[value='1s']")
        snap = wait_for_chart(
            page, "c.interval === '1s' && c.candles.length >= 14 && c.emaFast > 0", 90
        )
        reported = server_bars(srv, "AAPL")
        snap = wait_for_server_bars_in_chart(page, reported)
        columns = page.evaluate(CANDLE_COLUMNS_JS)
        # Assert
        candles = snap["candles"]
        times = [c["time"] for c in candles]
        assert times == sorted(set(times))
        for c in candles:
            assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
        assert snap["symbol"] == "AAPL"
        assert snap["volume"] == len(candles)
        assert snap["emaFast"] == len(candles) - 11  # EMA 12 from the 12th bar on
        assert columns >= 20, f"only {columns} pixel columns of candle colour on the canvas"
        assert page.get_attribute("#intervals button[value='1s']", "aria-checked") == "true"
        assert_clean(rec)


def test_keyboard_and_clicks_switch_the_chart_and_book(tickserver: Start, browser: Browser) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="select") as (page, rec):
        open_live(page, srv, "#interval=1s")
        wait_for_chart(page, "c.symbol === 'AAPL' && c.candles.length >= 2")
        # Act: keyboard
        page.keyboard.press("w")
        focused_first = page.evaluate("document.activeElement.dataset.symbol")
        page.keyboard.press("ArrowDown")
        focus_visible = page.evaluate("document.activeElement.matches(':focus-visible')")
        page.keyboard.press("Enter")
        msft = wait_for_chart(page, "c.symbol === 'MSFT' && c.candles.length >= 2")
        msft_last = float(page.text_content("tr[data-symbol='MSFT'] .col-last").replace(",", ""))
        # Act: mouse
        page.click("#watchlist tr[data-symbol='NVDA']")
        nvda = wait_for_chart(page, "c.symbol === 'NVDA' && c.candles.length >= 2")
        nvda_last = float(page.text_content("tr[data-symbol='NVDA'] .col-last").replace(",", ""))
        page.wait_for_selector("#book tr.bid td.price:not(:empty)")
        book_bid = float(page.text_content("#book tr.bid td.price").replace(",", ""))
        # Act: next interval
        page.keyboard.press("]")
        next_interval = wait_for_chart(page, "c.interval === '1m'")
        # Assert
        assert focused_first == "AAPL"
        assert focus_visible is True
        assert all(abs(c["close"] / msft_last - 1) < 0.05 for c in msft["candles"])
        assert all(abs(c["close"] / nvda_last - 1) < 0.05 for c in nvda["candles"])
        assert page.text_content("#book-symbol") == "NVDA"
        assert abs(book_bid / nvda_last - 1) < 0.05
        assert page.get_attribute("tr[data-symbol='NVDA']", "aria-selected") == "true"
        assert next_interval["symbol"] == "NVDA"
        assert_clean(rec)


def test_a_signal_appears_in_the_feed_and_as_a_chart_marker(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="signals") as (page, rec):
        open_live(page, srv, "#interval=1s")
        # Act
        page.locator("#signals li.signal").first.wait_for(timeout=90_000)
        symbol = page.locator("#signals li.signal").first.get_attribute("data-symbol")
        item = page.locator(f"#signals li.signal[data-symbol='{symbol}']").first
        item.locator("button.sym").click()
        snap = wait_for_chart(page, f"c.symbol === '{symbol}' && c.markers.length > 0")
        # Assert
        assert item.get_attribute("data-rule") == "fast_cross"
        expect(item).to_contain_text("fast_cross · 1s")
        served = srv.graphql("{ signals(last: 500) { symbol rule } }")["data"]["signals"]
        assert {"symbol": symbol, "rule": "fast_cross"} in served
        assert all(m["shape"] in ("arrowUp", "arrowDown") for m in snap["markers"])
        candle_times = {c["time"] for c in snap["candles"]}
        assert all(m["time"] in candle_times for m in snap["markers"])
        assert_clean(rec)


def test_restart_shows_disconnected_then_recovers_without_duplicate_or_missing_bars(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="restart-recovered") as (page, rec):
        open_live(page, srv, "#interval=1s")
        before = wait_for_chart(page, "c.candles.length >= 4")
        # Act: stop the server
        stopped_at = time.monotonic()
        assert srv.stop() == 0
        page.wait_for_selector("html[data-conn='disconnected']", timeout=30_000)
        expect(page.locator("#conn .conn-text")).to_have_text("Disconnected")
        page.screenshot(path=str(SCREENSHOTS / "restart-disconnected.png"))
        # Act: start it again on the same port
        srv2 = tickserver(config=DASHBOARD_TOML, port=srv.port)
        page.wait_for_selector("html[data-conn='live']", timeout=60_000)
        recovered_at = time.monotonic()
        last_before = max(c["time"] for c in before["candles"])
        wait_for_chart(page, f"c.candles.some((b) => b.time > {last_before} + 2)")
        after = wait_for_server_bars_in_chart(page, server_bars(srv2, "AAPL"))
        # Assert
        expect(page.locator("#conn .conn-text")).to_have_text("Live")
        times = [c["time"] for c in after["candles"]]
        assert times == sorted(set(times)), "duplicated or unordered bars after the restart"
        closed_before = {c["time"] for c in before["candles"][:-1]}
        assert closed_before <= set(times), "bars from before the restart were lost"
        assert rec.page_errors == []
        assert rec.errors(until=stopped_at) == []
        outage = rec.errors(since=stopped_at, until=recovered_at)
        assert all(NETWORK_ERROR.search(e) for e in outage), outage
        assert rec.errors(since=recovered_at + 1.0) == []
        assert rec.foreign_requests() == []


def test_overlay_indicators_equal_talib(tickserver: Start, browser: Browser) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    rng = np.random.default_rng(3)
    closes = 100 + np.cumsum(rng.normal(0, 0.5, 300))
    with dashboard_page(browser, srv.url, name="indicators") as (page, rec):
        open_live(page, srv)
        # Act
        got = page.evaluate(
            """async (xs) => {
              const m = await import('/static/js/indicators.js');
              const bb = m.bollinger(xs, 20, 2);
              const [ema12, ema26] = [m.ema(xs, 12), m.ema(xs, 26)];
              return { ema12, ema26, upper: bb.upper, lower: bb.lower };
            }""",
            closes.tolist(),
        )
        # Assert
        upper, _middle, lower = talib.BBANDS(closes, 20, 2.0, 2.0, 0)
        for name, want in (
            ("ema12", talib.EMA(closes, 12)),
            ("ema26", talib.EMA(closes, 26)),
            ("upper", upper),
            ("lower", lower),
        ):
            np.testing.assert_allclose(np.array(got[name], dtype=float), want, rtol=1e-9)
        assert_clean(rec)


LAYOUTS = [(390, 844, "light"), (390, 844, "dark"), (1440, 900, "dark"), (1280, 800, "light")]

GEOMETRY_JS = """() => {
  const box = (s) => document.querySelector(s).getBoundingClientRect().toJSON();
  const bg = getComputedStyle(document.body).backgroundColor.match(/\\d+/g).map(Number);
  const canvases = [...document.querySelectorAll('#chart canvas')];
  const main = canvases.reduce((a, b) => (a.width * a.height >= b.width * b.height ? a : b));
  const corner = [...main.getContext('2d').getImageData(2, 2, 1, 1).data].slice(0, 3);
  const scroller = document.querySelector('.watch .scroll');
  return {
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    watchOverflow: scroller.scrollWidth - scroller.clientWidth,
    watch: box('.watch'), chart: box('#chart'), book: box('.book-panel'), bg, corner,
  };
}"""


def test_layout_fits_narrow_and_wide_screens_in_both_themes(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    for width, height, scheme in LAYOUTS:
        case = f"layout-{width}-{scheme}"
        with dashboard_page(
            browser, srv.url, name=case, width=width, height=height, color_scheme=scheme
        ) as (page, rec):
            # Act
            open_live(page, srv, "#interval=1s")
            wait_for_chart(page, "c.candles.length >= 2")
            page.wait_for_selector("#book tr.bid td.price:not(:empty)")
            geo = page.evaluate(GEOMETRY_JS)
            # Assert
            assert geo["overflow"] <= 0, f"{case}: the page scrolls sideways"
            assert geo["watchOverflow"] <= 0, f"{case}: the watchlist scrolls sideways"
            assert geo["chart"]["width"] >= min(300, width - 60), case
            assert geo["chart"]["height"] >= 200, case
            page_luminance = sum(geo["bg"]) / 3
            chart_luminance = sum(geo["corner"]) / 3
            if scheme == "dark":
                assert page_luminance < 60, case
                assert chart_luminance < 60, case
            else:
                assert page_luminance > 200, case
                assert chart_luminance > 200, case
            if width < 700:  # one column: watchlist, then chart, then book
                assert geo["watch"]["x"] == geo["book"]["x"], case
                assert geo["watch"]["y"] < geo["chart"]["y"] < geo["book"]["y"], case
            else:  # the watchlist beside the chart
                assert geo["watch"]["x"] < geo["chart"]["x"], case
                assert abs(geo["watch"]["y"] - geo["chart"]["y"]) < 100, case
            assert_clean(rec)


def test_theme_follows_a_change_of_the_system_setting_without_reload(
    tickserver: Start, browser: Browser
) -> None:
    # Arrange
    srv = tickserver(config=DASHBOARD_TOML)
    with dashboard_page(browser, srv.url, name="theme-switch", color_scheme="light") as (
        page,
        rec,
    ):
        open_live(page, srv, "#interval=1s")
        wait_for_chart(page, "c.candles.length >= 2")
        before = page.evaluate(GEOMETRY_JS)
        # Act
        page.emulate_media(color_scheme="dark")
        page.wait_for_function(
            """() => {
              const canvases = [...document.querySelectorAll('#chart canvas')];
              const area = (c) => c.width * c.height;
              const main = canvases.reduce((a, b) => (area(a) >= area(b) ? a : b));
              const [r, g, b] = main.getContext('2d').getImageData(2, 2, 1, 1).data;
              return (r + g + b) / 3 < 60;
            }"""
        )
        after = page.evaluate(GEOMETRY_JS)
        # Assert
        assert sum(before["corner"]) / 3 > 200
        assert sum(after["bg"]) / 3 < 60
        assert_clean(rec)
