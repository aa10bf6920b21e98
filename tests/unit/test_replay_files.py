"""Replay files: formats, timestamps, validation with exact file:line, chunking, OHLCV bars."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickserver.events import Flag
from tickserver.sources.replay_files import (
    Chunk,
    ReplayFileError,
    ReplayReader,
    parse_interval,
    parse_ts_text,
)

T0 = 1_704_205_800_000_000_000  # 2024-01-02T14:30:00Z
S = 1_000_000_000
HEADER = "ts,symbol,price,size\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def read_all(path: Path, **kw: Any) -> list[Chunk]:
    with ReplayReader(path, **kw) as r:
        return list(r)


def events(chunks: list[Chunk]) -> dict[str, np.ndarray]:
    """Concatenate the chunks' trade columns, with symbol names resolved."""
    names = [c.symbols[i] for c in chunks for i in c.sym]
    return {
        "symbol": np.asarray(names, dtype=object),
        "ts": np.concatenate([c.ts for c in chunks]) if chunks else np.zeros(0, np.int64),
        "price": np.concatenate([c.price for c in chunks]) if chunks else np.zeros(0),
        "size": np.concatenate([c.size for c in chunks]) if chunks else np.zeros(0),
    }


# ----------------------------------------------------------------------------- formats


def test_csv_trades_parse_to_typed_columns_with_exact_ns_timestamps(tmp_path: Path) -> None:
    # Arrange: offsets, Z, nanosecond fractions and epoch nanoseconds in one file
    path = write(
        tmp_path,
        "t.csv",
        HEADER + "2024-01-02T09:30:00-05:00,AAPL,185.5,100\n"
        "2024-01-02T14:30:00.123456789Z,MSFT,370,5\n"
        "2024-01-02 20:00:01.5+05:30,AAPL,185.25,0\n"
        f"{T0 + 2 * S},NVDA,480.1,7\n",
    )
    # Act
    chunks = read_all(path)
    ev = events(chunks)
    # Assert
    assert ev["ts"].dtype == np.int64
    assert ev["price"].dtype == np.float64
    assert chunks[0].sym.dtype == np.int32
    assert ev["ts"].tolist() == [T0, T0 + 123_456_789, T0 + 1_500_000_000, T0 + 2 * S]
    assert ev["symbol"].tolist() == ["AAPL", "MSFT", "AAPL", "NVDA"]
    assert ev["price"].tolist() == [185.5, 370.0, 185.25, 480.1]
    assert ev["size"].tolist() == [100.0, 5.0, 0.0, 7.0]
    assert chunks[0].flags == Flag.REPLAY
    assert chunks[0].trade is None  # every row is a trade
    assert chunks[0].quote is None


def test_naive_timestamps_are_utc_unless_a_timezone_is_given(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEADER + "2024-01-02 09:30:00,AAPL,1,1\n")
    assert events(read_all(path))["ts"].tolist() == [T0 - 5 * 3600 * S]
    assert events(read_all(path, timezone="America/New_York"))["ts"].tolist() == [T0]


def test_parse_ts_text_matches_the_vectorised_parser() -> None:
    assert parse_ts_text("2024-01-02T09:30:00.000000001-05:00") == T0 + 1
    assert parse_ts_text(str(T0)) == T0
    with pytest.raises(ValueError, match="not epoch nanoseconds"):
        parse_ts_text("1704205800")
    with pytest.raises(ValueError, match="not ISO-8601"):
        parse_ts_text("yesterday")


