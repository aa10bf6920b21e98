"""The EC2 artifact end to end: built by deploy/ec2/build-artifact.sh (the deploy guide's
command), installed by tickserver-install as cloud-init does, configured from the same config
template, started exactly as tickserver.service's ExecStart starts it (same interpreter,
arguments, environment, working directory and log file), answering /readyz, and stopping
with exit status 0 on SIGTERM within the unit's TimeoutStopSec."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.emf import validate_emf
from tests.support.s3 import AWS_ENV, MotoS3
from tests.support.server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EC2 = ROOT / "deploy" / "ec2"
UNIT = EC2 / "src" / "tickserver.service"
TOKEN = "e2e-token-0123456789"
# Absolute paths of the instance that the test relocates under a scratch root.
INSTANCE_DIRS = ("/opt/tickserver", "/etc/tickserver", "/var/lib/tickserver",
                 "/var/cache/tickserver", "/var/log/tickserver")  # fmt: skip


def unit_entries() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def relocate(value: str, root: Path) -> str:
    for d in INSTANCE_DIRS:
        if value == d or value.startswith(d + "/"):
            return str(root) + value
    return value


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact, built by the script the deploy guide runs (cached between runs)."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [str(EC2 / "build-artifact.sh"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHON": sys.executable},
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file()
    assert path.with_name(path.name + ".sha256").is_file()
    return path


@pytest.fixture
def instance_root(tmp_path: Path, artifact: Path) -> Path:
    """A scratch root where tickserver-install and the config are laid out as on the instance."""
    root = tmp_path / "root"
    proc = subprocess.run(
        [str(EC2 / "src" / "tickserver-install"), "--root", str(root), str(artifact)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return root


def write_instance_config(root: Path, port: int, s3: MotoS3 | None = None) -> None:
    sys.path.insert(0, str(EC2))
    import render

    values = {
        "ListenAddress": "127.0.0.1",
        "ApiPort": str(port),
        "Symbols": "AAPL,MSFT",
        "Sources": "sim",
        "KafkaEnabled": "false",
        "KafkaBootstrapServers": "",
        "MetricsNamespace": "tickserver",
        "AWS::StackName": "e2e",
        "AWS::Region": "us-east-1",
        "DataBucket": "tickserver-e2e",
        "DataPrefix": "tickserver/",
    }
    etc = root / "etc" / "tickserver"
    etc.mkdir(parents=True)
    toml = render.sub((EC2 / "src" / "tickserver.toml").read_text(), values)
    (etc / "tickserver.toml").write_text(toml)
    # What the bootstrap script writes (the token from SSM, the region).
    env = f"TICKSERVER_API_TOKEN={TOKEN}\nAWS_REGION=us-east-1\nAWS_DEFAULT_REGION=us-east-1\n"
    if s3 is not None:
        # On EC2 the instance role provides credentials and S3 is AWS's; here moto stands in.
        env += f"TICKSERVER_STORE__S3_ENDPOINT_URL={s3.endpoint}\n"
        env += "".join(f"{k}={v}\n" for k, v in AWS_ENV.items() if k != "AWS_DEFAULT_REGION")
    (etc / "tickserver.env").write_text(env)


class UnitProcess:
    """tickserver started the way systemd starts tickserver.service, relocated under root."""

    def __init__(self, root: Path) -> None:
        unit = unit_entries()
        self.unit = unit
        self.argv = [relocate(a, root) for a in shlex.split(unit["ExecStart"][0])]
        env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
        for assignment in shlex.split(" ".join(unit.get("Environment", []))):
            key, _, value = assignment.partition("=")
            env[key] = relocate(value, root)
        env_file = Path(relocate(unit["EnvironmentFile"][0].lstrip("-"), root))
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        self.env = env
        self.cwd = Path(relocate(unit["WorkingDirectory"][0], root))
        self.log_path = Path(relocate(unit["StandardOutput"][0].removeprefix("append:"), root))
        assert unit["StandardError"] == unit["StandardOutput"]
        self.stop_timeout = float(unit["TimeoutStopSec"][0])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # systemd creates StateDirectory=/CacheDirectory=; tmpfiles.d creates the log directory.
        for d in (self.cwd, Path(self.env["SHIV_ROOT"]), self.log_path.parent):
            d.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out


@pytest.fixture
def moto_s3() -> Iterator[MotoS3]:
    s3 = MotoS3().start()
    s3.client().create_bucket(Bucket="tickserver-e2e")
    yield s3
    s3.stop()


@pytest.fixture
def unit_process(instance_root: Path, moto_s3: MotoS3) -> Iterator[tuple[UnitProcess, int]]:
    port = free_port()
    write_instance_config(instance_root, port, moto_s3)
    up = UnitProcess(instance_root)
    yield up, port
    up.kill()


def wait_ready(up: UnitProcess, url: str, timeout: float = 180.0) -> httpx.Response:
    assert up.proc is not None
    deadline = time.monotonic() + timeout  # the first start unpacks the zipapp
    last: Any = None
    while time.monotonic() < deadline:
        if up.proc.poll() is not None:
            pytest.fail(f"exited with {up.proc.returncode}:\n{up.log_path.read_text()[-4000:]}")
        try:
            last = httpx.get(url + "/readyz", timeout=2)
            if last.status_code == 200:
                return last
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    pytest.fail(
        f"/readyz not 200 within {timeout}s (last: {last}):\n{up.log_path.read_text()[-4000:]}"
    )


def test_artifact_started_as_the_unit_does_serves_and_stops_cleanly(
    unit_process: tuple[UnitProcess, int], moto_s3: MotoS3
) -> None:
    # Arrange
    up, port = unit_process
    url = f"http://127.0.0.1:{port}"
    assert up.argv[0] == "/usr/bin/python3"  # Debian 12's interpreter, as on the instance
    # Act
    up.start()
    ready = wait_ready(up, url)
    unauthorized = httpx.get(url + "/metrics", timeout=5)
    metrics = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert up.proc is not None
    up.proc.send_signal(signal.SIGTERM)
    code = up.proc.wait(timeout=up.stop_timeout)
    # Assert
    assert ready.json()["status"] == "ready"
    assert unauthorized.status_code == 401
    assert "tickserver_ready 1" in metrics.text
    assert code == 0
    records = up.log_lines()
    emf = [r for r in records if "_aws" in r]
    for doc in emf:
        validate_emf(doc)
    assert any(doc.get("Starts") == 1 and doc.get("Stack") == "e2e" for doc in emf)
    events = [r.get("event") for r in records]
    assert "listening" in events
    assert events[-1] == "stopped"
    # The deployed config keeps history in the stack's bucket: the stop flushed it there.
    assert any("type=trades/" in k for k in moto_s3.keys("tickserver-e2e", "tickserver/"))


def test_install_keeps_previous_release_for_rollback(instance_root: Path, artifact: Path) -> None:
    # Arrange: a second release of the same build under another name
    install = str(EC2 / "src" / "tickserver-install")
    second = instance_root.parent / artifact.name.replace(".pyz", "-2.pyz")
    second.write_bytes(artifact.read_bytes())
    sha = artifact.with_name(artifact.name + ".sha256").read_text().split()[0]
    home = instance_root / "opt" / "tickserver"
    # Act
    subprocess.run([install, "--root", str(instance_root), str(second), sha], check=True)
    after_upgrade = os.readlink(home / "tickserver.pyz")
    subprocess.run([install, "--root", str(instance_root), "--rollback"], check=True)
    after_rollback = os.readlink(home / "tickserver.pyz")
    bad = subprocess.run(
        [install, "--root", str(instance_root), str(second), "0" * 64],
        capture_output=True,
        text=True,
    )
    # Assert
    assert after_upgrade == f"releases/{second.name}"
    assert after_rollback == f"releases/{artifact.name}"
    assert bad.returncode != 0
    assert "checksum mismatch" in bad.stderr
    assert os.readlink(home / "tickserver.pyz") == f"releases/{artifact.name}"
