"""``tickserver replay`` as a real subprocess: what GraphQL serves equals what the file implies,
and bad rows stop the replay (exit 1, ``file:line``) or are skipped and counted."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.server import TickServer

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
# No store: these tests are about what the engine serves, not about history.
CONFIG = "[store]\nenabled = false\n"

STATUS = "{ status { sources { name state reason details } } }"
TICKS = "query($s: String!) { ticks(symbol: $s, last: 100000) { ts price size seq } }"
BARS = """query($s: String!, $i: String!) {
  bars(symbol: $s, interval: $i, last: 100000) { ts open high low close volume trades final }
}"""


def wait_finished(srv: TickServer, timeout: float = 60.0) -> dict[str, Any]:
    """Poll ``status`` until the replay source reports it has replayed the whole file."""
    deadline = time.monotonic() + timeout
    details: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = srv.graphql(STATUS)
        (source,) = body["data"]["status"]["sources"]
        details = source["details"]
        if details.get("finished"):
            return details
        assert source["state"] != "down", source["reason"]
        time.sleep(0.05)
    raise TimeoutError(f"replay not finished: {details}\n{srv.logs()[-3000:]}")


def expected_bars(trades: pd.DataFrame, rule: str) -> pd.DataFrame:
    """OHLCV bars of ``rule`` (left-closed, labelled by open time) computed with pandas."""
    g = trades.set_index("ts").resample(rule)
    out = pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["size"].sum(),
            "trades": g["price"].count(),
        }
    )
    return out[out["trades"] > 0]


def served_bars(srv: TickServer, symbol: str, interval: str) -> pd.DataFrame:
    body = srv.graphql(BARS, {"s": symbol, "i": interval})
    assert "errors" not in body, body
    df = pd.DataFrame(body["data"]["bars"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df.set_index("ts")


def run_to_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``tickserver replay ... --exit`` to completion on a free port."""
    srv = TickServer(tmp_path / "exit", ["replay", *args, "--exit"], config=CONFIG)
    return subprocess.run(
        srv.command(),
        cwd=srv.workdir,
        env=srv.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def records(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def test_replayed_trades_serve_the_files_ticks_and_1m_bars(
    tickserver: Callable[..., TickServer],
) -> None:
    # Arrange
    path = EXAMPLES / "trades.csv"
    trades = pd.read_csv(path)
    trades["ts"] = pd.to_datetime(trades["ts"], utc=True)
    # Act
    srv = tickserver(["replay", str(path), "--speed", "max"], config=CONFIG)
    details = wait_finished(srv)
    # Assert
    assert details["rows"] == len(trades)
    assert details["trades"] == len(trades)
    assert details["quotes"] == int(trades["bid_px"].notna().sum())
    assert details["skipped"] == 0
    for symbol, mine in trades.groupby("symbol"):
        body = srv.graphql(TICKS, {"s": symbol})
        assert "errors" not in body, body
        ticks = pd.DataFrame(body["data"]["ticks"])
        assert pd.to_datetime(ticks["ts"], utc=True).tolist() == mine["ts"].tolist()
        assert ticks["price"].tolist() == mine["price"].tolist()
        assert ticks["size"].tolist() == mine["size"].astype(float).tolist()
        got = served_bars(srv, str(symbol), "1m")
        want = expected_bars(mine, "1min")
        assert got.index.tolist() == want.index.tolist()
        for col in ("open", "high", "low", "close", "volume", "trades"):
            assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-12), col


def test_replayed_yfinance_1m_bars_rebuild_exactly_at_1m_and_5m(
    tickserver: Callable[..., TickServer],
) -> None:
    # Arrange: the yfinance download() layout (Price/Ticker header), tz-aware exchange times
    path = EXAMPLES / "AAPL-1m.csv"
    bars = pd.read_csv(path, header=[0, 1], index_col=0, parse_dates=True)
    bars.columns = bars.columns.droplevel(1)
    bars.index = pd.to_datetime(bars.index, utc=True)
    # Act
    srv = tickserver(["replay", str(path)], config=CONFIG)
    wait_finished(srv)
    # Assert
    got_1m = served_bars(srv, "AAPL", "1m")
    assert got_1m.index.tolist() == bars.index.tolist()
    for col in ("open", "high", "low", "close", "volume"):
        assert got_1m[col].tolist() == pytest.approx(bars[col.title()].tolist(), rel=1e-12)
    want_5m = bars.resample("5min").agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    got_5m = served_bars(srv, "AAPL", "5m")
    assert got_5m.index.tolist() == want_5m.index.tolist()
    for col in ("open", "high", "low", "close", "volume"):
        assert got_5m[col].tolist() == pytest.approx(want_5m[col.title()].tolist(), rel=1e-12)


def test_run_with_source_replay_reads_the_config_section(
    tickserver: Callable[..., TickServer],
) -> None:
    path = EXAMPLES / "trades.csv"
    config = CONFIG + f'[sources.replay]\npath = "{path}"\nspeed = "max"\nsymbol = "NVDA"\n'
    srv = tickserver(["run", "--source", "replay"], config=config)
    details = wait_finished(srv)
    nvda = pd.read_csv(path).query("symbol == 'NVDA'")
    assert details["trades"] == len(nvda)
    ticks = srv.graphql(TICKS, {"s": "NVDA"})["data"]["ticks"]
    assert [t["price"] for t in ticks] == nvda["price"].tolist()


def test_bad_row_makes_replay_exit_1_naming_file_and_line(tmp_path: Path) -> None:
    # Arrange: line 4 has a negative price
    bad = tmp_path / "BAD.csv"
    bad.write_text(
        "ts,symbol,price,size\n"
        "2024-01-02T14:30:00Z,AAPL,185.0,10\n"
        "2024-01-02T14:30:01Z,AAPL,185.1,10\n"
        "2024-01-02T14:30:02Z,AAPL,-185.2,10\n"
        "2024-01-02T14:30:03Z,AAPL,185.3,10\n"
    )
    # Act
    proc = run_to_exit(tmp_path, str(bad))
    # Assert
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "BAD.csv:4: price -185.2 is not positive" in proc.stderr
    failed = [r for r in records(proc.stderr) if r.get("event") == "replay_failed"]
    assert failed
    assert failed[0]["where"].endswith("BAD.csv:4")
    summary = [r for r in records(proc.stderr) if r.get("event") == "replay_summary"]
    assert summary[-1]["trades"] == 2


def test_skip_bad_rows_exits_0_and_reports_the_count(tmp_path: Path) -> None:
    bad = tmp_path / "BAD.csv"
    bad.write_text(
        "ts,symbol,price,size\n"
        "2024-01-02T14:30:00Z,AAPL,185.0,10\n"
        "yesterday,AAPL,185.1,10\n"
        "2024-01-02T14:30:02Z,AAPL,-185.2,10\n"
        "2024-01-02T14:30:03Z,AAPL,185.3,10\n"
    )
    proc = run_to_exit(tmp_path, str(bad), "--skip-bad-rows")
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = records(proc.stderr)
    skipped = next(r for r in logs if r.get("event") == "replay_skipped")
    assert skipped["skipped"] == 2
    assert skipped["by_reason"] == {"bad_ts": 1, "bad_price": 1}
    assert "BAD.csv:3: ts 'yesterday'" in skipped["msg"]
    summary = next(r for r in logs if r.get("event") == "replay_summary")
    assert (summary["rows"], summary["trades"], summary["skipped"]) == (4, 2, 2)


def test_missing_file_fails_at_start_with_exit_2(tmp_path: Path) -> None:
    proc = run_to_exit(tmp_path, str(tmp_path / "nope.csv"))
    assert proc.returncode == 2
    assert "nope.csv: no such file" in proc.stderr
