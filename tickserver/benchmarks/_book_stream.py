"""A realistic, consistent L2 delta stream for the book benchmark (and its oracle).

The stream starts from an empty book, builds ~45 levels per side, then mostly updates sizes
near the touch, with some inserts (inside the spread, in holes near the touch, behind the
worst level) and deletes (near the touch, and trimming the worst level). It is never crossed,
never empties a side, and every delete names a level that exists, so every system under test
can apply it as is. The generator keeps its own book and records the expected top levels
every ``checkpoint_every`` deltas: the benchmark compares every system against those.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

ADD, UPDATE, DELETE = 0, 1, 2

TopLevels = tuple[tuple[tuple[int, float], ...], tuple[tuple[int, float], ...]]
"""(bids, asks), best first, each level (ticks, size)."""


@dataclass
class BookStream:
    """Columnar deltas plus the expected top levels at each checkpoint."""

    tick_size: float
    side: npt.NDArray[np.uint8]
    price: npt.NDArray[np.float64]
    size: npt.NDArray[np.float64]
    seq: npt.NDArray[np.uint64]
    action: npt.NDArray[np.uint8]
    ticks: npt.NDArray[np.int64]
    checkpoint_every: int
    top_n: int
    expected: list[TopLevels] = field(default_factory=list)
    """``expected[i]`` is the book after ``(i + 1) * checkpoint_every`` deltas."""
    mean_depth: float = 0.0

    def __len__(self) -> int:
        return int(self.side.shape[0])


def _geometric(rng: random.Random, p: float) -> int:
    """0, 1, 2, … with P(k) = p (1 - p)^k."""
    k = 0
    while rng.random() >= p:
        k += 1
    return k


def make_stream(
    n: int,
    *,
    seed: int = 20240601,
    levels: int = 45,
    tick_size: float = 0.01,
    start_ticks: int = 10_000,
    checkpoint_every: int = 10_000,
    top_n: int = 10,
) -> BookStream:
    """Generate ``n`` deltas (the first ``2 * levels`` build the book from empty)."""
    rng = random.Random(seed)
    # Each side keeps its level prices in ascending ticks; the best bid is bids[-1], the best
    # ask asks[0]. ``near`` lists a side's ticks from the touch outward.
    bids: list[int] = []
    asks: list[int] = []
    bid_sz: dict[int, float] = {}
    ask_sz: dict[int, float] = {}
    side_a = np.empty(n, dtype=np.uint8)
    ticks_a = np.empty(n, dtype=np.int64)
    size_a = np.empty(n, dtype=np.float64)
    action_a = np.empty(n, dtype=np.uint8)
    expected: list[TopLevels] = []
    depth_sum = 0

    def new_size() -> float:
        return float(rng.randint(1, 50) * 100)

    # Build: levels per side from the touch outward, with ~10% holes.
    build: list[tuple[int, int]] = []
    t = start_ticks
    while len(build) < levels:
        if rng.random() < 0.9:
            build.append((0, t))
        t -= 1
    t = start_ticks + 1
    while len(build) < 2 * levels:
        if rng.random() < 0.9:
            build.append((1, t))
        t += 1

    def at_rank(side: int, k: int) -> int:
        return bids[len(bids) - 1 - k] if side == 0 else asks[k]

    i = 0
    while i < n:
        if build:
            side, tk = build.pop(0)
            act = ADD
        else:
            side = 0 if rng.random() < 0.5 else 1
            book = bids if side == 0 else asks
            depth = len(book)
            # Keep each side near `levels`: inserts grow more likely when it is thin.
            p_change = 0.25
            p_insert = min(0.9, max(0.1, 0.5 + (levels - depth) / 10.0))
            r = rng.random()
            if r >= p_change:
                act = UPDATE
                tk = at_rank(side, min(_geometric(rng, 0.4), depth - 1))
            elif r < p_change * p_insert or depth < levels // 2:
                act = ADD
                tk = _pick_insert(rng, side, bids, asks, bid_sz if side == 0 else ask_sz)
            else:
                act = DELETE
                u = rng.random()
                k = depth - 1 if u < 0.4 else min(_geometric(rng, 0.5), depth - 1)
                tk = at_rank(side, k)
        book = bids if side == 0 else asks
        sizes = bid_sz if side == 0 else ask_sz
        if act == DELETE:
            del book[bisect_left(book, tk)]
            del sizes[tk]
            sz = 0.0
        else:
            sz = new_size()
            if act == ADD:
                insort(book, tk)
            sizes[tk] = sz
        side_a[i] = side
        ticks_a[i] = tk
        size_a[i] = sz
        action_a[i] = act
        depth_sum += len(bids) + len(asks)
        i += 1
        if i % checkpoint_every == 0:
            expected.append(
                (
                    tuple((b, bid_sz[b]) for b in reversed(bids[-top_n:])),
                    tuple((a, ask_sz[a]) for a in asks[:top_n]),
                )
            )
    price = np.round(ticks_a * tick_size, 10)
    return BookStream(
        tick_size=tick_size,
        side=side_a,
        price=price,
        size=size_a,
        seq=np.arange(1, n + 1, dtype=np.uint64),
        action=action_a,
        ticks=ticks_a,
        checkpoint_every=checkpoint_every,
        top_n=top_n,
        expected=expected,
        mean_depth=depth_sum / max(1, 2 * n),
    )


def _pick_insert(
    rng: random.Random, side: int, bids: list[int], asks: list[int], present: dict[int, float]
) -> int:
    """A free price on ``side`` that does not cross: inside the spread, a hole, or the tail."""
    best_bid, best_ask = bids[-1], asks[0]
    u = rng.random()
    if u < 0.3 and best_ask - best_bid > 1:
        return rng.randint(best_bid + 1, best_ask - 1)
    if u < 0.45:  # a new worst level
        worst = bids[0] if side == 0 else asks[-1]
        step = 1 + _geometric(rng, 0.6)
        return worst - step if side == 0 else worst + step
    # A hole near the touch: walk outward from a geometric offset to the first free tick.
    off = _geometric(rng, 0.4)
    if side == 0:
        tk = best_bid - off
        while tk in present or tk >= best_ask:
            tk -= 1
    else:
        tk = best_ask + off
        while tk in present or tk <= best_bid:
            tk += 1
    return tk
