"""In-process fan-out of event batches.

Two ways to listen:

- :meth:`Bus.attach` registers a synchronous callback, called inline by ``publish`` for every
  item, in order. It is lossless, so it is for components that must not lose data (the engine,
  the Kafka and store sinks); the callback must be quick (append to a buffer or spool) and
  never block.
- :meth:`Bus.subscribe` returns a :class:`Subscription` with a bounded queue, for consumers that
  may be slow (GraphQL subscribers, the dashboard). A full queue is first *conflated* (by the
  subscription's conflater, e.g. "latest quote per symbol" or "merge trade batches"); if it is
  still full, the subscription is closed with a clear reason and counted. A slow subscriber
  never stalls ingestion.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Topic(enum.StrEnum):
    """Topics on the bus. ``raw.*`` carry what sources produced, before the engine."""

    RAW_TRADES = "raw.trades"  # TradeBatch from sources
    RAW_QUOTES = "raw.quotes"  # QuoteBatch from sources
    RAW_BOOK = "raw.book"  # BookDeltaBatch from sources
    TRADES = "trades"  # TradeBatch accepted by the engine (rejects removed)
    QUOTES = "quotes"  # QuoteBatch: top of book of symbols whose book changed
    BOOK = "book"  # BookDeltaBatch accepted by the engine
    BARS = "bars"  # BarBatch (final and forming) of any interval
    SIGNALS = "signals"  # SignalBatch
    INDICATORS = "indicators"  # IndicatorBatch at bar close / forming


Conflater = Callable[[list[Any]], list[Any]]


class SubscriptionClosed(Exception):  # noqa: N818 - reads as an event, like StopIteration
    """Raised by :meth:`Subscription.get` once the subscription is closed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SubscriptionStats:
    """Counters of one subscription, for /metrics and status."""

    delivered: int = 0
    conflated: int = 0
    dropped: bool = False


class Subscription:
    """A bounded queue of items from one or more topics. Iterate it with ``async for``."""

    def __init__(
        self,
        bus: Bus,
        topics: Sequence[str],
        *,
        name: str,
        maxsize: int,
        conflate: Conflater | None,
    ) -> None:
        self.name = name
        self.topics = tuple(topics)
        self.maxsize = maxsize
        self._bus = bus
        self._conflate = conflate
        self._items: collections.deque[Any] = collections.deque()
        self._ready = asyncio.Event()
        self._closed_reason: str | None = None
        self.stats = SubscriptionStats()

    @property
    def closed(self) -> bool:
        """Whether the subscription no longer receives items."""
        return self._closed_reason is not None

    @property
    def close_reason(self) -> str | None:
        """Why the subscription was closed, or None while open."""
        return self._closed_reason

    def qsize(self) -> int:
        """Return the number of queued items."""
        return len(self._items)

    def _offer(self, item: Any) -> None:
        if self._closed_reason is not None:
            return
        self._items.append(item)
        if len(self._items) > self.maxsize:
            if self._conflate is not None:
                before = len(self._items)
                merged = self._conflate(list(self._items))
                self._items = collections.deque(merged)
                self.stats.conflated += before - len(self._items)
            if len(self._items) > self.maxsize:
                self.stats.dropped = True
                self._bus._count_drop(self)
                self.close(
                    f"slow consumer: more than {self.maxsize} messages behind "
                    f"on {', '.join(self.topics)}"
                )
                return
        self._ready.set()

    async def get(self) -> Any:
        """Return the next item, waiting for one.

        Raises
        ------
        SubscriptionClosed
            Once closed (after the queued items were consumed only if closed normally).
        """
        while not self._items:
            if self._closed_reason is not None:
                raise SubscriptionClosed(self._closed_reason)
            self._ready.clear()
            await self._ready.wait()
        if self.stats.dropped:
            raise SubscriptionClosed(self._closed_reason or "dropped")
        self.stats.delivered += 1
        return self._items.popleft()

    def get_all_nowait(self) -> list[Any]:
        """Return and remove everything queued (possibly nothing)."""
        items = list(self._items)
        self._items.clear()
        self.stats.delivered += len(items)
        return items

    def close(self, reason: str = "closed") -> None:
        """Stop receiving items; a waiting ``get`` raises SubscriptionClosed."""
        if self._closed_reason is None:
            self._closed_reason = reason
            self._bus._remove(self)
            if self.stats.dropped:
                self._items.clear()
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                yield await self.get()
            except SubscriptionClosed:
                return

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Callback:
    name: str
    fn: Callable[[Any], None]
    errors: int = 0


