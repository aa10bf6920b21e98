"""Kafka record formats: spool frames, JSON encoding (immediate and batched), the schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from tickserver.kafka.records import (
    Frame,
    FrameError,
    Gap,
    Kind,
    RecordEncoder,
    RecordError,
    TicksIn,
    decode_ticks,
    pack_frame,
    partition_of,
    schema_path,
    unpack_frame,
)

SESSION = 1_800_000_000_000_000_000


@pytest.fixture(scope="module")
def validator() -> Any:
    return jsonschema.Draft202012Validator(json.loads(schema_path().read_text()))


def tick_frame(n: int = 6, source: str = "sim", first_sseq: int = 1) -> Frame:
    sym = np.arange(n, dtype=np.uint32) % 2  # AAPL, MSFT, AAPL, …
    sseq = np.empty(n, dtype=np.uint64)
    for s in (0, 1):
        rows = np.flatnonzero(sym == s)
        sseq[rows] = np.arange(first_sseq, first_sseq + len(rows))
    return Frame(
        kind=Kind.TICKS,
        session=SESSION,
        symbols=["AAPL", "MSFT"],
        source=source,
        cols={
            "sym": sym,
            "sseq": sseq,
            "ts_event": SESSION + np.arange(n, dtype=np.int64),
            "ts_init": np.full(n, SESSION + 10, dtype=np.int64),
            "price": 100.0 + np.arange(n, dtype=np.float64),
            "size": np.full(n, 5.0),
            "seq": np.arange(1, n + 1, dtype=np.uint64),
            "flags": np.ones(n, dtype=np.uint8),
        },
    )


def frames_of_every_kind() -> list[Frame]:
    quotes = Frame(
        kind=Kind.QUOTES,
        session=SESSION,
        symbols=["SPY"],
        source="sim",
        cols={
            "sym": np.zeros(2, dtype=np.uint32),
            "sseq": np.array([1, 2], dtype=np.uint64),
            "ts_event": np.array([1, 2], dtype=np.int64),
            "ts_init": np.array([3, 4], dtype=np.int64),
            "bid_px": np.array([10.0, np.nan]),
            "bid_sz": np.array([1.0, np.nan]),
            "ask_px": np.array([10.1, 10.2]),
            "ask_sz": np.array([2.0, 3.0]),
            "seq": np.zeros(2, dtype=np.uint64),
            "flags": np.zeros(2, dtype=np.uint8),
        },
    )
    bars = Frame(
        kind=Kind.BARS,
        session=SESSION,
        symbols=["AAPL"],
        interval="1m",
        final=True,
        cols={
            "sym": np.zeros(1, dtype=np.uint32),
            "sseq": np.array([1], dtype=np.uint64),
            "ts_event": np.array([SESSION], dtype=np.int64),
            "open": np.array([1.0]),
            "high": np.array([2.0]),
            "low": np.array([0.5]),
            "close": np.array([1.5]),
            "volume": np.array([10.0]),
            "vwap": np.array([np.nan]),
            "trades": np.array([3], dtype=np.uint64),
        },
    )
    signals = Frame(
        kind=Kind.SIGNALS,
        session=SESSION,
        symbols=["AAPL", "MSFT"],
        rules=("ema_cross", "rsi_extreme"),
        rule_intervals=("1m", "5m"),
        cols={
            "sym": np.array([0, 1], dtype=np.uint32),
            "sseq": np.array([1, 1], dtype=np.uint64),
            "ts_event": np.array([5, 6], dtype=np.int64),
            "rule": np.array([1, 0], dtype=np.uint16),
            "direction": np.array([-1, 1], dtype=np.int8),
            "value": np.array([72.5, 0.1]),
        },
    )
    gap = Frame(
        kind=Kind.GAP,
        session=SESSION,
        symbols=[],
        cols={},
        gaps=(Gap("tickserver.ticks", "AAPL", 4, 9, "kafka spool full"),),
    )
    return [tick_frame(), quotes, bars, signals, gap]


def test_frame_survives_pack_and_unpack_for_every_kind() -> None:
    for frame in frames_of_every_kind():
        # Act
        back = unpack_frame(pack_frame(frame))
        # Assert
        assert back.kind == frame.kind
        assert back.session == SESSION
        assert list(back.symbols) == list(frame.symbols)
        assert back.gaps == tuple(frame.gaps)
        for name, arr in frame.cols.items():
            np.testing.assert_array_equal(back.cols[name], arr)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than its header"),
        (b"XX\x01\x01\x00\x00\x00\x00", "not a tickserver kafka frame"),
        (b"TK\x01\x09\x00\x00\x00\x00", "unknown frame kind 9"),
    ],
)
def test_unpack_rejects_bytes_that_are_not_a_frame(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        unpack_frame(data)


def test_unpack_rejects_a_truncated_column() -> None:
    # Arrange
    data = pack_frame(tick_frame())
    # Act / Assert
    with pytest.raises(FrameError, match="truncated"):
        unpack_frame(data[:-3])


def test_immediate_records_of_every_kind_match_the_schema(validator: Any) -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=(), max_record_bytes=1_000_000)
    # Act
    records = enc.encode(frames_of_every_kind())
    # Assert
    types = [r.rtype for r in records]
    assert types == ["tick"] * 6 + ["quote"] * 2 + ["bar", "signal", "signal", "gap"]
    for r in records:
        value = orjson.loads(r.value)
        validator.validate(value)
        assert r.key == value["symbol"].encode()
        assert value["type"] == r.rtype
    topics = {r.rtype: r.topic for r in records}
    assert topics == {
        "tick": "ts.ticks",
        "quote": "ts.quotes",
        "bar": "ts.bars.1m",
        "signal": "ts.signals",
        "gap": "tickserver.ticks",
    }


def test_immediate_tick_record_carries_every_field() -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=(), max_record_bytes=1_000_000)
    # Act
    first = orjson.loads(enc.encode([tick_frame()])[0].value)
    # Assert
    assert first == {
        "v": 1,
        "type": "tick",
        "symbol": "AAPL",
        "session": SESSION,
        "sseq": 1,
        "source": "sim",
        "seq": 1,
        "ts_event": SESSION,
        "ts_init": SESSION + 10,
        "price": 100.0,
        "size": 5.0,
        "flags": 1,
    }


def test_nan_values_are_published_as_null() -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=(), max_record_bytes=1_000_000)
    quotes, bars = frames_of_every_kind()[1:3]
    # Act
    q = orjson.loads(enc.encode([quotes])[1].value)
    b = orjson.loads(enc.encode([bars])[0].value)
    # Assert
    assert q["bid_px"] is None
    assert b["vwap"] is None


def test_batched_mode_makes_one_record_per_symbol_with_columns_in_order(validator: Any) -> None:
    # Arrange: two frames of the same two symbols
    enc = RecordEncoder("ts", batched=[Kind.TICKS], max_record_bytes=1_000_000)
    frames = [tick_frame(6), tick_frame(4, first_sseq=4)]
    # Act
    records = enc.encode(frames)
    # Assert
    values = [orjson.loads(r.value) for r in records]
    for v in values:
        validator.validate(v)
    assert [(v["symbol"], v["n"]) for v in values] == [("AAPL", 5), ("MSFT", 5)]
    aapl = values[0]
    assert aapl["sseq"] == [1, 2, 3, 4, 5]
    assert aapl["seq"] == [1, 3, 5, 1, 3]
    assert aapl["price"] == [100.0, 102.0, 104.0, 100.0, 102.0]
    assert [r.events for r in records] == [5, 5]


def test_batched_records_of_different_sources_stay_apart() -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=[Kind.TICKS], max_record_bytes=1_000_000)
    # Act
    records = enc.encode([tick_frame(2, source="a"), tick_frame(2, source="b", first_sseq=2)])
    # Assert
    got = sorted(
        (v["symbol"], v["source"], v["sseq"][0])
        for v in map(orjson.loads, (r.value for r in records))
    )
    assert got == [("AAPL", "a", 1), ("AAPL", "b", 2), ("MSFT", "a", 1), ("MSFT", "b", 2)]


def test_batched_records_are_split_below_the_record_limit() -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=[Kind.TICKS], max_record_bytes=5_000)
    # Act
    records = enc.encode([tick_frame(1000)])
    # Assert
    assert len(records) > 2
    assert all(len(r.value) <= 5_000 for r in records)
    aapl = [orjson.loads(r.value) for r in records if r.key == b"AAPL"]
    assert [s for v in aapl for s in v["sseq"]] == list(range(1, 501))


def test_split_halves_a_batched_record_and_refuses_a_single_event() -> None:
    # Arrange
    enc = RecordEncoder("ts", batched=[Kind.TICKS], max_record_bytes=1_000_000)
    rec = enc.encode([tick_frame(10)])[0]
    single = RecordEncoder("ts", batched=(), max_record_bytes=1_000_000).encode([tick_frame(1)])[0]
    # Act
    parts = rec.split()
    # Assert
    assert parts is not None
    assert [p.events for p in parts] == [2, 3]
    assert [s for p in parts for s in orjson.loads(p.value)["sseq"]] == [1, 2, 3, 4, 5]
    assert single.split() is None


def test_decode_ticks_reads_immediate_and_batched_records() -> None:
    # Arrange
    imm = RecordEncoder("ts", batched=(), max_record_bytes=10**6).encode([tick_frame(4)])
    bat = RecordEncoder("ts", batched=[Kind.TICKS], max_record_bytes=10**6).encode([tick_frame(4)])
    # Act
    one = decode_ticks(imm[1].value)
    many = decode_ticks(bat[0].value)
    # Assert
    assert isinstance(one, TicksIn)
    assert isinstance(many, TicksIn)
    assert (one.symbol, one.sseq.tolist(), one.seq.tolist()) == ("MSFT", [1], [2])
    assert (many.symbol, many.sseq.tolist(), many.price.tolist()) == (
        "AAPL",
        [1, 2],
        [100.0, 102.0],
    )
    assert many.flags.dtype == np.uint8


def test_decode_ticks_returns_gap_notices() -> None:
    value = orjson.dumps(
        {
            "v": 1,
            "type": "gap",
            "symbol": "AAPL",
            "session": 1,
            "sseq": 3,
            "last_sseq": 7,
            "count": 5,
            "reason": "kafka spool full",
        }
    )
    assert decode_ticks(value) == Gap("", "AAPL", 3, 7, "kafka spool full")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v": 2, "type": "tick"}', "schema version 2"),
        (b'{"v": 1, "type": "bar"}', "not a tick record"),
        (b'{"v": 1, "type": "tick", "symbol": "A"}', "bad tick record"),
        (
            b'{"v":1,"type":"ticks","symbol":"A","session":1,"source":"s","n":2,"sseq":[1],'
            b'"seq":[1],"ts_event":[1],"ts_init":[1],"price":[1],"size":[1],"flags":[0]}',
            "do not have n=2",
        ),
    ],
)
def test_decode_ticks_rejects_bad_records_with_a_reason(value: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        decode_ticks(value)


def test_symbol_partition_matches_the_kafka_default_partitioner() -> None:
    # Arrange
    parts = list(range(12))
    # Act / Assert
    for sym in ("AAPL", "MSFT", "BRK.B", "SPY", "ÆØÅ"):
        assert partition_of(sym, 12) == DefaultPartitioner()(sym.encode(), parts, parts)
