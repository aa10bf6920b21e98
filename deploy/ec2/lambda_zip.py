#!/usr/bin/env python3
"""Package the Lambda compactor: tickserver's Python sources (no compiled core) plus the
pinned wheels it needs (lambda-requirements.txt names them; versions and hashes come from
requirements.lock), for Lambda's Python and architecture, into a deterministic zip.

Called by build-artifact.sh; by hand:
    python deploy/ec2/lambda_zip.py --src . --lock deploy/ec2/requirements.lock \
        --arch x86_64 --work /tmp/lz --output dist/compactor.zip
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLATFORMS = {  # Lambda's python3.12 runtime runs on Amazon Linux 2023 (glibc 2.34)
    "x86_64": ["manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64"],
    "arm64": ["manylinux_2_34_aarch64", "manylinux_2_28_aarch64", "manylinux2014_aarch64"],
}


def lock_entries(lock: Path, names: set[str]) -> str:
    """The lock's entries (pin and hashes) for ``names``."""
    out, keep = [], False
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if m:
            keep = re.sub(r"[-_.]+", "-", m.group(1)).lower() in names
        if keep and not line.lstrip().startswith("#"):
            out.append(line)
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--lock", type=Path, required=True)
    p.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    p.add_argument("--python-version", default="3.12")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    a = p.parse_args()
    names = {
        re.sub(r"[-_.]+", "-", n.strip()).lower()
        for n in (HERE / "lambda-requirements.txt").read_text().splitlines()
        if n.strip() and not n.startswith("#")
    }
    site = a.work / "site"
    shutil.rmtree(a.work, ignore_errors=True)
    site.mkdir(parents=True)
    req = a.work / "requirements.txt"
    req.write_text(lock_entries(a.lock, names))
    platforms = [arg for plat in PLATFORMS[a.arch] for arg in ("--platform", plat)]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--no-deps", "--require-hashes", "--only-binary=:all:",
         "--implementation", "cp", "--python-version", a.python_version, *platforms,
         "--target", str(site), "-r", str(req)],
        check=True,
    )  # fmt: skip
    # Lambda allows 250 MB unzipped: drop what only building or testing these packages needs.
    junk_dirs = ["bin", "__pycache__", "tests", "include"]
    for junk in [d for name in junk_dirs for d in site.rglob(name) if d.is_dir()]:
        shutil.rmtree(junk, ignore_errors=True)
    for pattern in ("*.pyx", "*.pxd", "*.pxi", "*.h", "*.hpp", "*.cc", "*.cpp"):
        for f in site.rglob(pattern):
            f.unlink()
    pkg = a.src / "tickserver"
    for f in sorted(pkg.rglob("*.py")):
        rel = f.relative_to(a.src)
        if rel.parts[1] in {"benchmarks", "static"}:
            continue
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    stamp = max(epoch, 315532800)  # zip timestamps start in 1980
    import time

    date_time = time.gmtime(stamp)[:6]
    a.output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(a.output, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for f in sorted(p for p in site.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f.relative_to(site).as_posix(), date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, f.read_bytes())
    print(f"{a.output} ({a.output.stat().st_size // 1024} KiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