def test_rows_with_bid_ask_carry_quotes_and_quote_only_rows_are_not_trades(
    tmp_path: Path,
) -> None:
    # Arrange: trade+quote, trade only, quote only
    path = write(
        tmp_path,
        "q.csv",
        "ts,symbol,price,size,bid_px,bid_sz,ask_px,ask_sz\n"
        f"{T0},AAPL,185.1,100,185.0,200,185.2,300\n"
        f"{T0 + 1},AAPL,185.2,50,,,,\n"
        f"{T0 + 2},AAPL,,,185.1,100,185.3,400\n",
    )
    # Act
    (chunk,) = read_all(path)
    # Assert
    assert chunk.trade is not None
    assert chunk.trade.tolist() == [True, True, False]
    assert chunk.quote is not None
    assert chunk.quote.tolist() == [True, False, True]
    assert chunk.touch is not None
    bid_px, bid_sz, ask_px, ask_sz = chunk.touch
    assert bid_px[[0, 2]].tolist() == [185.0, 185.1]
    assert ask_sz[[0, 2]].tolist() == [300.0, 400.0]
    assert bid_sz.dtype == np.float64
    assert ask_px[2] == 185.3


def test_parquet_trades_with_a_timestamp_column_convert_to_utc_ns(tmp_path: Path) -> None:
    # Arrange
    table = pa.table(
        {
            "ts": pa.array([T0 // 1000, T0 // 1000 + 1], pa.timestamp("us", tz="UTC")),
            "symbol": pa.array(["AAPL", "MSFT"]).dictionary_encode(),
            "price": pa.array([185, 370], pa.int64()),
            "size": [1.0, 2.0],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    # Act
    ev = events(read_all(path))
    # Assert
    assert ev["ts"].tolist() == [T0, T0 + 1000]
    assert ev["symbol"].tolist() == ["AAPL", "MSFT"]
    assert ev["price"].tolist() == [185.0, 370.0]


def test_jsonl_accepts_integer_and_iso_ts_and_string_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        f'{{"ts": {T0}, "symbol": "AAPL", "price": 185.5, "size": 10}}\n'
        "\n"
        '{"ts": "2024-01-02T14:30:01Z", "symbol": "AAPL", "price": "185.75", "size": 3}\n',
    )
    ev = events(read_all(path))
    assert ev["ts"].tolist() == [T0, T0 + S]
    assert ev["price"].tolist() == [185.5, 185.75]


def test_jsonl_chunks_with_other_types_or_bad_lines_are_parsed_line_by_line(
    tmp_path: Path,
) -> None:
    # Arrange: the first chunk sets the column types; later chunks change them or break
    path = write(
        tmp_path,
        "t.jsonl",
        f'{{"ts": {T0}, "symbol": "A", "price": 1.5, "size": 1}}\n'
        f'{{"ts": {T0 + 1}, "symbol": "A", "price": 2, "size": 1, "venue": "X"}}\n'
        f'{{"ts": "2024-01-02T14:30:01Z", "symbol": "A", "price": "2.5", "size": 1}}\n'
        "\n"
        f'{{"ts": {T0 + 2 * S}, "symbol": "A", "price": 3, "size": 1\n',
    )
    # Act
    chunks = read_all(path, chunk_rows=1, skip_bad_rows=True)
    # Assert
    assert events(chunks)["price"].tolist() == [1.5, 2.0, 2.5]
    assert events(chunks)["ts"].tolist() == [T0, T0 + 1, T0 + S]
    assert [b.where for c in chunks for b in c.bad] == [f"{path}:5"]


def test_format_is_sniffed_without_an_extension_and_can_be_forced(tmp_path: Path) -> None:
    # Arrange: JSON lines in a file named .dat, Parquet named .bin
    jl = write(tmp_path, "t.dat", f'{{"ts": {T0}, "symbol": "A", "price": 1, "size": 1}}\n')
    pqf = tmp_path / "t.bin"
    pq.write_table(pa.table({"ts": [T0], "symbol": ["A"], "price": [1.0], "size": [1.0]}), pqf)
    txt = write(tmp_path, "t.log", HEADER + f"{T0},A,1,1\n")
    # Act / Assert
    assert ReplayReader(jl).container == "jsonl"
    assert ReplayReader(pqf).container == "parquet"
    assert ReplayReader(txt).container == "csv"
    assert ReplayReader(txt, fmt="csv").container == "csv"


def test_gzip_compressed_csv_is_read_transparently(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress((HEADER + f"{T0},AAPL,1.5,2\n").encode()))
    assert events(read_all(path))["price"].tolist() == [1.5]


def test_missing_columns_are_a_file_error_naming_what_was_found(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "time,sym,px\n1,2,3\n")
    with pytest.raises(ReplayFileError, match=r"t\.csv: missing columns price, size \(found: "):
        ReplayReader(path)


def test_missing_file_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="no such file"):
        ReplayReader(tmp_path / "nope.csv")


def test_file_without_symbol_column_takes_the_symbol_option(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "ts,price,size\n" + f"{T0},1,1\n")
    with pytest.raises(ReplayFileError, match="no symbol column"):
        ReplayReader(path)
    assert events(read_all(path, symbol="AAPL"))["symbol"].tolist() == ["AAPL"]


def test_symbol_option_replays_only_that_symbol_of_a_multi_symbol_file(tmp_path: Path) -> None:
    # A bad row of another symbol does not stop the replay of this one.
    path = write(tmp_path, "t.csv", HEADER + f"{T0},AAPL,1,1\n{T0},MSFT,-1,1\n{T0 + 1},AAPL,2,1\n")
    ev = events(read_all(path, symbol="AAPL"))
    assert ev["symbol"].tolist() == ["AAPL", "AAPL"]
    assert ev["price"].tolist() == [1.0, 2.0]
    assert [c.symbols for c in read_all(path, symbol="AAPL")] == [["AAPL"]]


def test_symbols_of_bad_rows_are_not_in_the_chunk(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", HEADER + f"{T0},ZZZ,-1,1\n{T0},AAPL,1,1\n")
    (chunk,) = read_all(path, skip_bad_rows=True)
    assert chunk.symbols == ["AAPL"]
    assert chunk.sym.tolist() == [0]


def test_crlf_lines_and_a_byte_order_mark_are_read_with_exact_line_numbers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "win.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + f"{HEADER.strip()}\r\n{T0},A,1,1\r\n\r\n{T0},A,-1,1\r\n".encode()
    )
    chunks = read_all(path)
    assert events(chunks)["price"].tolist() == [1.0]
    assert str(chunks[-1].stop) == f"{path}:4: price -1 is not positive"


# ----------------------------------------------------------------------------- bad rows

GOOD = f"{T0},AAPL,185,10\n{T0 + S},AAPL,185.5,20\n"


@pytest.mark.parametrize(
    ("row", "reason", "message"),
    [
        ("not-a-time,AAPL,185,10", "bad_ts", "ts 'not-a-time' is not ISO-8601"),
        ("1704205802,AAPL,185,10", "bad_ts", "ts 1704205802 is not epoch nanoseconds"),
        (",AAPL,185,10", "bad_ts", "ts is missing"),
        (f"{T0 + 2 * S},,185,10", "bad_symbol", "symbol is missing"),
        (f"{T0 + 2 * S},AAPL,,10", "bad_price", "price is missing"),
        (f"{T0 + 2 * S},AAPL,NaN,10", "bad_price", "price NaN is not finite"),
        (f"{T0 + 2 * S},AAPL,0,10", "bad_price", "price 0 is not positive"),
        (f"{T0 + 2 * S},AAPL,-3.5,10", "bad_price", "price -3.5 is not positive"),
        (f"{T0 + 2 * S},AAPL,abc,10", "bad_price", "price 'abc' is not a number"),
        (f"{T0 + 2 * S},AAPL,185,-1", "bad_size", "size -1 is negative"),
        (f"{T0 + 2 * S},AAPL,185,", "bad_size", "size is missing"),
        (f"{T0 - S},AAPL,185,10", "out_of_order", "is earlier than the previous row's"),
        (f"{T0 + 2 * S},AAPL,185", "malformed", "expected 4 fields, found 3"),
    ],
)
def test_bad_row_stops_the_replay_at_its_exact_line_with_the_reason(
    tmp_path: Path, row: str, reason: str, message: str
) -> None:
    # Arrange: header (line 1), two good rows (2-3), a blank line (4), the bad row (5),
    # then a good row that must not be replayed
    path = write(tmp_path, "BAD.csv", HEADER + GOOD + "\n" + row + "\n" + f"{T0 + 9 * S},A,1,1\n")
    # Act
    chunks = read_all(path)
    # Assert
    stop = chunks[-1].stop
    assert stop is not None
    assert stop.where == f"{path}:5"
    assert stop.reason == reason
    assert message in stop.message
    assert events(chunks)["price"].tolist() == [185.0, 185.5]
    assert chunks[-1].rows == 3


def test_bad_quote_stops_with_the_line_and_names_the_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "q.csv",
        "ts,symbol,price,size,bid_px,bid_sz,ask_px,ask_sz\n"
        f"{T0},AAPL,185.1,100,185.0,200,185.2,300\n"
        f"{T0 + 1},AAPL,185.1,100,185.3,200,185.2,300\n",
    )
    (chunk,) = read_all(path)
    assert chunk.stop is not None
    assert str(chunk.stop) == f"{path}:3: crossed quote: bid_px 185.3 > ask_px 185.2"


def test_parquet_bad_row_is_reported_by_zero_based_row_index(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"ts": [T0, T0 + 1, T0 + 2], "symbol": ["A"] * 3, "price": [1.0, 2.0, -1.0],
                  "size": [1.0] * 3}),
        path,
    )  # fmt: skip
    chunks = read_all(path)
    assert str(chunks[-1].stop) == f"{path}:row 2: price -1.0 is not positive"


