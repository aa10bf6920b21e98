"""Config loading: defaults, TOML, env overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickserver.config import ConfigError, env_overrides, load_config


def test_env_override_sets_nested_key_and_parses_toml_literal() -> None:
    # Arrange
    env = {"TICKSERVER_SERVER__PORT": "9000", "TICKSERVER_MARKET__SYMBOLS": "AAPL, MSFT"}
    # Act
    tree = env_overrides(env)
    # Assert
    assert tree == {"server": {"port": 9000}, "market": {"symbols": "AAPL, MSFT"}}


def test_unknown_key_in_toml_is_an_error_naming_the_key(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "c.toml"
    path.write_text("[server]\nprot = 1\n")
    # Act / Assert
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_config(path, environ={})


def test_bad_value_names_key_and_expected_range() -> None:
    # Act / Assert
    with pytest.raises(ConfigError, match=r"server\.port: Input should be less than or equal"):
        load_config(environ={"TICKSERVER_SERVER__PORT": "70000"})


def test_env_override_without_double_underscore_is_rejected() -> None:
    with pytest.raises(ConfigError, match="TICKSERVER_<SECTION>__<KEY>"):
        env_overrides({"TICKSERVER_PORT": "1"})


def test_indicator_on_an_unconfigured_interval_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[market]\nintervals = ["1s"]\n')
    with pytest.raises(ConfigError, match=r"indicator 'ema12': interval '1m' is not in market"):
        load_config(path, environ={})


def test_signal_rule_must_reference_an_output_of_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[signals]]\nname = "x"\nkind = "crossover"\ninterval = "1m"\n'
        'fast = "ema12"\nslow = "nope"\n'
    )
    with pytest.raises(ConfigError, match=r"signal 'x': 'nope' is not computed on interval '1m'"):
        load_config(path, environ={})
