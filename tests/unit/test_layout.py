"""Store layout: partition paths, part and compacted names, lineage."""

from __future__ import annotations

import pytest

from tickserver import layout


def test_layout_partition_dirs_put_bars_under_their_interval() -> None:
    assert layout.partition_dir("trades", "2026-01-05") == "type=trades/date=2026-01-05"
    assert (
        layout.partition_dir("bars", "2026-01-05", "1m") == "type=bars/interval=1m/date=2026-01-05"
    )
    assert layout.parse_partition("p/type=bars/interval=1m/date=2026-01-05/x.parquet") == (
        "bars",
        "1m",
        "2026-01-05",
    )
    assert layout.parse_partition("p/type=nope/date=2026-01-05/x") is None


def test_layout_rejects_bars_without_interval_and_unknown_types() -> None:
    with pytest.raises(ValueError, match="interval"):
        layout.partition_dir("bars", "2026-01-05")
    with pytest.raises(ValueError, match="unknown record type"):
        layout.partition_dir("candles", "2026-01-05")


def test_layout_part_names_are_deterministic_and_round_trip() -> None:
    name = layout.part_name("ab12cd", 7, 42)

    assert name == layout.part_name("ab12cd", 7, 42)
    assert name == "part-ab12cd-00000000000000000007-00000000000000000042.parquet"
    assert layout.parse_part_name(f"x/y/{name}") == ("ab12cd", 7, 42)
    assert layout.parse_part_name("compact-AAPL.parquet") is None


def test_layout_compacted_names_survive_symbols_with_slashes() -> None:
    name = layout.compacted_name("BRK/B")

    assert "/" not in name
    assert layout.parse_compacted_name(f"k/{name}") == "BRK/B"


def test_layout_dates_are_utc_days() -> None:
    assert layout.date_of_ns(0) == "1970-01-01"
    assert layout.date_of_ns(86_400_000_000_000 - 1) == "1970-01-01"
    assert layout.date_of_day(layout.day_index("2026-03-01") - 1) == "2026-02-28"


def test_layout_lineage_merges_ranges_and_answers_membership() -> None:
    lin = layout.lineage_add({}, "w1", 0, 9)
    lin = layout.lineage_add(lin, "w1", 10, 19)
    lin = layout.lineage_add(lin, "w1", 30, 39)
    lin = layout.lineage_add(lin, "w2", 5, 5)

    assert lin == {"w1": [[0, 19], [30, 39]], "w2": [[5, 5]]}
    assert layout.lineage_has(lin, "w1", 12, 15)
    assert not layout.lineage_has(lin, "w1", 15, 30)
    assert not layout.lineage_has(lin, "w3", 0, 0)
    assert layout.lineage_loads(layout.lineage_dumps(lin)) == lin
    assert layout.lineage_loads(None) == {}