def test_jsonl_bad_line_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        f'{{"ts": {T0}, "symbol": "A", "price": 1, "size": 1}}\n\n{{"ts": {T0}, "symbol": \n',
    )
    chunks = read_all(path)
    assert chunks[-1].stop is not None
    assert chunks[-1].stop.where == f"{path}:3"
    assert "not valid JSON" in chunks[-1].stop.message


def test_skip_policy_counts_bad_rows_by_reason_and_keeps_the_good_ones(tmp_path: Path) -> None:
    # Arrange
    path = write(
        tmp_path,
        "t.csv",
        HEADER
        + f"{T0},AAPL,1,1\n"
        + f"{T0 + 1},AAPL,-1,1\n"  # line 3: bad price
        + "oops,AAPL,1,1\n"  # line 4: bad ts
        + f"{T0 + 2},AAPL,1\n"  # line 5: malformed
        + f"{T0 - 5},AAPL,1,1\n"  # line 6: out of order
        + f"{T0 + 3},AAPL,2,1\n"
        + f"{T0 + 4},AAPL,,1\n",  # line 8: bad price
    )
    # Act
    chunks = read_all(path, skip_bad_rows=True, chunk_rows=3)
    # Assert
    skipped: dict[str, int] = {}
    for c in chunks:
        for k, v in c.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    assert skipped == {"bad_price": 2, "bad_ts": 1, "malformed": 1, "out_of_order": 1}
    assert events(chunks)["price"].tolist() == [1.0, 2.0]
    assert [b.where for c in chunks for b in c.bad] == [f"{path}:{n}" for n in (3, 4, 5, 6, 8)]
    assert sum(c.rows for c in chunks) == 7
    assert all(c.stop is None for c in chunks)


