"""Version of the tickserver package (read by the build backend)."""

__version__ = "0.1.0"
