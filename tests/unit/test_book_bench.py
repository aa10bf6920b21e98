"""``tickserver bench book``: the smoke run's JSON shape and its state-equality checkpoints.

Timings are not asserted (shared machines); what is pinned is that every system ran, that
every checkpoint compared its book with the reference, and that a differing book is an error.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tickserver.benchmarks import book as bench_book
from tickserver.benchmarks._book_stream import ADD, DELETE, make_stream

SYSTEMS = {
    "tickserver-batch",
    "tickserver-batch-unchecked",
    "tickserver-apply",
    "nautilus",
    "nautilus+build",
    "order-book",
    "sortedcontainers",
}


@pytest.mark.bench
def test_bench_book_quick_json_reports_every_system_after_verified_checkpoints() -> None:
    # Act
    proc = subprocess.run(
        [sys.executable, "-m", "tickserver", "bench", "book", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["bench"], out["unit"]) == ("book", "ns")
    bbo = {"tickserver-apply", "nautilus", "order-book", "sortedcontainers"}
    keys = {f"{s}/l2_delta" for s in SYSTEMS} | {f"{s}/l2_delta+bbo" for s in bbo}
    assert set(out["results"]) == keys | {"nautilus/delta_build"}
    assert all(isinstance(v, float) and v > 0 for v in out["results"].values())
    checkpoints = out["extra"]["checkpoints"]
    assert checkpoints["expected_per_system"] == 10
    assert checkpoints["verified"] == dict.fromkeys(keys, 10)


def test_bench_book_check_fails_loudly_on_a_differing_book() -> None:
    # Arrange
    stream = make_stream(2_000, checkpoint_every=1_000)
    bids, asks = stream.expected[0]
    wrong = (bids, ((asks[0][0], asks[0][1] + 100.0), *asks[1:]))
    # Act / Assert
    with pytest.raises(bench_book.BookMismatchError, match="asks differ from the reference"):
        bench_book.check_top("x", wrong, stream.expected[0], 1_000)


def test_bench_book_run_system_stops_at_the_first_checkpoint_a_book_fails() -> None:
    # Arrange: a "system" whose book drops every delete.
    stream = make_stream(3_000, checkpoint_every=1_000)
    systems = bench_book._sorted_dict(stream)
    lossy = bench_book.System(
        "lossy",
        systems[0].new,
        lambda book, lo, hi: (
            lambda: [
                book.apply(int(s), float(p), float(z))
                for s, p, z in zip(
                    stream.side[lo:hi], stream.price[lo:hi], stream.size[lo:hi], strict=True
                )
                if z
            ]
        ),
        systems[0].top,
    )
    # Act / Assert
    with pytest.raises(bench_book.BookMismatchError, match="lossy"):
        bench_book.run_system(lossy, stream)


def test_book_stream_is_consistent_and_never_crossed() -> None:
    # Arrange
    stream = make_stream(50_000, checkpoint_every=5_000)
    bids: dict[int, float] = {}
    asks: dict[int, float] = {}
    # Act / Assert: replaying the stream on dicts never deletes an absent level, never adds an
    # existing one, never crosses, and reproduces every checkpoint.
    for i, (side, ticks, size, action) in enumerate(
        zip(stream.side, stream.ticks, stream.size, stream.action, strict=True)
    ):
        levels = bids if side == 0 else asks
        t = int(ticks)
        if action == DELETE:
            del levels[t]
        else:
            assert (t in levels) == (action != ADD)
            levels[t] = float(size)
        if bids and asks:
            assert max(bids) < min(asks)
        if (i + 1) % stream.checkpoint_every == 0:
            want = stream.expected[(i + 1) // stream.checkpoint_every - 1]
            assert tuple(sorted(bids.items(), reverse=True)[:10]) == want[0]
            assert tuple(sorted(asks.items())[:10]) == want[1]
    assert 40 <= stream.mean_depth <= 50