def test_out_of_order_allowed_replays_rows_as_written_and_paces_on_the_running_max(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "t.csv", HEADER + f"{T0 + 5},A,1,1\n{T0},A,2,1\n{T0 + 9},A,3,1\n")
    (chunk,) = read_all(path, out_of_order="allow")
    assert chunk.ts.tolist() == [T0 + 5, T0, T0 + 9]
    assert chunk.key.tolist() == [T0 + 5, T0 + 5, T0 + 9]


# ----------------------------------------------------------------------------- chunking


def test_a_file_larger_than_one_chunk_streams_in_chunks_with_exact_line_numbers(
    tmp_path: Path,
) -> None:
    # Arrange: 1000 rows with a blank line every 100 rows; a bad row at line 990
    lines = [HEADER.strip()]
    for i in range(1000):
        if i % 100 == 50:
            lines.append("")
        lines.append(f"{T0 + i * S},S{i % 3},{100 + i / 100},{i}")
    bad_line = 990
    ts, sym, _, size = lines[bad_line - 1].split(",")
    lines[bad_line - 1] = f"{ts},{sym},-1,{size}"
    path = write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    # Act
    chunks = read_all(path, chunk_rows=64)
    # Assert
    assert len(chunks) > 10
    assert all(c.rows <= 64 for c in chunks)
    stop = chunks[-1].stop
    assert stop is not None
    assert stop.where == f"{path}:{bad_line}"
    n_before = sum(1 for ln in lines[1 : bad_line - 1] if ln)
    ev = events(chunks)
    assert len(ev["ts"]) == n_before
    assert np.all(np.diff(ev["ts"]) > 0)
    progress = [c.progress for c in chunks]
    assert progress == sorted(progress)


