"""Source plug-ins by name: the built-ins below plus the ``tickserver.sources`` entry points."""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from importlib.metadata import entry_points

from tickserver.sources.base import SourcePlugin

BUILTIN: dict[str, str] = {
    "sim": "tickserver.sources.sim",
    "replay": "tickserver.sources.replay",
    "yfinance": "tickserver.sources.yfinance",
    "alphavantage": "tickserver.sources.alphavantage",
    "kafka": "tickserver.sources.kafka",
}
ENTRY_POINT_GROUP = "tickserver.sources"


@cache
def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def refresh() -> None:
    """Forget the cached entry points (after installing a plug-in into a running process)."""
    _entry_points.cache_clear()


def available() -> list[str]:
    """Return the names of every installed source (a built-in name shadows an entry point)."""
    names = [n for n, mod in BUILTIN.items() if importlib.util.find_spec(mod) is not None]
    names += [n for n in _entry_points() if n not in BUILTIN]
    return names


def get(name: str) -> SourcePlugin:
    """Return the plug-in registered as ``name`` (imports its module on first use).

    Raises
    ------
    KeyError
        If no source of that name is installed.
    """
    if name in BUILTIN and importlib.util.find_spec(BUILTIN[name]) is not None:
        plugin = importlib.import_module(BUILTIN[name]).PLUGIN
    elif name in _entry_points():
        target = _entry_points()[name]
        module, _, attr = target.partition(":")
        try:
            plugin = getattr(importlib.import_module(module), attr or "PLUGIN")
        except (ImportError, AttributeError) as exc:
            raise RuntimeError(
                f"source {name!r}: cannot load entry point {target!r} "
                f"(group {ENTRY_POINT_GROUP}): {exc}"
            ) from exc
    else:
        raise KeyError(f"unknown source {name!r}; available: {', '.join(sorted(available()))}")
    if not isinstance(plugin, SourcePlugin):
        raise TypeError(f"source {name!r} does not export a SourcePlugin")
    return plugin
