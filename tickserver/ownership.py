"""Scale-out ownership: which symbols this instance serves, announced on the bus.

In a scale-out deployment each serving instance owns the symbols of the Kafka partitions
assigned to it (see docs/kafka.md). The ``kafka`` source knows the assignment, the API must
act on it, and neither may import the other; so the source publishes an :class:`Ownership`
on the bus topic :data:`OWNERSHIP_TOPIC` whenever it changes, and the app
(:func:`tickserver.app.build_app`) attaches a callback that hands ``symbols`` to the API's
``MarketView.owned`` — which the ``symbols`` query, ``status.ownedSymbols`` and every
symbol lookup honour. Without an owning source nothing is published and an instance serves
every symbol (``owned`` stays None).
"""

from __future__ import annotations

from dataclasses import dataclass

OWNERSHIP_TOPIC = "control.ownership"
"""Bus topic of :class:`Ownership` announcements (a plain string: not a market-data topic)."""


@dataclass(frozen=True)
class Ownership:
    """What this instance owns now.

    Attributes
    ----------
    owner
        The announcing source (``kafka``).
    symbols
        The symbols served here; ``None`` means every symbol.
    partitions
        The partitions behind ``symbols`` (for status and logs).
    """

    owner: str
    symbols: frozenset[str] | None
    partitions: tuple[int, ...] = ()