def test_parquet_streams_in_record_batches_of_chunk_rows(tmp_path: Path) -> None:
    n = 1000
    path = tmp_path / "t.parquet"
    pq.write_table(
        pa.table({"ts": T0 + np.arange(n), "symbol": ["A"] * n, "price": np.full(n, 1.0),
                  "size": np.ones(n)}),
        path,
        row_group_size=300,
    )  # fmt: skip
    chunks = read_all(path, chunk_rows=128)
    assert len(chunks) >= 8
    assert max(len(c) for c in chunks) <= 128
    assert events(chunks)["ts"].tolist() == (T0 + np.arange(n)).tolist()
    assert chunks[-1].progress == 1.0


# ----------------------------------------------------------------------------- OHLCV bars


def make_bars(n: int = 30, *, freq: str = "1min", tz: str = "America/New_York") -> pd.DataFrame:
    rng = np.random.default_rng(5)
    name = "Datetime" if freq.endswith("min") else "Date"
    start = "2024-01-02 09:30" if name == "Datetime" else "2024-01-02"
    idx = pd.date_range(start, periods=n, freq=freq, tz=tz, name=name)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.001, n))), 4)
    open_ = np.round(np.concatenate([[100.0], close[:-1]]), 4)
    high = np.round(np.maximum(open_, close) + rng.uniform(0, 0.1, n), 4)
    low = np.round(np.minimum(open_, close) - rng.uniform(0, 0.1, n), 4)
    vol = rng.integers(1_000, 9_000, n).astype(np.int64)
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close, "Volume": vol},
                        index=idx)  # fmt: skip


@pytest.fixture
def yf_download(monkeypatch: pytest.MonkeyPatch) -> Callable[..., pd.DataFrame]:
    """Run yfinance's real ``download()`` with per-ticker history replaced by given frames."""
    import yfinance as yf
    import yfinance.multi as multi

    frames: dict[str, pd.DataFrame] = {}

    class FakeTicker:
        def __init__(self, ticker: str, *a: Any, **k: Any) -> None:
            self.ticker = ticker
            self._price_history = None

        def history(self, *a: Any, auto_adjust: bool = True, **k: Any) -> pd.DataFrame:
            df = frames[self.ticker].copy()
            if not auto_adjust:
                df.insert(4, "Adj Close", df["Close"] * 0.99)
            return df

    monkeypatch.setattr(multi, "Ticker", FakeTicker)

    def download(bars: dict[str, pd.DataFrame], **kw: Any) -> pd.DataFrame:
        frames.clear()
        frames.update(bars)
        out: pd.DataFrame = yf.download(
            " ".join(bars), progress=False, threads=False, interval=kw.pop("interval", "1m"), **kw
        )
        return out

    return download