@dataclass
class BusStats:
    """Bus-wide counters."""

    published: collections.Counter[str] = field(default_factory=collections.Counter)
    dropped_subscribers: collections.Counter[str] = field(default_factory=collections.Counter)
    callback_errors: collections.Counter[str] = field(default_factory=collections.Counter)


class Bus:
    """Publish/subscribe by topic name, in one event loop thread."""

    def __init__(self, *, default_maxsize: int = 256) -> None:
        self.default_maxsize = default_maxsize
        self._callbacks: dict[str, list[_Callback]] = collections.defaultdict(list)
        self._subs: dict[str, list[Subscription]] = collections.defaultdict(list)
        self.stats = BusStats()

    # ------------------------------------------------------------------ publish side
    def publish(self, topic: str, item: Any) -> None:
        """Deliver ``item`` to every callback (inline, in order) and every subscription."""
        self.stats.published[topic] += 1
        for cb in self._callbacks.get(topic, ()):
            try:
                cb.fn(item)
            except Exception:
                # A failing lossless consumer is a bug or an outage it must handle itself;
                # log it loudly with context, count it, and keep the others running.
                cb.errors += 1
                self.stats.callback_errors[cb.name] += 1
                log.exception("bus callback %r failed on topic %r", cb.name, topic)
        subs = self._subs.get(topic)
        if subs:
            for sub in tuple(subs):
                sub._offer(item)

    def has_listeners(self, topic: str) -> bool:
        """Whether anything listens on ``topic`` (lets producers skip building items)."""
        return bool(self._callbacks.get(topic) or self._subs.get(topic))

    # ------------------------------------------------------------------ listen side
    def attach(
        self, topic: str, callback: Callable[[Any], None], *, name: str
    ) -> Callable[[], None]:
        """Call ``callback(item)`` synchronously for every item on ``topic``; return a detacher."""
        entry = _Callback(name, callback)
        self._callbacks[topic].append(entry)

        def detach() -> None:
            lst = self._callbacks.get(topic, [])
            if entry in lst:
                lst.remove(entry)

        return detach

    def subscribe(
        self,
        topics: str | Iterable[str],
        *,
        name: str,
        maxsize: int | None = None,
        conflate: Conflater | None = None,
    ) -> Subscription:
        """Return a bounded subscription to one or more topics."""
        names = [topics] if isinstance(topics, str) else list(topics)
        sub = Subscription(
            self,
            names,
            name=name,
            maxsize=maxsize or self.default_maxsize,
            conflate=conflate,
        )
        for t in names:
            self._subs[t].append(sub)
        return sub

    def subscriptions(self) -> list[Subscription]:
        """Return the open subscriptions (each once)."""
        seen: dict[int, Subscription] = {}
        for subs in self._subs.values():
            for s in subs:
                seen[id(s)] = s
        return list(seen.values())

    def close_all(self, reason: str = "server shutting down") -> None:
        """Close every subscription (at shutdown)."""
        for sub in self.subscriptions():
            sub.close(reason)

    def _remove(self, sub: Subscription) -> None:
        for t in sub.topics:
            lst = self._subs.get(t)
            if lst and sub in lst:
                lst.remove(sub)

    def _count_drop(self, sub: Subscription) -> None:
        self.stats.dropped_subscribers[sub.name.split(":", 1)[0]] += 1
        log.warning("dropped slow subscriber %s (%d queued)", sub.name, sub.qsize())
