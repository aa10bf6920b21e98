"""Market-data sources (feeds). See :mod:`tickserver.sources.base` for the protocol."""