def rebuilt(chunks: list[Chunk], rule: str) -> pd.DataFrame:
    """Bars of ``rule`` built with pandas from the synthetic trades (what the engine does)."""
    ev = events(chunks)
    df = pd.DataFrame(
        {"price": ev["price"], "size": ev["size"], "symbol": ev["symbol"]},
        index=pd.to_datetime(ev["ts"], utc=True),
    )
    out = df.groupby("symbol").resample(rule)["price"].ohlc()
    out["volume"] = df.groupby("symbol").resample(rule)["size"].sum()
    return out.dropna()


def expected(bars: pd.DataFrame, symbol: str, rule: str) -> pd.DataFrame:
    b = bars.tz_convert("UTC")
    b.index = b.index.as_unit("ns")  # pandas 3 builds date ranges in µs; the engine works in ns
    out = b.resample(rule).agg(
        {"Open": "first", "High": "max", "Low": "min", "Close": "last", "Volume": "sum"}
    )
    out.columns = ["open", "high", "low", "close", "volume"]
    out["volume"] = out["volume"].astype(np.float64)
    out.index = pd.MultiIndex.from_product([[symbol], out.index], names=["symbol", None])
    return out.dropna()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # Price/Ticker two-row header
        {"multi_level_index": False},  # plain Datetime,Close,High,Low,Open,Volume
        {"group_by": "ticker"},  # Ticker row first
        {"auto_adjust": False},  # with Adj Close
    ],
    ids=["multi-level", "single-level", "group-by-ticker", "adj-close"],
)
def test_yfinance_download_csv_replays_and_rebuilds_1m_and_5m_bars_exactly(
    tmp_path: Path, yf_download: Callable[..., pd.DataFrame], kwargs: dict[str, Any]
) -> None:
    # Arrange: a CSV as yf.download("AAPL", interval="1m", ...).to_csv() writes it
    bars = make_bars(30)
    path = tmp_path / "AAPL.csv"
    yf_download({"AAPL": bars}, **kwargs).to_csv(path)
    symbol = "AAPL" if kwargs.get("multi_level_index", True) else None
    # Act
    with ReplayReader(path, symbol=None if symbol else "AAPL") as reader:
        chunks = list(reader)
        interval = reader.bar_interval_ns
    # Assert
    assert interval == 60 * S
    assert chunks[0].flags == Flag.SYNTHETIC | Flag.REPLAY
    assert len(events(chunks)["ts"]) == 4 * len(bars)
    for rule in ("1min", "5min"):
        pd.testing.assert_frame_equal(
            rebuilt(chunks, rule), expected(bars, "AAPL", rule), check_freq=False
        )


def test_yfinance_download_written_to_parquet_replays_with_its_ticker(
    tmp_path: Path, yf_download: Callable[..., pd.DataFrame]
) -> None:
    # Arrange: pandas names MultiIndex columns "('Close', 'AAPL')" in Parquet
    bars = make_bars(12)
    path = tmp_path / "AAPL.parquet"
    yf_download({"AAPL": bars}).to_parquet(path)
    # Act
    chunks = read_all(path)
    # Assert
    assert chunks[0].symbols == ["AAPL"]
    pd.testing.assert_frame_equal(
        rebuilt(chunks, "1min"), expected(bars, "AAPL", "1min"), check_freq=False
    )


