"""The dashboard's static files: vendored libraries match their manifest and pins, the page's
module graph is complete (no build step), and the page stays within its CSP."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "tickserver" / "static"
VENDOR = STATIC / "vendor"


def _manifest() -> dict[str, dict[str, object]]:
    data = json.loads((VENDOR / "MANIFEST.json").read_text())
    packages: dict[str, dict[str, object]] = data["packages"]
    return packages


def _vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vendor_script", ROOT / "scripts" / "vendor.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules[spec.name]
    return mod


def test_vendored_files_match_the_manifest_sha256() -> None:
    # Arrange
    listed: dict[str, str] = {}
    for pkg in _manifest().values():
        listed.update(pkg["files"])  # type: ignore[arg-type]
    on_disk = {
        p.relative_to(VENDOR).as_posix()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    }
    # Act
    actual = {name: hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() for name in on_disk}
    # Assert
    assert set(listed) == on_disk, "vendor folder and MANIFEST.json list different files"
    assert actual == listed


def test_manifest_records_the_versions_and_tarball_hashes_pinned_in_the_script() -> None:
    # Arrange
    script = _vendor_script()
    # Act
    pins = {p.name: (p.version, p.sha256) for p in script.PINS}
    recorded = {name: (pkg["version"], pkg["tarball_sha256"]) for name, pkg in _manifest().items()}
    # Assert
    assert recorded == pins


def test_each_vendored_package_ships_its_licence() -> None:
    # Arrange / Act
    files = {name: set(pkg["files"]) for name, pkg in _manifest().items()}  # type: ignore[call-overload]
    # Assert
    assert "lightweight-charts/LICENSE" in files["lightweight-charts"]
    assert "lightweight-charts/NOTICE" in files["lightweight-charts"]
    assert "graphql-ws/LICENSE.md" in files["graphql-ws"]
    assert "Apache License" in (VENDOR / "lightweight-charts" / "LICENSE").read_text()
    assert "MIT License" in (VENDOR / "graphql-ws" / "LICENSE.md").read_text()


def test_page_shows_lightweight_charts_attribution_notice_and_link() -> None:
    # Arrange
    html = (STATIC / "index.html").read_text()
    notice = (VENDOR / "lightweight-charts" / "NOTICE").read_text()
    # Act
    year = re.search(r"Copyright \(c\) (\d{4}) TradingView, Inc\.", notice)
    # Assert
    assert year is not None
    assert f"Copyright (c) {year.group(1)} TradingView, Inc." in html
    assert 'href="https://www.tradingview.com/"' in html


def _imports(js: Path) -> list[str]:
    text = js.read_text()
    # Statements start a line or follow a ';' (minified code); strings mentioning imports don't.
    pattern = r"""(?:^|;)\s*(?:import|export)\b[^;'"]*?from\s*['"]([^'"]+)['"]"""
    return re.findall(pattern, text, re.M)


def test_every_module_the_page_loads_exists_with_no_bare_imports() -> None:
    # Arrange
    html = (STATIC / "index.html").read_text()
    entry = [u for u in re.findall(r'(?:src|href)="(/static/[^"]+)"', html)]
    seen: set[Path] = set()
    todo = [STATIC / u.removeprefix("/static/") for u in entry]
    missing: list[str] = []
    bare: list[str] = []
    # Act: walk the ES-module graph from the page
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            missing.append(str(path.relative_to(STATIC)))
            continue
        if path.suffix not in (".js", ".mjs"):
            continue
        for spec in _imports(path):
            if not spec.startswith((".", "/")):
                bare.append(f"{path.name}: {spec}")
                continue
            target = (
                STATIC / spec.removeprefix("/static/")
                if spec.startswith("/")
                else (path.parent / spec).resolve()
            )
            todo.append(target)
    # Assert
    assert missing == []
    assert bare == [], "bare specifiers need an import map, which the CSP does not allow"
    assert STATIC / "js" / "main.js" in seen
    assert VENDOR / "graphql-ws" / "common-CGW11Fyb.js" in seen


def test_page_has_no_inline_script_or_style_and_no_external_urls() -> None:
    # Arrange
    html = (STATIC / "index.html").read_text()
    own = [
        *sorted((STATIC / "js").glob("*.js")),
        STATIC / "dashboard.css",
    ]
    # Act
    inline_scripts = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    external_in_html = [
        u
        for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
        if "tradingview.com" not in u
    ]
    external_in_code = [p.name for p in own if re.search(r"https?://", p.read_text())]
    # Assert
    assert inline_scripts == []
    assert "<style" not in html
    assert " style=" not in html
    assert external_in_html == []
    assert external_in_code == []
