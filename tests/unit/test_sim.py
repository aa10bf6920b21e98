"""The simulated market: deterministic, consistent books, trades at the touch."""

from __future__ import annotations

import numpy as np

from tickserver import _core


def _sim(seed: int = 1) -> _core.MarketSim:
    return _core.MarketSim(seed, [0, 1], [190.0, 410.0], [0.01, 0.01])


def test_sim_is_deterministic_for_a_seed() -> None:
    a_tr, a_de = _sim(5).generate(5000, 0, 1000)
    b_tr, b_de = _sim(5).generate(5000, 0, 1000)
    c_tr, _ = _sim(6).generate(5000, 0, 1000)
    assert all(np.array_equal(a_tr[k], b_tr[k]) for k in a_tr)
    assert all(np.array_equal(a_de[k], b_de[k]) for k in a_de)
    assert not np.array_equal(a_tr["price"], c_tr["price"])


def test_sim_deltas_pass_the_checked_book_and_trades_print_at_the_touch() -> None:
    # Arrange
    sim = _sim()
    books = [_core.OrderBook(0.01), _core.OrderBook(0.01)]
    for i, b in enumerate(books):
        b.snapshot(*sim.book(i), seq=0)
    # Act / Assert: replay events one by one, checking every trade against the book
    trades, deltas = sim.generate(20_000, 0, 1000)
    di = 0
    for j in range(len(trades["price"])):
        ts = trades["ts_event"][j]
        while di < len(deltas["price"]) and deltas["ts_event"][di] < ts:
            b = books[int(deltas["symbol_id"][di])]
            b.apply(int(deltas["side"][di]), float(deltas["price"][di]), float(deltas["size"][di]))
            di += 1
        b = books[int(trades["symbol_id"][j])]
        assert b.best_bid_px < b.best_ask_px
        assert b.best_bid_px <= trades["price"][j] <= b.best_ask_px
    assert sim.book_seq(0) > 0


def test_sim_prices_cluster_in_volatility() -> None:
    # Volatility clustering: absolute returns over blocks of 200 trades are positively
    # autocorrelated (per-trade changes are dominated by the bid-ask bounce).
    sim = _core.MarketSim(3, [0], [100.0], [0.01], trade_prob=0.5)
    trades, _ = sim.generate(1_000_000, 0, 1000)
    r = np.abs(np.diff(trades["price"][::200]))
    r = r - r.mean()
    acf = float(np.dot(r[:-1], r[1:]) / np.dot(r, r))
    assert acf > 0.1
