"""Regenerate the sample files in this folder (deterministic; no network needed).

- ``trades.csv``: trades of AAPL, MSFT and NVDA over ten minutes, with the touch (bid/ask)
  on most rows.
- ``AAPL-1m.csv``: two hours of 1-minute AAPL bars laid out exactly as
  ``yf.download("AAPL", interval="1m").to_csv(...)`` writes them (the two-row
  ``Price``/``Ticker`` header), produced by running yfinance's own ``download()`` with its
  per-ticker history fetch replaced by synthetic bars.

Run: ``python examples/data/make_samples.py``
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def trades(rng: np.random.Generator) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-02 14:30:00", tz="UTC")
    frames = []
    for symbol, px0 in (("AAPL", 185.0), ("MSFT", 370.0), ("NVDA", 480.0)):
        n = 120
        offsets = np.sort(rng.uniform(0, 600, n))  # ten minutes
        px = np.round(px0 * np.exp(np.cumsum(rng.normal(0, 0.0004, n))), 2)
        half = np.round(rng.integers(1, 4, n) * 0.01, 2)
        df = pd.DataFrame(
            {
                "ts": start + pd.to_timedelta(offsets, unit="s"),
                "symbol": symbol,
                "price": px,
                "size": rng.integers(1, 50, n) * 10,
                "bid_px": np.round(px - half, 2),
                "bid_sz": rng.integers(1, 20, n) * 100,
                "ask_px": np.round(px + half, 2),
                "ask_sz": rng.integers(1, 20, n) * 100,
            }
        )
        # The touch is optional: leave it out on some rows.
        no_quote = rng.random(n) < 0.2
        df.loc[no_quote, ["bid_px", "bid_sz", "ask_px", "ask_sz"]] = np.nan
        frames.append(df)
    out = pd.concat(frames).sort_values("ts", kind="stable")
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for c in ("bid_sz", "ask_sz"):
        out[c] = out[c].astype("Int64")
    return out


def bars_1m(rng: np.random.Generator) -> pd.DataFrame:
    idx = pd.date_range(
        "2024-01-02 09:30", periods=120, freq="1min", tz="America/New_York", name="Datetime"
    )
    close = np.round(185.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, len(idx)))), 4)
    open_ = np.round(np.concatenate([[185.0], close[:-1]]), 4)
    wig = np.abs(rng.normal(0, 0.08, (2, len(idx))))
    high = np.round(np.maximum(open_, close) + wig[0], 4)
    low = np.round(np.minimum(open_, close) - wig[1], 4)
    vol = rng.integers(20_000, 400_000, len(idx))
    return pd.DataFrame(
        {"Open": open_, "High": high, "Low": low, "Close": close, "Volume": vol}, index=idx
    )


def yfinance_download_csv(bars: pd.DataFrame, path: Path) -> None:
    import yfinance as yf
    import yfinance.multi as multi

    class _Ticker:
        def __init__(self, ticker: str, *args: object, **kwargs: object) -> None:
            self.ticker = ticker
            self._price_history = None

        def history(self, *args: object, **kwargs: object) -> pd.DataFrame:
            return bars.copy()

    real = multi.Ticker
    multi.Ticker = _Ticker  # type: ignore[misc,assignment]
    try:
        df = yf.download("AAPL", interval="1m", progress=False, threads=False)
    finally:
        multi.Ticker = real  # type: ignore[misc]
    df.to_csv(path)


def main() -> None:
    rng = np.random.default_rng(20240102)
    trades(rng).to_csv(HERE / "trades.csv", index=False)
    yfinance_download_csv(bars_1m(rng), HERE / "AAPL-1m.csv")


if __name__ == "__main__":
    main()
