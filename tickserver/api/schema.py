"""The GraphQL schema (strawberry). Names here are the contract clients rely on.

Query: ``symbols``, ``quote``, ``quotes``, ``ticks``, ``bars``, ``book``, ``indicators``,
``signals``, ``status``. Subscription: ``ticks``, ``quotes``, ``bars``, ``signals``, ``book``.
Intervals are the strings ``tick``, ``1s``, ``1m``, ``5m``, ``1h``, ``1d``. Errors carry a
machine-readable ``extensions.code`` (``UNKNOWN_SYMBOL``, ``UNKNOWN_INTERVAL``, …).

Subscriptions here are the reference implementation (strawberry executes them per
subscriber). The WebSocket endpoint serves the hot ones through a fan-out that executes a
message once for every subscriber with the same operation (see ``tickserver.api.ws``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, NewType, TypeVar, cast

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.utils.str_converters import to_camel_case

from tickserver._version import __version__
from tickserver.api.market import (
    ApiError,
    MarketView,
    bars_of_batch,
    signals_of_batch,
    trades_of_batch,
)
from tickserver.bus import SubscriptionClosed, Topic

if TYPE_CHECKING:
    from tickserver.app import AppState

T = TypeVar("T")

Long = NewType("Long", int)
"""A 64-bit integer (sequence numbers, counts); GraphQL's Int is only 32 bits."""

SCALARS = {
    Long: strawberry.scalar(
        name="Long",
        description="A 64-bit integer (sequence numbers, counts), serialised as a JSON number.",
        serialize=int,
        parse_value=int,
    )
}


@dataclass
class Context:
    """Per-request context: the app state and the market view."""

    state: AppState
    market: MarketView


def ctx(info: Info[Context, Any]) -> Context:
    """The typed context of a resolver."""
    return info.context


@cache
def _key_map(cls: type) -> dict[str, str]:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    return {to_camel_case(f.python_name): f.python_name for f in definition.fields}


def from_row(cls: Callable[..., T], row: dict[str, Any]) -> T:
    """Build a strawberry object from a row keyed by GraphQL field names."""
    keys = _key_map(cls)
    return cls(**{keys[k]: v for k, v in row.items() if k in keys})


def api_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn :class:`ApiError` into a GraphQL error with ``extensions.code``."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from None

    return wrapper


# ----------------------------------------------------------------------------- types


@strawberry.type(description="A trade.")
class Tick:
    symbol: str
    ts: str = strawberry.field(description="ISO-8601 UTC with nanoseconds")
    ts_ms: float = strawberry.field(description="Epoch milliseconds")
    price: float
    size: float
    seq: Long = strawberry.field(description="The source's sequence number")
    side: str = strawberry.field(description="Aggressor side: buy, sell or unknown")


@strawberry.type(description="Last trade and top of book, with the day's figures.")
class Quote:
    symbol: str
    ts: str | None
    ts_ms: float | None
    last: float | None
    last_size: float | None
    bid: float | None
    bid_size: float | None
    ask: float | None
    ask_size: float | None
    mid: float | None
    spread: float | None
    open: float | None = strawberry.field(description="Open of the current 1d bar")
    high: float | None
    low: float | None
    volume: float | None = strawberry.field(description="Volume of the current 1d bar")
    change: float | None = strawberry.field(description="last - open")
    change_pct: float | None


@strawberry.type(description="An OHLCV bar covering [ts, ts + interval).")
class Bar:
    symbol: str
    interval: str
    ts: str
    ts_ms: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None
    trades: Long
    final: bool = strawberry.field(description="False while the bar is still forming")


@strawberry.type
class Level:
    price: float
    size: float


@strawberry.type(description="L2 order book: best levels first.")
class Book:
    symbol: str
    ts: str | None
    ts_ms: float | None
    bids: list[Level]
    asks: list[Level]
    mid: float | None
    spread: float | None
    microprice: float | None
    imbalance: float | None
    seq: Long


