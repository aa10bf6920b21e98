"""Fail any network connection that leaves the machine: tests are offline by construction.

``install()`` patches ``socket.socket.connect``/``connect_ex`` and ``socket.getaddrinfo`` so that
only loopback addresses, Unix sockets and the names ``localhost``/``127.0.0.1``/``::1`` work;
anything else raises :class:`NetworkBlockedError` (an ``OSError``, so code under test takes its
network-error path) and is recorded in :data:`BLOCKED`, which the test suite turns into a
failure. ``proxy_env()`` returns environment variables that also send libcurl (curl_cffi,
i.e. yfinance) and other proxy-aware clients to a closed local port for any non-loopback host,
since libcurl does not use Python sockets.

Subprocesses get the same guard through ``tests/support/site/sitecustomize.py`` (put that
directory on ``PYTHONPATH``).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import Any

BLOCKED: list[str] = []
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlockedError(ConnectionRefusedError):
    """A test tried to reach a non-loopback address."""


def _is_local_host(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in LOCAL_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address: Any) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    if isinstance(address, tuple) and address and _is_local_host(address[0]):
        return
    where = f"{address!r}"
    BLOCKED.append(where)
    print(f"netguard: blocked a connection to {where}", file=sys.stderr)
    raise NetworkBlockedError(f"netguard: tests must not reach the network ({where})")


_installed = False


def install() -> None:
    """Patch the socket module (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check(address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local_host(host):
            BLOCKED.append(f"resolve {host!r}")
            print(f"netguard: blocked resolving {host!r}", file=sys.stderr)
            raise socket.gaierror(socket.EAI_NONAME, f"netguard: no DNS in tests ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo


def proxy_env() -> dict[str, str]:
    """Env vars routing proxy-aware clients (libcurl, httpx, websockets) to a dead port."""
    dead = "http://127.0.0.1:9"
    local = "127.0.0.1,localhost,::1"
    return {
        "ALL_PROXY": dead,
        "all_proxy": dead,
        "HTTPS_PROXY": dead,
        "https_proxy": dead,
        "HTTP_PROXY": dead,
        "http_proxy": dead,
        "NO_PROXY": local,
        "no_proxy": local,
    }
