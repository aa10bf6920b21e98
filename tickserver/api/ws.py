"""GraphQL over WebSocket: ``graphql-transport-ws`` and the legacy ``graphql-ws`` protocol.

Why not strawberry's own handler: strawberry executes every subscription message once per
subscriber (~89 µs each here), so 1,000 dashboards cost ~89 ms of CPU per market update.
Here, subscribers of the hot fields (``ticks``, ``quotes``, ``bars``, ``signals``) that send
the same operation (same field, arguments and selection) share one *fan-out group*: the group
reads the bus once, builds the message's JSON once, and writes the same bytes to every
member's socket as a ready-made WebSocket frame. Operations the fast path does not cover
(other fields, nested selections, directives) run through strawberry's ``Schema.subscribe``
per subscriber, so every valid operation works; tests compare both paths' output.

A subscriber that stops reading does not slow anyone down: its socket's write buffer is
checked before every write and a connection more than ``MAX_WRITE_BUFFER`` behind is closed
("slow consumer", counted). Auth: the token goes in the ``connection_init`` payload
(``{"token": …}`` or ``{"Authorization": "Bearer …"}``); missing → close 4401, wrong → 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import strawberry
from aiohttp import WSCloseCode, WSMsgType, web
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.values import get_argument_values, get_variable_values
from strawberry.extensions.max_aliases import create_validator as alias_validator
from strawberry.extensions.query_depth_limiter import create_validator as depth_validator

from tickserver.api.http import bearer_token, token_ok
from tickserver.api.market import (
    ApiError,
    MarketView,
    bars_of_batch,
    rows_from_columns,
    select_symbols,
    signals_of_batch,
    tick_columns,
)
from tickserver.api.schema import Context
from tickserver.bus import SubscriptionClosed, Topic

if TYPE_CHECKING:
    from tickserver.app import AppState

log = logging.getLogger(__name__)

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
MAX_WRITE_BUFFER = 4 * 1024 * 1024
INIT_TIMEOUT_S = 10.0
LEGACY_KEEPALIVE_S = 15.0


def ws_frame(data: bytes) -> bytes:
    """An unmasked, final text frame (server → client) holding ``data``."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + struct.pack("!H", n) + data
    return b"\x81\x7f" + struct.pack("!Q", n) + data


# ----------------------------------------------------------------------------- connections


@dataclass
class _Operation:
    """One client operation (subscription) on a connection."""

    id: str
    prefix: bytes  # frame body up to the payload: {"type":"next","id":"…","payload":
    task: asyncio.Task[Any] | None = None
    group: FanoutGroup | None = None


