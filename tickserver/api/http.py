"""HTTP routes: /graphql, /healthz, /readyz, /metrics, and the dashboard at /.

Security: an optional bearer token (from the env var named by ``server.auth_token_env``,
never logged) is required on every route except /healthz, /readyz and the dashboard's static
files (which hold no data; the page sends the token on its own requests). WebSocket clients
send it in the ``connection_init`` payload. A CORS allow-list governs browsers on other
origins; WebSocket upgrades from origins not on it are refused.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from strawberry.aiohttp.views import GraphQLView

from tickserver.api.market import MarketView
from tickserver.api.schema import Context, build_schema

if TYPE_CHECKING:
    from tickserver.app import AppState

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
# The dashboard talks only to its own origin; browsers enforce this on every request.
DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)
MARKET_VIEW = web.AppKey("tickserver_market", MarketView)
STATE = web.AppKey("tickserver_state_ref", object)


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def token_ok(expected: str | None, given: str | None) -> bool:
    """Constant-time token check; always true when auth is off."""
    if expected is None:
        return True
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def _is_static(path: str) -> bool:
    return path == "/" or path.startswith("/static/") or path == "/favicon.ico"


def make_auth_middleware(state: AppState) -> Any:
    """Require the bearer token where auth is on."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            state.token is None
            or request.method == "OPTIONS"
            or request.path in PUBLIC_PATHS
            or _is_static(request.path)
            or request.headers.get("Upgrade", "").lower() == "websocket"  # token in connection_init
        ):
            return await handler(request)
        if not token_ok(state.token, bearer_token(request)):
            return web.json_response(
                {
                    "errors": [
                        {
                            "message": "missing or invalid bearer token",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                },
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="tickserver"'},
            )
        return await handler(request)

    return auth


def make_cors_middleware(origins: list[str]) -> Any:
    """Answer CORS preflights and tag responses for allowed origins."""
    allowed = set(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        ok = origin is not None and ("*" in allowed or origin in allowed)
        if (
            request.method == "OPTIONS"
            and origin
            and request.headers.get("Access-Control-Request-Method")
        ):
            if not ok:
                return web.Response(status=403, text="origin not allowed")
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        resp = await handler(request)
        if ok and origin and not resp.prepared:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
        return resp

    return cors


class TickserverGraphQLView(GraphQLView[Context, None]):
    """strawberry's aiohttp view with our context and connection_init auth."""

    state: AppState
    market: MarketView

    async def get_context(self, request: web.Request, response: Any) -> Context:
        return Context(state=self.state, market=self.market)

    async def on_ws_connect(self, context: Context) -> Any:
        return None


async def healthz(_request: web.Request) -> web.Response:
    """Process alive."""
    return web.json_response({"status": "ok"})


def make_readyz(state: AppState) -> Handler:
    """Sources delivering and sinks healthy: 200; otherwise 503 with the reasons."""

    async def readyz(_request: web.Request) -> web.Response:
        ready, reasons = state.readiness()
        body = {
            "status": "ready" if ready else "degraded",
            "reasons": reasons,
            "components": {
                h.name: {"kind": h.kind, "state": h.state, "reason": h.reason}
                | _feed_health(h.details if h.kind == "source" else {})
                for h in state.healths()
            },
        }
        return web.json_response(body, status=200 if ready else 503)

    return readyz


# Source facts /readyz shows (it is unauthenticated: counts and times, no messages).
READYZ_SOURCE_KEYS = (
    "connected",
    "last_event",
    "last_event_age_s",
    "lag_s",
    "errors",
    "backoff",
    "budget_remaining",
)


def _feed_health(details: dict[str, Any]) -> dict[str, Any]:
    return {k: details[k] for k in READYZ_SOURCE_KEYS if k in details}


def make_metrics(state: AppState) -> Handler:
    """Prometheus text format."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            text=state.metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    return metrics


def static_root(state: AppState) -> Path:
    """Where the dashboard's files are."""
    if state.config.server.static_dir:
        return Path(state.config.server.static_dir)
    return Path(str(resources.files("tickserver") / "static"))


def make_index(root: Path) -> Handler:
    """Serve the dashboard page with its Content-Security-Policy."""

    async def index(_request: web.Request) -> web.StreamResponse:
        path = root / "index.html"
        if not path.is_file():
            raise web.HTTPNotFound(text="dashboard not installed")
        return web.FileResponse(path, headers=_page_headers())

    return index


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": DASHBOARD_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


@web.middleware
async def static_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on static files too."""
    resp = await handler(request)
    if request.path.startswith("/static/") and not resp.prepared:
        resp.headers.update(_page_headers())
    return resp


def create_web_app(state: AppState) -> web.Application:
    """Create the aiohttp application with every route and middleware."""
    cfg = state.config.server
    app = web.Application(
        middlewares=[
            make_cors_middleware(cfg.cors_origins),
            make_auth_middleware(state),
            static_headers,
        ],
        client_max_size=1024 * 1024,
    )
    market = MarketView(state.engine, state.symbols)
    app[MARKET_VIEW] = market
    schema = build_schema(max_depth=cfg.max_query_depth, max_aliases=cfg.max_aliases)
    state.extras["schema"] = schema
    state.extras["market"] = market

    from tickserver.api.ws import GraphQLWebSocket

    ws = GraphQLWebSocket(state, schema, market)
    view = TickserverGraphQLView(
        schema=schema,
        graphql_ide="graphiql" if cfg.graphiql else None,
        subscription_protocols=(),
    )
    view.state = state
    view.market = market

    async def graphql(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await ws.handle(request)
        return await view(request)

    app.router.add_route("*", "/graphql", graphql)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", make_readyz(state))
    app.router.add_get("/metrics", make_metrics(state))
    root = static_root(state)
    app.router.add_get("/", make_index(root))
    if root.is_dir():
        app.router.add_static("/static/", root, follow_symlinks=False)
    app.on_shutdown.append(ws.on_shutdown)
    return app
