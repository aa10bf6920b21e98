"""``tickserver bench core --quick --json`` runs and prints the documented JSON shape."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.bench
def test_bench_core_quick_prints_results_json_as_last_line() -> None:
    # Arrange
    cmd = [sys.executable, "-m", "tickserver", "bench", "core", "--quick", "--json"]
    # Act
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    # Assert
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["bench"] == "core"
    assert report["unit"] == "ns"
    results = report["results"]
    for system in ("tickserver-batch", "tickserver-single", "talib-stream", "talipp", "nautilus"):
        assert f"{system}/all-in" in results
    for case in ("sma", "ema", "rsi", "macd", "bbands", "atr", "stddev", "zscore", "vwap"):
        assert f"tickserver-batch/{case}" in results
        assert f"tickserver-single/{case}" in results
    assert all(isinstance(v, float) and v > 0 for v in results.values())
    assert report["extra"]["ring_bytes_per_tick"] <= 40