class Connection:
    """One WebSocket client."""

    def __init__(self, server: GraphQLWebSocket, ws: web.WebSocketResponse, protocol: str) -> None:
        self.server = server
        self.ws = ws
        self.protocol = protocol
        self.transport: asyncio.Transport | None = None
        self.acked = False
        self.ops: dict[str, _Operation] = {}
        self.closed = False
        self.close_code: int = WSCloseCode.OK
        self.close_reason = ""
        self.messages_out = 0
        self._next_type = b"next" if protocol == TRANSPORT_WS else b"data"

    # ------------------------------------------------------------------ writing
    def write_raw(self, body: bytes) -> bool:
        """Write one text frame without waiting; close the connection if it is too far behind."""
        if self.closed:
            return False
        t = self.transport
        if t is None or t.is_closing():
            self.closed = True
            return False
        if t.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.server.slow_consumers += 1
            log.warning(
                "closing slow WebSocket consumer (%d bytes unsent)", t.get_write_buffer_size()
            )
            self.close_soon(WSCloseCode.POLICY_VIOLATION, "slow consumer")
            return False
        t.write(ws_frame(body))
        self.messages_out += 1
        return True

    def send(self, msg: dict[str, Any]) -> bool:
        """Serialise and send a protocol message."""
        return self.write_raw(orjson.dumps(msg))

    def send_payload(self, op: _Operation, payload: bytes) -> bool:
        """Send a ready-made ``{"data": …}`` payload as a next/data message of ``op``."""
        return self.write_raw(op.prefix + payload + b"}")

    def close_soon(self, code: int, reason: str) -> None:
        """Close the connection from synchronous code."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        task = asyncio.ensure_future(self.ws.close(code=code, message=reason.encode()))
        self.server.background.add(task)
        task.add_done_callback(self.server.background.discard)

    def op_prefix(self, op_id: str) -> bytes:
        return b'{"type":"' + self._next_type + b'","id":' + orjson.dumps(op_id) + b',"payload":'

    def send_error(self, op_id: str, errors: Sequence[Mapping[str, Any]]) -> None:
        """Report errors of one operation (and end it)."""
        if self.protocol == TRANSPORT_WS:
            self.send({"type": "error", "id": op_id, "payload": errors})
        else:
            self.send({"type": "error", "id": op_id, "payload": errors[0] if errors else {}})

    def send_complete(self, op_id: str) -> None:
        self.send({"type": "complete", "id": op_id})

    # ------------------------------------------------------------------ lifecycle
    def stop_op(self, op_id: str) -> None:
        """Stop one operation (client complete/stop, or connection end)."""
        op = self.ops.pop(op_id, None)
        if op is None:
            return
        if op.group is not None:
            op.group.remove(self, op)
        if op.task is not None:
            op.task.cancel()

    def stop_all(self) -> None:
        for op_id in list(self.ops):
            self.stop_op(op_id)


# ----------------------------------------------------------------------------- fan-out


Selection = tuple[tuple[str, str], ...]  # (response key, field name)


@dataclass
class FanoutGroup:
    """Subscribers with the same operation, served from one bus subscription."""

    key: tuple[Any, ...]
    field_name: str
    response_key: str
    selection: Selection
    symbols: tuple[str, ...] | None
    extra: dict[str, Any]
    members: dict[tuple[int, str], tuple[Connection, _Operation]] = field(default_factory=dict)
    task: asyncio.Task[Any] | None = None

    def remove(self, conn: Connection, op: _Operation) -> None:
        self.members.pop((id(conn), op.id), None)


def _merge(items: list[Any]) -> list[Any]:
    """Conflater for a group's bus subscription: concatenate consecutive batches of one kind."""
    out: list[Any] = []
    for it in items:
        if out and type(out[-1]) is type(it) and hasattr(it, "concat"):
            prev = out[-1]
            same = all(
                getattr(prev, f, None) == getattr(it, f, None)
                for f in ("interval", "final", "rules")
            )
            if same:
                out[-1] = type(it).concat([prev, it])
                continue
        out.append(it)
    return out


# ----------------------------------------------------------------------------- the endpoint


