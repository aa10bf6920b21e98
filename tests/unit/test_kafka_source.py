"""The kafka source's record handling and ownership, without a broker (records are faked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tickserver.bus import Bus, Topic
from tickserver.config import ConfigError, load_config
from tickserver.events import TradeBatch
from tickserver.kafka.records import partition_of
from tickserver.metrics import Metrics
from tickserver.ownership import OWNERSHIP_TOPIC, Ownership
from tickserver.sources.base import SourceContext
from tickserver.sources.kafka import KafkaSource, KafkaSourceConfig
from tickserver.symbols import Symbols

SYMS = ["AAPL", "MSFT", "NVDA", "SPY"]


@dataclass
class FakeRecord:
    value: bytes
    offset: int = 0


def tick(symbol: str, sseq: int, seq: int, session: int = 1) -> FakeRecord:
    return FakeRecord(
        orjson.dumps(
            {
                "v": 1,
                "type": "tick",
                "symbol": symbol,
                "session": session,
                "sseq": sseq,
                "source": "sim",
                "seq": seq,
                "ts_event": 10 + seq,
                "ts_init": 20,
                "price": 1.5,
                "size": 2.0,
                "flags": 1,
            }
        )
    )


def ticks(symbol: str, sseqs: list[int], session: int = 1) -> FakeRecord:
    n = len(sseqs)
    return FakeRecord(
        orjson.dumps(
            {
                "v": 1,
                "type": "ticks",
                "symbol": symbol,
                "session": session,
                "source": "sim",
                "n": n,
                "sseq": sseqs,
                "seq": [100 + s for s in sseqs],
                "ts_event": [1] * n,
                "ts_init": [2] * n,
                "price": [3.0] * n,
                "size": [4.0] * n,
                "flags": [0] * n,
            }
        )
    )


class Harness:
    def __init__(self, **source: Any) -> None:
        cfg = load_config(environ={}, overrides={"market": {"symbols": SYMS}})
        self.bus = Bus()
        self.symbols = Symbols(SYMS)
        ctx = SourceContext(config=cfg, bus=self.bus, symbols=self.symbols, metrics=Metrics())
        self.source = KafkaSource(ctx, KafkaSourceConfig(**source))
        self.trades: list[tuple[str, int]] = []
        self.owned: list[Ownership] = []
        self.bus.attach(Topic.RAW_TRADES, self._on_trades, name="t")
        self.bus.attach(OWNERSHIP_TOPIC, self.owned.append, name="t")

    def _on_trades(self, b: TradeBatch) -> None:
        assert b.source == "kafka"
        self.trades.extend(
            (self.symbols.name(s), q)
            for s, q in zip(b.symbol_id.tolist(), b.seq.tolist(), strict=True)
        )


def test_ticks_are_published_with_the_upstream_seq() -> None:
    # Arrange
    h = Harness()
    # Act
    h.source._ingest(0, [tick("AAPL", 1, 7), tick("MSFT", 1, 8), ticks("AAPL", [2, 3])])
    # Assert
    assert h.trades == [("AAPL", 7), ("MSFT", 8), ("AAPL", 102), ("AAPL", 103)]


def test_redelivered_and_overlapping_records_are_fed_once() -> None:
    # Arrange
    h = Harness()
    h.source._ingest(0, [ticks("AAPL", [1, 2, 3])])
    # Act: an exact repeat, an overlap, and the same sseq from another session
    h.source._ingest(0, [ticks("AAPL", [1, 2, 3]), ticks("AAPL", [3, 4]), tick("AAPL", 1, 9, 2)])
    # Assert
    assert [q for _, q in h.trades] == [101, 102, 103, 104, 9]
    assert h.source.duplicates == 4


def test_bad_records_and_gaps_are_counted_not_fed() -> None:
    # Arrange
    h = Harness()
    gap = orjson.dumps(
        {
            "v": 1,
            "type": "gap",
            "symbol": "AAPL",
            "session": 1,
            "sseq": 5,
            "last_sseq": 9,
            "count": 5,
            "reason": "kafka spool full",
        }
    )
    # Act
    h.source._ingest(0, [FakeRecord(b"{broken", 3), FakeRecord(gap), tick("AAPL", 10, 10)])
    # Assert
    assert h.trades == [("AAPL", 10)]
    assert h.source.bad_records == 1
    assert h.source.gap_events == 5


async def test_ownership_follows_assignment_and_revocation() -> None:
    # Arrange: 4 partitions; the configured symbols map to them by murmur2
    h = Harness()
    h.source.nparts = 4
    mine = {p: {s for s in SYMS if partition_of(s, 4) == p} for p in range(4)}
    # Act
    await h.source._assigned({0, 1})
    after_assign = h.owned[-1]
    h.source._revoked({1})
    after_revoke = h.owned[-1]
    # Assert
    assert after_assign.symbols == frozenset(mine[0] | mine[1])
    assert after_assign.partitions == (0, 1)
    assert after_revoke.symbols == frozenset(mine[0])


async def test_symbols_seen_in_an_owned_partition_become_owned() -> None:
    # Arrange
    h = Harness()
    h.source.nparts = 4
    await h.source._assigned({0, 1, 2, 3})
    # Act: a symbol nobody configured arrives
    h.source._ingest(2, [tick("BRK.B", 1, 1)])
    # Assert
    assert h.owned[-1].symbols is not None
    assert "BRK.B" in h.owned[-1].symbols


async def test_start_announces_that_nothing_is_owned_yet() -> None:
    # Arrange
    h = Harness()
    # Act
    h.source._announce()
    # Assert
    assert h.owned == [Ownership(owner="kafka", symbols=frozenset(), partitions=())]


def test_source_section_is_validated_with_the_key_named() -> None:
    with pytest.raises(ConfigError, match=r"sources\.kafka\.start_from"):
        load_config(environ={}, overrides={"sources": {"kafka": {"start_from": "middle"}}})


def test_default_topic_follows_the_kafka_prefix() -> None:
    # Arrange
    cfg = load_config(environ={}, overrides={"kafka": {"topic_prefix": "desk1"}})
    ctx = SourceContext(config=cfg, bus=Bus(), symbols=Symbols(), metrics=Metrics())
    # Act
    src = KafkaSource(ctx, KafkaSourceConfig())
    # Assert
    assert src.topic == "desk1.ticks"
    assert src.live is False  # bars close on event time by default
