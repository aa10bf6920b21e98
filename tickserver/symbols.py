"""The process-wide symbol table: symbol strings <-> dense ids, shared by sources and sinks."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

from tickserver._core import SymbolRegistry


class Symbols:
    """Wraps the C++ registry with cached, vectorised id -> name lookups for Python consumers."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.registry = SymbolRegistry()
        self._names: list[str] = []
        self._names_arr: NDArray[np.object_] = np.empty(0, dtype=object)
        for n in names:
            self.intern(n)

    def intern(self, name: str) -> int:
        """Return the id of ``name``, adding it if new."""
        sid = self.registry.intern(name)
        if sid >= len(self._names):
            self._names.append(name)
        return sid

    def intern_many(self, names: Iterable[str]) -> NDArray[np.uint32]:
        """Return ids for many names (adding new ones)."""
        return np.fromiter((self.intern(n) for n in names), dtype=np.uint32)

    def id(self, name: str) -> int | None:
        """Return the id of ``name`` or None if unknown."""
        return self.registry.lookup(name)

    def name(self, sid: int) -> str:
        """Return the symbol of id ``sid``."""
        return self._names[sid]

    def names(self) -> list[str]:
        """Return all symbols, indexed by id."""
        return list(self._names)

    def names_of(self, ids: NDArray[np.uint32]) -> NDArray[np.object_]:
        """Map an id array to an array of symbol strings."""
        if len(self._names_arr) != len(self._names):
            self._names_arr = np.array(self._names, dtype=object)
        return self._names_arr[ids]

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.registry.lookup(name) is not None
