"""docs/sources.md stays true: every TOML example validates, and the documented defaults are
the models' defaults."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tickserver.config import ValidationConfig, load_config
from tickserver.sources.alphavantage import AlphaVantageConfig
from tickserver.sources.yfinance import YFinanceConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "sources.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
CONFIGS = [b for b in BLOCKS if "[project." not in b]  # the rest are a package's pyproject


@pytest.mark.parametrize("block", CONFIGS)
def test_toml_examples_in_the_docs_validate(block: str, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(block)
    load_config(path, environ={})


@pytest.mark.parametrize(
    ("table", "model"),
    [
        (("sources", "yfinance"), YFinanceConfig),
        (("sources", "alphavantage"), AlphaVantageConfig),
        (("sources", "validation"), ValidationConfig),
    ],
)
def test_documented_defaults_are_the_defaults(table: tuple[str, str], model: Any) -> None:
    documented: dict[str, Any] = {}
    for block in BLOCKS:
        data = tomllib.loads(block)
        section = data.get(table[0], {}).get(table[1])
        if section and "# defaults" in block.split("\n", 1)[0]:
            documented = section
    assert documented, f"no defaults block for [{'.'.join(table)}]"
    defaults = model()
    for key, value in documented.items():
        assert getattr(defaults, key) == value, key
    assert set(model.model_fields) - set(documented) <= {
        "symbols",
        "http_base_url",
        "cache_dir",
        "entitlement",
    }
