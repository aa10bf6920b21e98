"""The L2 order book through its Python API: behaviour pinned by examples, argument errors."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from tickserver._core import BookError, OrderBook, book_status_name

BID, ASK = 0, 1


def _book() -> OrderBook:
    """Bids 100.00 (5), 99.99 (7); asks 100.02 (3), 100.03 (4); tick 0.01."""
    book = OrderBook(0.01)
    book.apply(BID, 100.00, 5.0)
    book.apply(BID, 99.99, 7.0)
    book.apply(ASK, 100.02, 3.0)
    book.apply(ASK, 100.03, 4.0)
    return book


def _state(book: OrderBook) -> tuple[object, ...]:
    top = tuple(a.tolist() for a in book.top(1_000))
    return (*top, book.last_seq, book.gaps, book.snapshots)


def _deltas(
    rows: list[tuple[int, float, float, int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    side, price, size, seq = zip(*rows, strict=True)
    return (
        np.array(side, dtype=np.uint8),
        np.array(price, dtype=np.float64),
        np.array(size, dtype=np.float64),
        np.array(seq, dtype=np.uint64),
    )


def test_book_reports_best_levels_and_top_of_book_stats() -> None:
    # Arrange
    book = _book()
    # Act
    bid_px, bid_sz, ask_px, ask_sz = book.top(10)
    # Assert
    assert bid_px.tolist() == [100.00, 99.99]
    assert bid_sz.tolist() == [5.0, 7.0]
    assert ask_px.tolist() == [100.02, 100.03]
    assert ask_sz.tolist() == [3.0, 4.0]
    assert (book.best_bid_px, book.best_bid_sz) == (100.00, 5.0)
    assert (book.best_ask_px, book.best_ask_sz) == (100.02, 3.0)
    assert book.mid == pytest.approx(100.01)
    assert book.spread == pytest.approx(0.02)
    assert book.microprice == pytest.approx((100.00 * 3 + 100.02 * 5) / 8)
    assert book.imbalance == pytest.approx(0.25)
    assert (book.bid_depth, book.ask_depth) == (2, 2)


def test_book_stats_are_nan_while_a_side_is_empty() -> None:
    # Arrange
    book = OrderBook(0.01)
    # Act
    book.apply(BID, 10.0, 1.0)
    # Assert
    assert book.best_bid_px == 10.0
    for value in (book.best_ask_px, book.mid, book.spread, book.microprice, book.imbalance):
        assert math.isnan(value)


def test_book_top_with_a_huge_depth_returns_only_existing_levels() -> None:
    # Arrange
    book = _book()
    # Act
    bid_px, _, ask_px, _ = book.top(2**62)
    # Assert
    assert (len(bid_px), len(ask_px)) == (2, 2)


def test_book_rejects_crossed_delta() -> None:
    # Arrange
    book = _book()
    before = _state(book)
    # Act / Assert
    with pytest.raises(BookError, match="cross"):
        book.apply(BID, 100.03, 1.0)
    assert _state(book) == before


def test_book_rejects_locked_delta_as_crossed() -> None:
    # Arrange
    book = _book()
    before = _state(book)
    # Act / Assert
    with pytest.raises(BookError, match="cross"):
        book.apply(ASK, 100.00, 1.0)
    assert _state(book) == before


@pytest.mark.parametrize(
    ("side", "price", "size", "message"),
    [
        (2, 99.0, 1.0, "side must be 0"),
        (BID, math.nan, 1.0, "price must be finite"),
        (BID, math.inf, 1.0, "price must be finite"),
        (BID, -99.0, 1.0, "price must be finite"),
        (BID, 0.0, 1.0, "price must be finite"),
        (BID, 99.0, -1.0, "size must be finite"),
        (BID, 99.0, math.nan, "size must be finite"),
        (BID, 99.005, 1.0, "not a multiple of the tick size"),
        (BID, 98.0, 0.0, "not in the book"),
    ],
)
def test_book_rejects_bad_delta_with_a_clear_error_and_no_change(
    side: int, price: float, size: float, message: str
) -> None:
    # Arrange
    book = _book()
    before = _state(book)
    # Act / Assert
    with pytest.raises(BookError, match=message):
        book.apply(side, price, size)
    assert _state(book) == before


def test_book_error_is_a_value_error() -> None:
    assert issubclass(BookError, ValueError)


def test_book_rejects_half_tick_price_a_million_ticks_up() -> None:
    # Arrange: 100.00005 is half a tick off on a 1e-4 tick.
    book = OrderBook(0.0001)
    # Act / Assert
    with pytest.raises(BookError, match="tick size"):
        book.apply(BID, 100.00005, 1.0)
    assert book.bid_depth == 0


def test_book_accepts_on_tick_price_with_floating_point_noise() -> None:
    # Arrange
    book = OrderBook(0.01)
    # Act
    book.apply(BID, 0.1 + 0.2, 1.0)
    # Assert: the price is returned as given, not as ticks * tick_size.
    assert book.best_bid_px == 0.1 + 0.2


def test_book_rejects_bad_tick_size() -> None:
    with pytest.raises(ValueError, match="tick_size"):
        OrderBook(0.0)


def test_book_counts_sequence_gap_and_rejects_stale_sequence() -> None:
    # Arrange
    book = OrderBook(0.01)
    book.apply(BID, 10.0, 1.0, seq=1)
    # Act
    gap = book.apply(BID, 10.0, 2.0, seq=5)
    # Assert
    assert gap == 1
    assert (book.last_seq, book.gaps) == (5, 1)
    with pytest.raises(BookError, match="stale"):
        book.apply(BID, 10.0, 3.0, seq=5)
    assert book.best_bid_sz == 2.0


def test_book_seq_zero_is_unsequenced() -> None:
    # Arrange
    book = OrderBook(0.01)
    book.apply(BID, 10.0, 1.0, seq=3)
    # Act
    status = book.apply(BID, 10.0, 2.0, seq=0)
    # Assert
    assert status == 0
    assert (book.last_seq, book.gaps) == (3, 0)


def test_book_snapshot_replaces_levels_and_resyncs_sequence() -> None:
    # Arrange
    book = _book()
    book.apply(BID, 99.0, 1.0, seq=10)
    # Act
    book.snapshot(
        np.array([9.99, 10.00]), np.array([1.0, 2.0]), np.array([10.01]), np.array([3.0]), seq=20
    )
    # Assert
    assert book.top(5)[0].tolist() == [10.00, 9.99]
    assert (book.last_seq, book.snapshots) == (20, 1)
    assert book.apply(BID, 10.00, 4.0, seq=21) == 0


def test_book_snapshot_rejects_duplicate_price_and_keeps_the_book() -> None:
    # Arrange
    book = _book()
    before = _state(book)
    # Act / Assert
    with pytest.raises(BookError, match="twice"):
        book.snapshot(np.array([10.0, 10.0]), np.array([1.0, 0.0]), np.array([]), np.array([]))
    assert _state(book) == before


def test_book_snapshot_rejects_crossed_book() -> None:
    # Arrange
    book = _book()
    before = _state(book)
    # Act / Assert
    with pytest.raises(BookError, match="cross"):
        book.snapshot(np.array([10.01]), np.array([1.0]), np.array([10.01]), np.array([1.0]))
    assert _state(book) == before


def test_book_clear_keeps_sequence() -> None:
    # Arrange
    book = _book()
    book.apply(BID, 99.0, 1.0, seq=4)
    # Act
    book.clear()
    # Assert
    assert (book.bid_depth, book.ask_depth, book.last_seq) == (0, 0, 4)


def test_book_batch_reports_rejected_rows_and_applies_the_rest() -> None:
    # Arrange
    book = _book()
    rows = [(BID, 100.01, 1.0, 1), (BID, 100.02, 1.0, 2), (ASK, 100.04, 2.0, 2), (ASK, 1.0, 0.0, 3)]
    # Act
    rejected, reasons = book.apply_deltas(*_deltas(rows))
    # Assert
    assert rejected.dtype == np.int64
    assert reasons.dtype == np.uint8
    assert rejected.tolist() == [1, 3]
    assert [book_status_name(int(r)) for r in reasons] == [
        book_status_name(3),
        book_status_name(8),
    ]
    assert book.best_bid_px == 100.01
    assert book.top(5)[2].tolist() == [100.02, 100.03, 100.04]
    assert book.last_seq == 2


def test_book_unchecked_batch_applies_pre_validated_rows() -> None:
    # Arrange
    book = _book()
    rows = [(BID, 100.01, 1.0, 1), (ASK, 100.02, 0.0, 2), (BID, 99.99, 0.0, 3)]
    # Act
    rejected, reasons = book.apply_deltas(*_deltas(rows), checked=False)
    # Assert
    assert (len(rejected), len(reasons)) == (0, 0)
    assert book.top(5)[0].tolist() == [100.01, 100.00]
    assert book.top(5)[2].tolist() == [100.03]
    assert book.last_seq == 3


@pytest.mark.parametrize("argument", ["side", "price", "size", "seq"])
def test_book_batch_wrong_dtype_is_a_type_error_naming_the_argument(argument: str) -> None:
    # Arrange
    book = _book()
    cols = dict(zip(["side", "price", "size", "seq"], _deltas([(BID, 99.0, 1.0, 1)]), strict=True))
    cols[argument] = cols[argument].astype(np.int32)
    # Act / Assert
    with pytest.raises(TypeError, match=f"'{argument}' must have dtype"):
        book.apply_deltas(**cols)


@pytest.mark.parametrize("argument", ["side", "price", "size", "seq"])
def test_book_batch_wrong_shape_is_a_value_error_naming_the_argument(argument: str) -> None:
    # Arrange
    book = _book()
    cols = dict(zip(["side", "price", "size", "seq"], _deltas([(BID, 99.0, 1.0, 1)]), strict=True))
    cols[argument] = cols[argument].reshape(1, 1)
    # Act / Assert
    with pytest.raises(ValueError, match=f"'{argument}' must be 1-D"):
        book.apply_deltas(**cols)


@pytest.mark.parametrize("argument", ["price", "size", "seq"])
def test_book_batch_wrong_length_is_a_value_error_naming_the_argument(argument: str) -> None:
    # Arrange
    book = _book()
    rows = [(BID, 99.0, 1.0, 1), (BID, 98.0, 1.0, 2)]
    cols = dict(zip(["side", "price", "size", "seq"], _deltas(rows), strict=True))
    cols[argument] = cols[argument][:1]
    # Act / Assert
    with pytest.raises(ValueError, match=f"'{argument}' has 1 rows, expected 2"):
        book.apply_deltas(**cols)
    assert book.bid_depth == 2


def test_book_batch_strided_column_is_a_value_error_naming_the_argument() -> None:
    # Arrange
    book = _book()
    side, price, size, seq = _deltas([(BID, 99.0, 1.0, 1), (BID, 98.0, 1.0, 2)])
    wide = np.repeat(price, 2)[::2]
    # Act / Assert
    with pytest.raises(ValueError, match="'price' must be C-contiguous"):
        book.apply_deltas(side, wide, size, seq)


@pytest.mark.parametrize(("argument", "index"), [("bid_sz", 1), ("ask_sz", 3)])
def test_book_snapshot_wrong_length_names_the_argument(argument: str, index: int) -> None:
    # Arrange
    book = _book()
    cols = [np.array([10.0]), np.array([1.0]), np.array([10.01]), np.array([1.0])]
    cols[index] = np.array([1.0, 2.0])
    # Act / Assert
    with pytest.raises(ValueError, match=f"'{argument}' has 2 rows"):
        book.snapshot(*cols)


def test_book_snapshot_wrong_dtype_names_the_argument() -> None:
    # Arrange
    book = _book()
    # Act / Assert
    with pytest.raises(TypeError, match="'ask_px' must have dtype float64"):
        book.snapshot(np.array([10.0]), np.array([1.0]), np.array([10], dtype=np.int64), np.ones(1))


def test_book_status_names_describe_every_code() -> None:
    # Act
    names = [book_status_name(code) for code in range(11)]
    # Assert
    assert len(set(names)) == 11
    assert book_status_name(99) == "unknown"


def test_book_used_while_a_batch_runs_in_another_thread_raises_instead_of_racing() -> None:
    # Arrange: a worker applies batches (GIL released) until the main thread has seen the guard.
    book = _book()
    n = 200_000
    cols = (
        np.zeros(n, dtype=np.uint8),
        np.round(99.0 - np.arange(n) % 50 * 0.01, 2),
        np.ones(n),
        np.zeros(n, dtype=np.uint64),
    )
    seen = threading.Event()

    def worker() -> None:
        while not seen.is_set():
            book.apply_deltas(*cols, checked=False)

    thread = threading.Thread(target=worker)
    message = ""
    thread.start()
    # Act
    try:
        for _ in range(1_000_000):
            try:
                _ = book.best_bid_px
            except RuntimeError as exc:
                message = str(exc)
                seen.set()
                break
    finally:
        seen.set()
        thread.join()
    # Assert
    assert "in use by apply_deltas in another thread" in message
    assert book.best_bid_px == 100.0