@strawberry.type(description="Latest value of one indicator output.")
class IndicatorValue:
    name: str
    value: float | None
    ready: bool = strawberry.field(description="False during warm-up")
    provisional: bool = strawberry.field(description="Includes the still-forming bar")
    ts: str | None
    ts_ms: float | None


@strawberry.type(description="A trading signal that fired.")
class Signal:
    symbol: str
    ts: str
    ts_ms: float
    rule: str
    interval: str
    direction: str = strawberry.field(description="up (bullish) or down (bearish)")
    value: float | None


@strawberry.type(description="Ticks or bars of a time range, from the store and the hot ring.")
class History:
    symbol: str
    interval: str
    ticks: list[Tick] = strawberry.field(description="Trades (interval tick), oldest first")
    bars: list[Bar] = strawberry.field(description="Closed bars (bar intervals), oldest first")
    truncated: bool = strawberry.field(description="More rows match; ask again from the last ts")
    cold_rows: Long = strawberry.field(description="Rows read from the store")
    hot_rows: Long = strawberry.field(description="Rows read from memory")


@strawberry.type
class ComponentStatus:
    name: str
    kind: str
    state: str
    reason: str
    details: JSON


@strawberry.type
class Status:
    version: str
    uptime_s: float
    ready: bool
    reasons: list[str]
    sources: list[ComponentStatus]
    sinks: list[ComponentStatus]
    engine: ComponentStatus
    owned_symbols: list[str] | None = strawberry.field(
        description="Symbols this instance serves (scale-out), or null for all"
    )
    counters: JSON
    subscribers: int
    dropped_subscribers: int


def _component(h: Any) -> ComponentStatus:
    return ComponentStatus(
        name=h.name,
        kind=h.kind,
        state=h.state,
        reason=h.reason,
        details=cast(JSON, dict(h.details)),
    )


def build_status(state: AppState, market: MarketView) -> Status:
    """The ``status`` object (also used by the dashboard)."""
    ready, reasons = state.readiness()
    bus = state.bus
    counters: dict[str, Any] = dict(state.engine.core.counters())
    counters["bus_published"] = dict(bus.stats.published)
    return Status(
        version=__version__,
        uptime_s=state.uptime_s(),
        ready=ready,
        reasons=reasons,
        sources=[_component(s.health()) for s in state.sources],
        sinks=[_component(s.health()) for s in state.sinks],
        engine=_component(state.engine.health()),
        owned_symbols=sorted(market.owned) if market.owned is not None else None,
        counters=cast(JSON, counters),
        subscribers=len(bus.subscriptions()),
        dropped_subscribers=sum(bus.stats.dropped_subscribers.values()),
    )


# ----------------------------------------------------------------------------- query


def _book(market: MarketView, symbol: str, depth: int) -> Book:
    row = market.book(symbol, depth)
    row["bids"] = [Level(**lv) for lv in row["bids"]]
    row["asks"] = [Level(**lv) for lv in row["asks"]]
    return from_row(Book, row)


