"""An aiohttp server on 127.0.0.1 running in a background thread (for subprocess tests)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ThreadedHTTPServer:
    """Serve every path with ``handler`` on a free 127.0.0.1 port until :meth:`stop`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _main(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> ThreadedHTTPServer:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="test-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test HTTP server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ThreadedHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
