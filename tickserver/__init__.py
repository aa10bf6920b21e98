"""tickserver: a real-time market data server with a C++ core, GraphQL API and live dashboard."""

from tickserver._version import __version__

__all__ = ["__version__"]