def test_ticker_history_csv_with_actions_and_daily_dates_replays_on_calendar_dates(
    tmp_path: Path,
) -> None:
    # Arrange: Ticker.history(interval="1d").to_csv(): tz-aware midnights, Dividends/Splits
    bars = make_bars(10, freq="1D")
    bars["Dividends"] = 0.0
    bars["Stock Splits"] = 0.0
    path = tmp_path / "AAPL-1d.csv"
    bars.to_csv(path)
    # Act
    with ReplayReader(path, symbol="AAPL") as reader:
        chunks = list(reader)
        interval = reader.bar_interval_ns
    # Assert: each day's four trades fall on that calendar date (UTC), so 1d bars rebuild
    assert interval == 86_400 * S
    got = rebuilt(chunks, "1D")
    assert [d.date() for d in got.index.get_level_values(1)] == [d.date() for d in bars.index]
    assert got["close"].tolist() == bars["Close"].tolist()
    assert got["high"].tolist() == bars["High"].tolist()


def test_multi_ticker_download_replays_every_ticker_and_skips_alignment_gaps(
    tmp_path: Path, yf_download: Callable[..., pd.DataFrame]
) -> None:
    # Arrange: MSFT lacks the first 3 minutes -> empty cells after yfinance aligns them
    aapl, msft = make_bars(20), make_bars(20).iloc[3:] * 2
    msft["Volume"] = msft["Volume"].astype(np.int64)
    path = tmp_path / "two.csv"
    yf_download({"AAPL": aapl, "MSFT": msft}).to_csv(path)
    # Act
    chunks = read_all(path, chunk_rows=7)
    # Assert
    ev = events(chunks)
    assert (ev["symbol"] == "AAPL").sum() == 4 * 20
    assert (ev["symbol"] == "MSFT").sum() == 4 * 17
    assert sum(c.empty_bars for c in chunks) == 3
    assert np.all(np.diff(ev["ts"]) >= 0)
    pd.testing.assert_frame_equal(
        rebuilt(chunks, "5min").loc[["MSFT"]], expected(msft, "MSFT", "5min"), check_freq=False
    )
    only = events(read_all(path, symbol="MSFT"))
    assert set(only["symbol"]) == {"MSFT"}


def test_inconsistent_bar_stops_with_its_line_and_ticker(
    tmp_path: Path, yf_download: Callable[..., pd.DataFrame]
) -> None:
    bars = make_bars(10)
    bars.iloc[6, bars.columns.get_loc("High")] = bars["Low"].iloc[6] - 1  # high below low
    path = tmp_path / "AAPL.csv"
    yf_download({"AAPL": bars}).to_csv(path)
    chunks = read_all(path)
    stop = chunks[-1].stop
    assert stop is not None
    assert stop.where == f"{path}:10"  # 3 header lines + 7th bar
    assert stop.reason == "bad_bar"
    assert stop.message.startswith("AAPL: high ")
    assert len(events(chunks)["ts"]) == 4 * 6


def test_ohlcv_file_without_a_ticker_needs_the_symbol(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    make_bars(3).to_csv(path)
    with pytest.raises(ReplayFileError, match="names no ticker; give the symbol"):
        ReplayReader(path)


def test_configured_bar_interval_overrides_inference(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    make_bars(3).to_csv(path)
    with ReplayReader(path, symbol="X", bar_interval_ns=parse_interval("5m")) as r:
        assert r.bar_interval_ns == 300 * S
        (chunk,) = list(r)
    # 5-minute bars placed 1 minute apart overlap: rejected as out of order
    assert chunk.stop is not None
    assert chunk.stop.reason == "out_of_order"


def test_sample_files_in_examples_replay_cleanly() -> None:
    root = Path(__file__).resolve().parents[2] / "examples" / "data"
    trades = read_all(root / "trades.csv")
    bars = read_all(root / "AAPL-1m.csv")
    assert {s for c in trades for s in c.symbols} == {"AAPL", "MSFT", "NVDA"}
    assert all(c.stop is None and not c.skipped for c in trades + bars)
    assert sum(len(c) for c in bars) == 4 * 120
