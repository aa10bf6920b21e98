"""The commented example config in the repo stays valid and equal to the defaults."""

from __future__ import annotations

from pathlib import Path

from tickserver.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "tickserver.example.toml"


def test_example_config_is_valid_and_matches_the_embedded_defaults() -> None:
    # Act
    example = load_config(EXAMPLE, environ={})
    defaults = load_config(environ={})
    # Assert: the example documents the defaults (sources.sim is spelled out there)
    assert example.model_dump(exclude={"sources"}) == defaults.model_dump(exclude={"sources"})
    assert example.sources.enabled == defaults.sources.enabled
