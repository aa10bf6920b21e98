"""Spool record codec and Parquet parts: round trips, sorting, schemas, de-duplication."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickserver.events import BarBatch, SignalBatch, TradeBatch, trades_from_columns
from tickserver.storage import (
    SCHEMAS,
    RecordError,
    build_tables,
    decode_record,
    dedupe_sorted,
    encode_batch,
    read_filtered,
    record_rows,
    write_parquet_atomic,
)

DAY = 86_400_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
NAMES = ["AAPL", "MSFT", "NVDA"]


def trades(
    n: int, t0: int = T0, first_seq: int = 1, symbols: list[int] | None = None
) -> TradeBatch:
    sym = np.array(symbols) if symbols is not None else np.arange(n) % 3
    return trades_from_columns(
        "sim",
        sym,
        t0 + np.arange(n) * 1000,
        100.0 + np.arange(n) / 100,
        np.arange(n) + 1.0,
        np.arange(first_seq, first_seq + n),
        flags=np.arange(n) % 3,
        ts_init=t0 + 5,
    )


def bars(n: int, interval: str = "1m") -> BarBatch:
    return BarBatch(
        interval=interval,
        final=True,
        symbol_id=np.zeros(n, np.uint32),
        ts_event=T0 + np.arange(n, dtype=np.int64) * 60_000_000_000,
        open=np.full(n, 1.0),
        high=np.full(n, 2.0),
        low=np.full(n, 0.5),
        close=np.full(n, 1.5),
        volume=np.full(n, 10.0),
        vwap=np.full(n, 1.2),
        trades=np.full(n, 3, np.uint64),
    )


def test_codec_round_trips_every_column_and_names_symbols() -> None:
    batch = trades(10)

    rec = decode_record(encode_batch(batch, NAMES))

    assert rec.kind == "trades"
    assert rec.rows == 10
    assert rec.header["sym"] == {"0": "AAPL", "1": "MSFT", "2": "NVDA"}
    for col in ("symbol_id", "ts_event", "ts_init", "price", "size", "seq", "flags"):
        np.testing.assert_array_equal(rec.cols[col], getattr(batch, col))


def test_codec_rejects_truncated_records() -> None:
    raw = encode_batch(trades(10), NAMES)

    assert record_rows(raw) == 10
    with pytest.raises(RecordError, match="truncated"):
        decode_record(raw[:-3])


def test_tables_map_symbol_ids_by_name_across_records_from_different_runs() -> None:
    # Arrange: the same symbol had id 0 in one run and id 1 in another.
    a = encode_batch(trades(2, symbols=[0, 0]), ["MSFT", "AAPL"])
    b = encode_batch(trades(2, symbols=[1, 1], t0=T0 + 10), ["AAPL", "MSFT"])

    tables = build_tables([decode_record(a), decode_record(b)])

    t = tables[("trades", None, "2026-01-01")]
    assert t.column("symbol").to_pylist() == ["MSFT"] * 4


def test_tables_split_by_utc_date_and_sort_by_symbol_then_time() -> None:
    # Arrange: rows out of symbol order, spanning midnight.
    batch = trades(6, t0=T0 + DAY - 3000, symbols=[2, 0, 1, 2, 0, 1])

    tables = build_tables([decode_record(encode_batch(batch, NAMES))])

    assert set(tables) == {("trades", None, "2026-01-01"), ("trades", None, "2026-01-02")}
    day1 = tables[("trades", None, "2026-01-01")]
    assert day1.column("symbol").to_pylist() == ["AAPL", "MSFT", "NVDA"]
    day2 = tables[("trades", None, "2026-01-02")]
    assert day2.column("symbol").to_pylist() == ["AAPL", "MSFT", "NVDA"]
    assert day1.schema == SCHEMAS["trades"]


def test_tables_sort_late_rows_into_time_order_within_a_symbol() -> None:
    batch = trades_from_columns(
        "sim", [0, 0, 0], [T0 + 30, T0 + 10, T0 + 20], [1, 2, 3], [1, 1, 1], [1, 2, 3]
    )

    t = build_tables([decode_record(encode_batch(batch, NAMES))])[("trades", None, "2026-01-01")]

    assert t.column("seq").to_pylist() == [2, 3, 1]


def test_tables_of_bars_are_keyed_by_interval_and_signals_carry_rule_names() -> None:
    sig = SignalBatch(
        rules=("ema_cross", "rsi_extreme"),
        symbol_id=np.array([1], np.uint32),
        ts_event=np.array([T0], np.int64),
        rule_id=np.array([1], np.uint16),
        direction=np.array([-1], np.int8),
        value=np.array([71.5]),
    )
    recs = [
        decode_record(encode_batch(bars(3, "1m"), NAMES)),
        decode_record(encode_batch(bars(2, "5m"), NAMES)),
        decode_record(encode_batch(sig, NAMES, {"rsi_extreme": "1m"})),
    ]

    tables = build_tables(recs)

    assert tables[("bars", "1m", "2026-01-01")].num_rows == 3
    assert tables[("bars", "5m", "2026-01-01")].num_rows == 2
    s = tables[("signals", None, "2026-01-01")].to_pylist()
    assert s[0]["symbol"] == "MSFT"
    assert s[0]["rule"] == "rsi_extreme"
    assert s[0]["interval"] == "1m"
    assert s[0]["direction"] == -1


def test_parquet_part_reads_back_equal_in_pyarrow_and_duckdb(tmp_path: Path) -> None:
    # Arrange
    batch = trades(9000)
    table = build_tables([decode_record(encode_batch(batch, NAMES))])[
        ("trades", None, "2026-01-01")
    ]
    path = tmp_path / "type=trades" / "date=2026-01-01" / "part.parquet"

    # Act
    write_parquet_atomic(table, path)

    # Assert: same schema and rows in pyarrow; DuckDB sees the same values and the partition.
    back = pq.read_table(path)
    assert back.schema.remove_metadata() == SCHEMAS["trades"]
    assert back.num_rows == 9000
    con = duckdb.connect()
    rows = con.execute(
        f"select symbol, count(*), sum(seq), min(price), max(size), any_value(date) "
        f"from read_parquet('{tmp_path}/type=trades/*/*.parquet', hive_partitioning=true) "
        "group by symbol order by symbol"
    ).fetchall()
    seq = np.asarray(batch.seq, dtype=np.int64)
    sym = np.asarray(batch.symbol_id)
    assert [r[0] for r in rows] == NAMES
    assert [r[1] for r in rows] == [3000, 3000, 3000]
    assert [r[2] for r in rows] == [int(seq[sym == i].sum()) for i in range(3)]
    assert str(rows[0][5]) == "2026-01-01"
    # One row group per symbol: a reader filtering MSFT skips the others by statistics.
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).column(0).statistics.max for i in range(meta.num_row_groups)] == NAMES


def test_read_filtered_keeps_one_symbol_and_a_half_open_time_range(tmp_path: Path) -> None:
    table = build_tables([decode_record(encode_batch(trades(30), NAMES))])[
        ("trades", None, "2026-01-01")
    ]
    path = tmp_path / "p.parquet"
    write_parquet_atomic(table, path)

    got = read_filtered(path, "trades", symbol="MSFT", start_ns=T0 + 1000, end_ns=T0 + 10_000)

    # MSFT rows are i % 3 == 1: i = 1, 4, 7 fall in [1000, 10000) ns.
    assert got.column("seq").to_pylist() == [2, 5, 8]


def test_dedupe_drops_rows_seen_in_two_tiers_but_keeps_distinct_ones() -> None:
    t = build_tables([decode_record(encode_batch(trades(5), NAMES))])[
        ("trades", None, "2026-01-01")
    ]
    other_run = t.set_column(
        t.schema.get_field_index("ts_event"),
        "ts_event",
        pa.array(np.arange(5, dtype=np.int64) + T0 + 999_999).view(pa.timestamp("ns", "UTC")),
    )

    out = dedupe_sorted(pa.concat_tables([t, t, other_run]), "trades")

    assert out.num_rows == 10