@strawberry.type
class Query:
    @strawberry.field(description="Symbols this instance serves.")
    def symbols(self, info: Info[Context, Any]) -> list[str]:
        return ctx(info).market.served_symbols()

    @strawberry.field(description="Bar intervals this instance aggregates (market.intervals).")
    def intervals(self, info: Info[Context, Any]) -> list[str]:
        return list(ctx(info).state.config.market.intervals)

    @strawberry.field(description="Last trade and top of book of one symbol.")
    @api_errors
    def quote(self, info: Info[Context, Any], symbol: str) -> Quote:
        return from_row(Quote, ctx(info).market.quote(symbol))

    @strawberry.field(description="Quotes of several symbols (all served symbols if omitted).")
    @api_errors
    def quotes(self, info: Info[Context, Any], symbols: list[str] | None = None) -> list[Quote]:
        m = ctx(info).market
        names = symbols if symbols is not None else m.served_symbols()
        return [from_row(Quote, m.quote(s)) for s in names]

    @strawberry.field(description="The last trades of a symbol, oldest first.")
    @api_errors
    def ticks(self, info: Info[Context, Any], symbol: str, last: int = 100) -> list[Tick]:
        return [from_row(Tick, r) for r in ctx(info).market.ticks(symbol, last)]

    @strawberry.field(
        description="Bars of a symbol, oldest first; the forming bar is last. With from/to: "
        "the newest `last` bars opening in [from, to), from the store and memory."
    )
    async def bars(
        self,
        info: Info[Context, Any],
        symbol: str,
        interval: str,
        last: int = 100,
        forming: bool = True,
        from_: Annotated[
            str | None, strawberry.argument(name="from", description="ISO-8601 or epoch ms/ns")
        ] = None,
        to: str | None = None,
    ) -> list[Bar]:
        from tickserver.history import ranged_bars

        try:
            if from_ is None and to is None:
                rows = ctx(info).market.bars(symbol, interval, last, forming=forming)
            else:
                c = ctx(info)
                rows = await ranged_bars(
                    c.state, c.market, symbol, interval, from_, to, last, forming=forming
                )
        except ApiError as exc:
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from None
        return [from_row(Bar, r) for r in rows]

    @strawberry.field(
        description="Ticks (interval tick) or closed bars opening in [from, to), oldest first, "
        "from the history store merged with memory."
    )
    async def history(
        self,
        info: Info[Context, Any],
        symbol: str,
        interval: str,
        from_: Annotated[
            str, strawberry.argument(name="from", description="ISO-8601 or epoch ms/ns")
        ],
        to: Annotated[str | None, strawberry.argument(description="Default: now")] = None,
        limit: int = 10_000,
    ) -> History:
        from tickserver.history import history_query

        c = ctx(info)
        try:
            res = await history_query(c.state, c.market, symbol, interval, from_, to, limit)
        except ApiError as exc:
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from None
        is_tick = interval == "tick"
        return History(
            symbol=symbol,
            interval=interval,
            ticks=[from_row(Tick, r) for r in res.rows] if is_tick else [],
            bars=[] if is_tick else [from_row(Bar, r) for r in res.rows],
            truncated=res.truncated,
            cold_rows=Long(res.cold_rows),
            hot_rows=Long(res.hot_rows),
        )

    @strawberry.field(description="L2 book of a symbol.")
    @api_errors
    def book(self, info: Info[Context, Any], symbol: str, depth: int = 10) -> Book:
        return _book(ctx(info).market, symbol, depth)

    @strawberry.field(description="Latest value of each indicator configured on an interval.")
    @api_errors
    def indicators(
        self, info: Info[Context, Any], symbol: str, interval: str = "1m"
    ) -> list[IndicatorValue]:
        return [from_row(IndicatorValue, r) for r in ctx(info).market.indicators(symbol, interval)]

    @strawberry.field(description="Recent signals (of one symbol, or all), oldest first.")
    @api_errors
    def signals(
        self, info: Info[Context, Any], symbol: str | None = None, last: int = 50
    ) -> list[Signal]:
        return [from_row(Signal, r) for r in ctx(info).market.signals(symbol, last)]

    @strawberry.field(description="Sources, sinks, uptime and counters.")
    def status(self, info: Info[Context, Any]) -> Status:
        c = ctx(info)
        return build_status(c.state, c.market)


# ----------------------------------------------------------------------------- subscription


async def _drain(sub: Any) -> AsyncGenerator[list[Any], None]:
    """Yield lists of items from a bus subscription: everything queued at each wake-up."""
    try:
        while True:
            first = await sub.get()
            yield [first, *sub.get_all_nowait()]
    except SubscriptionClosed as exc:
        if exc.reason.startswith("slow consumer"):
            raise GraphQLError(exc.reason, extensions={"code": "SLOW_CONSUMER"}) from None
    finally:
        sub.close()


