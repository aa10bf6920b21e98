#!/usr/bin/env python3
"""Pin the dashboard's JavaScript libraries from the npm registry into the package.

For each pinned package this script runs ``npm pack NAME@VERSION`` (a download from the
registry; nothing is installed and no package script runs), checks the tarball's sha256
against the value committed below, extracts only the ES-module build and the licence into
``tickserver/static/vendor/<package>/``, and writes ``tickserver/static/vendor/MANIFEST.json``
with the sha256 of every vendored file (a test checks the files against it).

Usage::

    python scripts/vendor.py            # (re)vendor from the registry
    python scripts/vendor.py --check    # verify the committed files equal the pinned tarballs

To upgrade a library: change its ``version``, run ``npm pack NAME@VERSION`` in a scratch
directory, put the ``sha256sum`` of the tarball in ``sha256``, adjust ``files`` if the build's
file names changed, and run this script. Review the diff; commit the vendor folder.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "tickserver" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"


@dataclass(frozen=True)
class Pin:
    """One npm package: exact version, tarball sha256, and which files to take."""

    name: str
    version: str
    sha256: str
    files: dict[str, str] = field(default_factory=dict)  # path in tarball -> vendored name
    licence: str = "unknown"


PINS: tuple[Pin, ...] = (
    Pin(
        name="lightweight-charts",
        version="5.2.1",
        sha256="64310292298df4dd527494865e5d91d447f8bb397b68de3912c2a6465025ee5e",
        files={
            # The standalone ES module bundles its one dependency (fancy-canvas).
            "package/dist/lightweight-charts.standalone.production.mjs": (
                "lightweight-charts.standalone.production.mjs"
            ),
            "package/LICENSE": "LICENSE",
        },
        licence="Apache-2.0",
    ),
    Pin(
        name="graphql-ws",
        version="6.4.2",
        sha256="14516ff4e3feaeded14bd2fcad590276656e8f3b3cc427bfd63e21fa04d4f53c",
        files={
            # The browser client and the shared chunk it imports (relative import, kept as is).
            "package/dist/client.js": "client.js",
            "package/dist/common-CGW11Fyb.js": "common-CGW11Fyb.js",
            "package/LICENSE.md": "LICENSE.md",
        },
        licence="MIT",
    ),
)

# lightweight-charts' licence asks for the NOTICE file's attribution notice and a link to
# https://www.tradingview.com/ on the page; the npm tarball does not carry NOTICE, so it is
# written here from the bundle's own copyright banner.
NOTICE_LWC = "TradingView Lightweight Charts™\nCopyright (c) {year} TradingView, Inc. https://www.tradingview.com/\n"


class VendorError(RuntimeError):
    """A download, checksum or extraction problem."""


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def npm_pack(pin: Pin, dest: Path) -> Path:
    """Download the package tarball with ``npm pack`` and return its path."""
    npm = shutil.which("npm")
    if npm is None:
        raise VendorError("npm not found on PATH (needed to download from the npm registry)")
    spec = f"{pin.name}@{pin.version}"
    print(f"npm pack {spec}", file=sys.stderr)
    proc = subprocess.run(
        [npm, "pack", spec, "--json", "--ignore-scripts", "--pack-destination", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise VendorError(f"npm pack {spec} failed:\n{proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    return dest / info[0]["filename"]


def extract(pin: Pin, tarball: Path) -> dict[str, bytes]:
    """Check the tarball's sha256 and return the pinned files' contents by vendored name."""
    data = tarball.read_bytes()
    got = sha256(data)
    if got != pin.sha256:
        raise VendorError(
            f"{pin.name}@{pin.version}: tarball sha256 {got} does not match the pinned "
            f"{pin.sha256}; refusing to vendor it"
        )
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, name in pin.files.items():
            try:
                info = tar.getmember(member)
            except KeyError:
                raise VendorError(f"{pin.name}@{pin.version}: no {member} in the tarball") from None
            f = tar.extractfile(info) if info.isfile() else None
            if f is None:
                raise VendorError(f"{pin.name}@{pin.version}: {member} is not a regular file")
            out[name] = f.read()
    if pin.name == "lightweight-charts":
        bundle = out["lightweight-charts.standalone.production.mjs"].decode()
        m = re.search(r"Copyright \(c\) (\d{4}) TradingView", bundle)
        if m is None:
            raise VendorError("lightweight-charts: no copyright banner in the bundle")
        out["NOTICE"] = NOTICE_LWC.format(year=m.group(1)).encode()
    return out


def fetch_all() -> list[tuple[Pin, dict[str, bytes]]]:
    """Download and verify every pinned package."""
    with tempfile.TemporaryDirectory(prefix="tickserver-vendor-") as tmp:
        return [(pin, extract(pin, npm_pack(pin, Path(tmp)))) for pin in PINS]


def build_manifest(contents: list[tuple[Pin, dict[str, bytes]]]) -> dict[str, object]:
    """The manifest: per package its pin and the sha256 of each vendored file."""
    return {
        "note": "Written by scripts/vendor.py; tests/unit/test_dashboard_vendor.py checks it.",
        "packages": {
            pin.name: {
                "version": pin.version,
                "licence": pin.licence,
                "tarball_sha256": pin.sha256,
                "files": {
                    f"{pin.name}/{name}": sha256(body) for name, body in sorted(files.items())
                },
            }
            for pin, files in contents
        },
    }


def write(contents: list[tuple[Pin, dict[str, bytes]]]) -> None:
    """Replace the vendor folder with the verified files and the manifest."""
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    for pin, files in contents:
        folder = VENDOR / pin.name
        folder.mkdir(parents=True)
        for name, body in files.items():
            (folder / name).write_bytes(body)
            print(f"  {pin.name}/{name}  {len(body):>8} bytes", file=sys.stderr)
    MANIFEST.write_text(json.dumps(build_manifest(contents), indent=2) + "\n")
    print(f"wrote {MANIFEST.relative_to(ROOT)}", file=sys.stderr)


def check(contents: list[tuple[Pin, dict[str, bytes]]]) -> list[str]:
    """Differences between the committed vendor folder and the pinned tarballs."""
    problems: list[str] = []
    expected: set[Path] = {MANIFEST}
    for pin, files in contents:
        for name, body in files.items():
            path = VENDOR / pin.name / name
            expected.add(path)
            if not path.is_file():
                problems.append(f"missing: {path.relative_to(ROOT)}")
            elif path.read_bytes() != body:
                problems.append(f"differs from {pin.name}@{pin.version}: {path.relative_to(ROOT)}")
    for path in VENDOR.rglob("*"):
        if path.is_file() and path not in expected:
            problems.append(f"not from any pinned package: {path.relative_to(ROOT)}")
    if MANIFEST.is_file() and json.loads(MANIFEST.read_text()) != build_manifest(contents):
        problems.append(f"{MANIFEST.relative_to(ROOT)} is out of date")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Vendor (or check) the pinned packages."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="verify the committed vendor folder against the pinned tarballs; change nothing",
    )
    args = parser.parse_args(argv)
    try:
        contents = fetch_all()
    except VendorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.check:
        problems = check(contents)
        for p in problems:
            print(p, file=sys.stderr)
        print("vendor folder OK" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    write(contents)
    return 0


if __name__ == "__main__":
    sys.exit(main())
