"""The bus: lossless callbacks, bounded subscriptions, conflation, dropping slow consumers."""

from __future__ import annotations

import asyncio

import pytest

from tickserver.bus import Bus, SubscriptionClosed


def test_attach_delivers_every_item_in_order_inline() -> None:
    # Arrange
    bus = Bus()
    seen: list[int] = []
    bus.attach("t", seen.append, name="sink")
    # Act
    for i in range(5):
        bus.publish("t", i)
    # Assert
    assert seen == [0, 1, 2, 3, 4]


def test_failing_callback_is_counted_and_does_not_stop_others() -> None:
    # Arrange
    bus = Bus()
    seen: list[int] = []

    def broken(_item: int) -> None:
        raise RuntimeError("boom")

    bus.attach("t", broken, name="broken")
    bus.attach("t", seen.append, name="ok")
    # Act
    bus.publish("t", 1)
    # Assert
    assert seen == [1]
    assert bus.stats.callback_errors["broken"] == 1


async def test_subscription_receives_items_from_several_topics() -> None:
    # Arrange
    bus = Bus()
    sub = bus.subscribe(["a", "b"], name="s")
    # Act
    bus.publish("a", 1)
    bus.publish("b", 2)
    # Assert
    assert await sub.get() == 1
    assert await sub.get() == 2


async def test_full_queue_is_conflated_before_anything_is_dropped() -> None:
    # Arrange: keep only the latest item when the queue overflows
    bus = Bus()
    sub = bus.subscribe("t", name="s", maxsize=3, conflate=lambda items: items[-1:])
    # Act
    for i in range(10):
        bus.publish("t", i)
    # Assert
    assert not sub.closed
    assert sub.get_all_nowait() == [9]
    assert sub.stats.conflated > 0


async def test_slow_subscriber_is_dropped_with_reason_and_others_keep_receiving() -> None:
    # Arrange
    bus = Bus()
    slow = bus.subscribe("t", name="slow:1", maxsize=2)
    fast = bus.subscribe("t", name="fast:1", maxsize=100)
    # Act
    for i in range(5):
        bus.publish("t", i)
    # Assert
    assert slow.closed
    assert "slow consumer" in (slow.close_reason or "")
    with pytest.raises(SubscriptionClosed):
        await slow.get()
    assert fast.get_all_nowait() == [0, 1, 2, 3, 4]
    assert bus.stats.dropped_subscribers["slow"] == 1


async def test_closed_subscription_wakes_a_waiting_reader() -> None:
    # Arrange
    bus = Bus()
    sub = bus.subscribe("t", name="s")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    # Act
    sub.close("bye")
    # Assert
    with pytest.raises(SubscriptionClosed, match="bye"):
        await waiter
    assert not bus.has_listeners("t")
