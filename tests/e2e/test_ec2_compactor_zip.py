"""The Lambda compactor zip: built by deploy/ec2/lambda_zip.py (as build-artifact.sh does) and
run from the unpacked zip alone, with only what Lambda's runtime adds (boto3), against moto's
S3 server. Built for this machine's Python and architecture so that it can run here; the
deployed zip differs only in the wheels' Python tag (Lambda's python3.12)."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.support.server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EC2 = ROOT / "deploy" / "ec2"
# What Lambda's Python runtime provides besides the standard library.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    httpx.post(url + "/moto-api/reset", timeout=10).raise_for_status()
    try:
        yield url
    finally:
        server.stop()


def runtime_dir(dest: Path) -> Path:
    """A folder holding only the packages Lambda's runtime provides (links to ours)."""
    dest.mkdir()
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        src = Path(spec.origin)
        src = src.parent if src.name == "__init__.py" else src
        (dest / src.name).symlink_to(src)
    return dest


def test_compactor_runs_from_its_zip_against_s3(tmp_path: Path, moto_s3: str) -> None:
    # Arrange
    if not (ROOT / "tickserver" / "compactor.py").exists():
        pytest.skip("tickserver/compactor.py (issue 6) is not on this branch yet")
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    zip_path = tmp_path / "compactor.zip"
    subprocess.run(
        [sys.executable, str(EC2 / "lambda_zip.py"), "--src", str(ROOT),
         "--lock", str(EC2 / "requirements.lock"), "--arch", arch,
         "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}",
         "--work", str(tmp_path / "work"), "--output", str(zip_path)],
        check=True,
        timeout=600,
    )  # fmt: skip
    task = tmp_path / "task"
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(task)
    runtime = runtime_dir(tmp_path / "runtime")
    s3 = boto3.client("s3", endpoint_url=moto_s3)
    s3.create_bucket(Bucket="history")
    event = {"bucket": "history", "prefix": "tickserver/", "date": "2024-07-01"}
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]\n"
        "from tickserver import compactor\n"
        "import pyarrow\n"
        f"assert pyarrow.__file__.startswith({str(task)!r}), pyarrow.__file__\n"
        f"print(json.dumps(compactor.handler(json.loads({json.dumps(event)!r}), None)))\n"
    )
    # Act: Debian's python3 in isolated mode, so nothing of this venv leaks in
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", code],
        capture_output=True,
        text=True,
        env={
            "PATH": os.environ["PATH"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": moto_s3,
        },
        timeout=300,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert isinstance(json.loads(proc.stdout.strip().splitlines()[-1]), dict)