class GraphQLWebSocket:
    """The /graphql WebSocket endpoint."""

    FAST_FIELDS = frozenset({"ticks", "quotes", "bars", "signals"})

    def __init__(self, state: AppState, schema: strawberry.Schema, market: MarketView) -> None:
        self.state = state
        self.schema = schema
        self.gschema = schema._schema
        self.market = market
        cfg = state.config.server
        self.rules = [
            *specified_rules,
            depth_validator(cfg.max_query_depth, None),
            alias_validator(cfg.max_aliases),
        ]
        self.max_ops = cfg.max_subscriptions_per_connection
        self.fanout = cfg.subscription_fanout
        self.connections: set[Connection] = set()
        self.groups: dict[tuple[Any, ...], FanoutGroup] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.slow_consumers = 0
        # CPU time (thread time, so other processes' load does not count) spent building and
        # writing fan-out messages, and the subscriber-messages written: the cost per
        # subscriber-message that `tickserver bench fanout` reports.
        self.fanout_cpu_ns = 0
        self.fanout_messages = 0
        self._shutting_down = False
        state.metrics.register_collector(self._collect)

    # ------------------------------------------------------------------ HTTP upgrade
    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser
        host = request.headers.get("Host", "")
        if origin in (f"http://{host}", f"https://{host}"):
            return True
        allowed = self.state.config.server.cors_origins
        return "*" in allowed or origin in allowed

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade and serve one WebSocket connection."""
        if self._shutting_down:
            raise web.HTTPServiceUnavailable(text="shutting down")
        if not self._origin_allowed(request):
            raise web.HTTPForbidden(text="origin not allowed")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        ws = web.WebSocketResponse(
            protocols=(TRANSPORT_WS, LEGACY_WS),
            heartbeat=self.state.config.server.ws_heartbeat_s,
            compress=False,  # frames are written pre-built; they must not need deflating
            max_msg_size=1024 * 1024,
        )
        await ws.prepare(request)
        protocol = ws.ws_protocol or (LEGACY_WS if LEGACY_WS in offered else TRANSPORT_WS)
        conn = Connection(self, ws, protocol)
        conn.transport = request.transport
        self.connections.add(conn)
        keepalive: asyncio.Task[Any] | None = None
        if protocol == LEGACY_WS:
            keepalive = asyncio.create_task(self._legacy_keepalive(conn))
        init_timer = asyncio.get_running_loop().call_later(INIT_TIMEOUT_S, self._init_timeout, conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_message(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.close_soon(4400, "binary frames are not supported")
                if conn.closed:
                    break
        finally:
            init_timer.cancel()
            if keepalive is not None:
                keepalive.cancel()
            conn.stop_all()
            conn.closed = True
            self.connections.discard(conn)
            if not ws.closed:
                await ws.close(code=conn.close_code, message=conn.close_reason.encode())
        return ws

    def _init_timeout(self, conn: Connection) -> None:
        if not conn.acked:
            conn.close_soon(4408, "Connection initialisation timeout")

    async def _legacy_keepalive(self, conn: Connection) -> None:
        while not conn.closed:
            await asyncio.sleep(LEGACY_KEEPALIVE_S)
            if conn.acked:
                conn.send({"type": "ka"})

    async def on_shutdown(self, _app: web.Application) -> None:
        """Close every connection with 1001 "going away"."""
        self._shutting_down = True
        for g in list(self.groups.values()):
            if g.task:
                g.task.cancel()
        for conn in list(self.connections):
            conn.stop_all()
            with contextlib.suppress(Exception):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")

    # ------------------------------------------------------------------ protocol
    async def _on_message(self, conn: Connection, data: str) -> None:
        try:
            msg = orjson.loads(data)
            mtype = msg.get("type") if isinstance(msg, dict) else None
        except orjson.JSONDecodeError:
            mtype = None
        if not isinstance(mtype, str):
            conn.close_soon(4400, "Invalid message received")
            return
        if mtype == "connection_init":
            self._on_init(conn, msg.get("payload"))
        elif mtype in ("ping", "pong") and conn.protocol == TRANSPORT_WS:
            if mtype == "ping":
                conn.send({"type": "pong"})
        elif mtype in ("subscribe", "start"):
            if not conn.acked:
                conn.close_soon(4401, "Unauthorized")
                return
            op_id = msg.get("id")
            payload = msg.get("payload")
            if not isinstance(op_id, str) or not isinstance(payload, dict):
                conn.close_soon(4400, "Invalid message received")
                return
            try:
                await self._on_subscribe(conn, op_id, payload)
            except Exception as exc:
                # A bug in one operation must not take the connection (and its other
                # subscriptions) down: report it on that operation only.
                log.exception("operation %s failed to start", op_id)
                conn.ops.pop(op_id, None)
                conn.send_error(op_id, [{"message": f"internal error: {exc}"}])
        elif mtype in ("complete", "stop"):
            op_id = msg.get("id")
            if isinstance(op_id, str):
                conn.stop_op(op_id)
        elif mtype == "connection_terminate":
            conn.close_soon(1000, "terminated")
        else:
            conn.close_soon(4400, f"Unknown message type {mtype!r}")

    def _on_init(self, conn: Connection, payload: Any) -> None:
        if conn.acked:
            conn.close_soon(4429, "Too many initialisation requests")
            return
        expected = self.state.token
        if expected is not None:
            given = _token_from_payload(payload)
            if given is None:
                conn.close_soon(4401, "Unauthorized")
                return
            if not token_ok(expected, given):
                conn.close_soon(4403, "Forbidden")
                return
        conn.acked = True
        conn.send({"type": "connection_ack"})

    async def _on_subscribe(self, conn: Connection, op_id: str, payload: dict[str, Any]) -> None:
        if op_id in conn.ops:
            if conn.protocol == TRANSPORT_WS:
                conn.close_soon(4409, f"Subscriber for {op_id} already exists")
            else:
                conn.send_error(op_id, [{"message": f"operation {op_id} already exists"}])
            return
        if len(conn.ops) >= self.max_ops:
            conn.send_error(
                op_id,
                [
                    {
                        "message": f"at most {self.max_ops} subscriptions per connection",
                        "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
                    }
                ],
            )
            return
        query = payload.get("query")
        variables = payload.get("variables") or {}
        op_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict):
            conn.send_error(op_id, [{"message": "payload needs a query string"}])
            return
        try:
            doc = parse(query)
        except GraphQLError as exc:
            conn.send_error(op_id, [exc.formatted])
            return
        errors = validate(self.gschema, doc, self.rules)
        if errors:
            conn.send_error(op_id, [e.formatted for e in errors])
            return
        operation = _pick_operation(doc, op_name)
        if operation is None:
            conn.send_error(op_id, [{"message": "unknown or ambiguous operation name"}])
            return
        op = _Operation(op_id, conn.op_prefix(op_id))
        conn.ops[op_id] = op
        if operation.operation != OperationType.SUBSCRIPTION:
            op.task = asyncio.create_task(self._run_single(conn, op, query, variables, op_name))
            return
        try:
            group = self._fast_group(doc, operation, variables)
        except ApiError as exc:
            conn.ops.pop(op_id, None)
            conn.send_error(op_id, [{"message": str(exc), "extensions": {"code": exc.code}}])
            return
        if group is not None:
            op.group = group
            group.members[(id(conn), op_id)] = (conn, op)
            if group.task is None:
                group.task = asyncio.create_task(self._run_group(group))
            return
        op.task = asyncio.create_task(self._run_generic(conn, op, query, variables, op_name))

    def _context(self) -> Context:
        return Context(state=self.state, market=self.market)

    async def _run_single(
        self,
        conn: Connection,
        op: _Operation,
        query: str,
        variables: dict[str, Any],
        op_name: str | None,
    ) -> None:
        result = await self.schema.execute(
            query, variable_values=variables, context_value=self._context(), operation_name=op_name
        )
        conn.send_payload(op, orjson.dumps(_format(result)))
        if conn.ops.pop(op.id, None) is not None:
            conn.send_complete(op.id)

    async def _run_generic(
        self,
        conn: Connection,
        op: _Operation,
        query: str,
        variables: dict[str, Any],
        op_name: str | None,
    ) -> None:
        try:
            agen = await self.schema.subscribe(
                query,
                variable_values=variables,
                context_value=self._context(),
                operation_name=op_name,
            )
            async for result in agen:
                if not hasattr(result, "data"):  # PreExecutionError
                    conn.send_error(op.id, [e.formatted for e in result.errors or []])
                    conn.ops.pop(op.id, None)
                    return
                if result.errors and result.data is None:
                    conn.send_error(op.id, [e.formatted for e in result.errors])
                    conn.ops.pop(op.id, None)
                    return
                if not conn.send_payload(op, orjson.dumps(_format(result))):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("subscription %s failed", op.id)
            conn.send_error(op.id, [{"message": f"internal error: {exc}"}])
            conn.ops.pop(op.id, None)
            return
        if conn.ops.pop(op.id, None) is not None:
            conn.send_complete(op.id)

    # ------------------------------------------------------------------ fast path
    def _fast_group(
        self, doc: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
    ) -> FanoutGroup | None:
        sels = operation.selection_set.selections
        if (
            not self.fanout
            or len(sels) != 1
            or not isinstance(sels[0], FieldNode)
            or sels[0].directives
        ):
            return None
        root = sels[0]
        name = root.name.value
        if name not in self.FAST_FIELDS or root.selection_set is None:
            return None
        sub_type = self.gschema.subscription_type
        assert sub_type is not None
        field_def = sub_type.fields[name]
        item_type = get_named_type(field_def.type)
        if not isinstance(item_type, GraphQLObjectType):
            return None
        fragments = {
            d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)
        }
        selection = _compile_flat(root.selection_set, item_type, fragments)
        if selection is None:
            return None
        # Arguments may come as variables: coerce them against the operation's definitions
        # first (graphql-core 3.3 takes only coerced VariableValues here, not a dict).
        coerced = get_variable_values(self.gschema, operation.variable_definitions or (), variables)
        if isinstance(coerced, list):
            raise ApiError("; ".join(e.message for e in coerced), "BAD_USER_INPUT")
        args = get_argument_values(field_def, root, coerced)
        symbols = args.get("symbols")
        if symbols is not None:
            self.market.symbol_ids(symbols)  # raises UNKNOWN_SYMBOL
        extra: dict[str, Any] = {}
        if name == "bars":
            self.market.interval_ns(args["interval"], allow_tick=False)
            extra = {"interval": args["interval"], "forming": bool(args.get("forming", False))}
        response_key = root.alias.value if root.alias else name
        key = (
            name,
            response_key,
            selection,
            tuple(symbols) if symbols is not None else None,
            tuple(sorted(extra.items())),
        )
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = FanoutGroup(
                key=key,
                field_name=name,
                response_key=response_key,
                selection=selection,
                symbols=tuple(symbols) if symbols is not None else None,
                extra=extra,
            )
        return group

    async def _run_group(self, group: FanoutGroup) -> None:
        topics = {
            "ticks": [Topic.TRADES],
            "quotes": [Topic.QUOTES, Topic.TRADES],
            "bars": [Topic.BARS],
            "signals": [Topic.SIGNALS],
        }[group.field_name]
        builder = self._row_builder(group)
        bus = self.state.bus
        sub = bus.subscribe(topics, name=f"ws:{group.field_name}", maxsize=1024, conflate=_merge)
        prefix = b'{"data":{' + orjson.dumps(group.response_key) + b":"
        try:
            while group.members:
                first = await sub.get()
                t0 = time.thread_time_ns()  # no await until the sends are done
                items = [first, *sub.get_all_nowait()]
                rows = builder(items)
                if rows:
                    payload = prefix + orjson.dumps(rows) + b"}}"
                    for conn, op in list(group.members.values()):
                        if conn.send_payload(op, payload):
                            self.fanout_messages += 1
                        else:
                            group.members.pop((id(conn), op.id), None)
                self.fanout_cpu_ns += time.thread_time_ns() - t0
        except SubscriptionClosed as exc:
            err = [
                {
                    "message": f"subscription ended: {exc.reason}",
                    "extensions": {"code": "SLOW_CONSUMER"},
                }
            ]
            for conn, op in list(group.members.values()):
                conn.send_error(op.id, err)
                conn.ops.pop(op.id, None)
        finally:
            sub.close()
            self.groups.pop(group.key, None)

    def _row_builder(self, group: FanoutGroup) -> Callable[[list[Any]], list[dict[str, Any]]]:
        """items from the bus -> the message's rows, already shaped by the selection."""
        market = self.market
        symbols = self.state.symbols
        wanted: set[int] | None = (
            set(market.symbol_ids(list(group.symbols)))
            if group.symbols is not None
            else (None if market.owned is None else set(market.symbol_ids(None)))
        )
        name = group.field_name
        project = _projector(group.selection)
        if name == "ticks":
            # The busiest field: build only the columns the selection asks for, vectorised.
            consts = {
                k: f.split(":", 1)[1] for k, f in group.selection if f.startswith("__typename:")
            }
            fields = [f for _, f in group.selection if not f.startswith("__typename:")]

            def ticks(items: list[Any]) -> list[dict[str, Any]]:
                parts = [select_symbols(b, wanted) for b in items]
                parts = [b for b in parts if len(b)]
                if not parts:
                    return []
                b = type(parts[0]).concat(parts)
                names = symbols.names_of(b.symbol_id).tolist() if "symbol" in fields else ""
                cols = tick_columns(names, b.ts_event, b.price, b.size, b.seq, b.flags, fields)
                n = len(b)
                for v in set(consts.values()):
                    cols["__typename:" + v] = [v] * n
                return rows_from_columns(cols, group.selection)

            return ticks
        if name == "quotes":

            def quotes(items: list[Any]) -> list[dict[str, Any]]:
                changed: set[int] = set()
                for b in items:
                    changed.update(b.symbol_id.tolist())
                if wanted is not None:
                    changed &= wanted
                return [project(market.quote_by_id(s)) for s in sorted(changed)]

            return quotes
        if name == "bars":
            interval = group.extra["interval"]
            forming = group.extra["forming"]
            return lambda items: [
                project(r)
                for b in items
                if b.interval == interval and (forming or b.final)
                for r in bars_of_batch(b, symbols, wanted)
            ]
        ri = self.state.engine.rule_interval
        return lambda items: [
            project(r) for b in items for r in signals_of_batch(b, symbols, wanted, ri)
        ]

    # ------------------------------------------------------------------ metrics
    def _collect(self) -> list[Any]:
        m = self.state.metrics
        conns = m.family("ws_connections", "gauge", "Open GraphQL WebSocket connections")
        groups = m.family("ws_fanout_groups", "gauge", "Fan-out groups (distinct operations)")
        subs = m.family("ws_subscriptions", "gauge", "Active subscriptions over WebSocket")
        slow = m.family("ws_slow_consumers_total", "counter", "Connections closed as too slow")
        from tickserver.metrics import Sample

        conns.samples = [Sample(conns.name, (), float(len(self.connections)))]
        groups.samples = [Sample(groups.name, (), float(len(self.groups)))]
        subs.samples = [Sample(subs.name, (), float(sum(len(c.ops) for c in self.connections)))]
        slow.samples = [Sample(slow.name, (), float(self.slow_consumers))]
        cpu = m.family(
            "ws_fanout_cpu_seconds_total",
            "counter",
            "Thread CPU time spent building and writing fan-out messages",
        )
        cpu.samples = [Sample(cpu.name, (), self.fanout_cpu_ns / 1e9)]
        msgs = m.family(
            "ws_fanout_messages_total", "counter", "Subscriber-messages written by fan-out"
        )
        msgs.samples = [Sample(msgs.name, (), float(self.fanout_messages))]
        return [conns, groups, subs, slow, cpu, msgs]