def _wanted(market: MarketView, symbols: list[str] | None) -> set[int] | None:
    if symbols is None:
        return None if market.owned is None else set(market.symbol_ids(None))
    return set(market.symbol_ids(symbols))


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Trades; each message carries the trades since the last.")
    async def ticks(
        self, info: Info[Context, Any], symbols: list[str] | None = None
    ) -> AsyncGenerator[list[Tick], None]:
        c = ctx(info)
        wanted = api_errors(_wanted)(c.market, symbols)
        sub = c.state.bus.subscribe(Topic.TRADES, name="graphql:ticks")
        async for items in _drain(sub):
            rows = [r for b in items for r in trades_of_batch(b, c.state.symbols, wanted)]
            if rows:
                yield [from_row(Tick, r) for r in rows]

    @strawberry.subscription(description="Quotes, conflated: the latest of each changed symbol.")
    async def quotes(
        self, info: Info[Context, Any], symbols: list[str] | None = None
    ) -> AsyncGenerator[list[Quote], None]:
        c = ctx(info)
        wanted = api_errors(_wanted)(c.market, symbols)
        sub = c.state.bus.subscribe([Topic.QUOTES, Topic.TRADES], name="graphql:quotes")
        async for items in _drain(sub):
            changed: set[int] = set()
            for b in items:
                changed.update(b.symbol_id.tolist())
            if wanted is not None:
                changed &= wanted
            if changed:
                yield [from_row(Quote, c.market.quote_by_id(s)) for s in sorted(changed)]

    @strawberry.subscription(description="Bars of an interval on close (and forming, if asked).")
    async def bars(
        self,
        info: Info[Context, Any],
        interval: str,
        symbols: list[str] | None = None,
        forming: bool = False,
    ) -> AsyncGenerator[list[Bar], None]:
        c = ctx(info)
        api_errors(c.market.interval_ns)(interval, allow_tick=False)
        wanted = api_errors(_wanted)(c.market, symbols)
        sub = c.state.bus.subscribe(Topic.BARS, name="graphql:bars")
        async for items in _drain(sub):
            rows = [
                r
                for b in items
                if b.interval == interval and (forming or b.final)
                for r in bars_of_batch(b, c.state.symbols, wanted)
            ]
            if rows:
                yield [from_row(Bar, r) for r in rows]

    @strawberry.subscription(description="Signals as they fire.")
    async def signals(
        self, info: Info[Context, Any], symbols: list[str] | None = None
    ) -> AsyncGenerator[list[Signal], None]:
        c = ctx(info)
        wanted = api_errors(_wanted)(c.market, symbols)
        sub = c.state.bus.subscribe(Topic.SIGNALS, name="graphql:signals")
        ri = c.state.engine.rule_interval
        async for items in _drain(sub):
            rows = [r for b in items for r in signals_of_batch(b, c.state.symbols, wanted, ri)]
            if rows:
                yield [from_row(Signal, r) for r in rows]

    @strawberry.subscription(description="The L2 book of one symbol, conflated.")
    async def book(
        self, info: Info[Context, Any], symbol: str, depth: int = 10
    ) -> AsyncGenerator[Book, None]:
        c = ctx(info)
        sid = api_errors(c.market.symbol_id)(symbol)
        api_errors(c.market.check_count)("depth", depth, 1000)
        sub = c.state.bus.subscribe([Topic.BOOK, Topic.QUOTES], name="graphql:book")
        yield _book(c.market, symbol, depth)
        async for items in _drain(sub):
            if any(sid in b.symbol_id for b in items):
                yield _book(c.market, symbol, depth)


def build_schema(
    *, max_depth: int = 12, max_aliases: int = 30, extensions: list[Any] | None = None
) -> strawberry.Schema:
    """Build the schema with depth and alias limits."""
    exts: list[Callable[[], SchemaExtension]] = [
        lambda: QueryDepthLimiter(max_depth=max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=max_aliases),
        *(extensions or []),
    ]
    return strawberry.Schema(
        query=Query,
        subscription=Subscription,
        extensions=exts,
        config=StrawberryConfig(scalar_map=cast(Any, SCALARS)),
    )