# ----------------------------------------------------------------------------- helpers


def _token_from_payload(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    for key in ("token", "authToken", "Authorization", "authorization"):
        v = payload.get(key)
        if isinstance(v, str) and v:
            return v[7:].strip() if v[:7].lower() == "bearer " else v
    headers = payload.get("headers")
    if isinstance(headers, dict):
        return _token_from_payload(headers)
    return None


def _pick_operation(doc: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return ops[0] if len(ops) == 1 else None
    for op in ops:
        if op.name is not None and op.name.value == name:
            return op
    return None


def _compile_flat(
    sel: SelectionSetNode,
    type_: GraphQLObjectType,
    fragments: dict[str, FragmentDefinitionNode],
) -> Selection | None:
    """Response keys of a selection of scalar fields only; None if it needs full execution."""
    out: list[tuple[str, str]] = []
    for s in sel.selections:
        if s.directives:
            return None
        if isinstance(s, FieldNode):
            if s.selection_set is not None or s.arguments:
                return None
            fname = s.name.value
            key = s.alias.value if s.alias else fname
            if fname == "__typename":
                out.append((key, "__typename:" + type_.name))
            elif fname in type_.fields:
                out.append((key, fname))
            else:
                return None
        elif isinstance(s, InlineFragmentNode):
            if s.type_condition is not None and s.type_condition.name.value != type_.name:
                return None
            inner = _compile_flat(s.selection_set, type_, fragments)
            if inner is None:
                return None
            out.extend(inner)
        elif isinstance(s, FragmentSpreadNode):
            frag = fragments.get(s.name.value)
            if frag is None or frag.type_condition.name.value != type_.name:
                return None
            inner = _compile_flat(frag.selection_set, type_, fragments)
            if inner is None:
                return None
            out.extend(inner)
        else:
            return None
    # GraphQL merges repeated response keys; keep the first position of each.
    seen: dict[str, str] = {}
    for k, f in out:
        seen.setdefault(k, f)
    return tuple(seen.items())


def _projector(selection: Selection) -> Callable[[dict[str, Any]], dict[str, Any]]:
    pairs: Sequence[tuple[str, str]] = selection
    consts = {k: f.split(":", 1)[1] for k, f in pairs if f.startswith("__typename:")}
    fields = [(k, f) for k, f in pairs if not f.startswith("__typename:")]
    if not consts:
        return lambda row: {k: row[f] for k, f in fields}

    def project(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, f in pairs:
            out[k] = consts[k] if k in consts else row[f]
        return out

    return project


def _format(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    return out


__all__ = ["GraphQLWebSocket", "bearer_token"]
