"""deploy/ec2: generated files, CloudFormation (cfn-lint), IAM least privilege, cloud-init
user-data, the systemd unit (systemd-analyze), the instance config and the dependency lock."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tickserver.config import load_config
from tickserver.sinks.cloudwatch import EXPORTS

ROOT = Path(__file__).resolve().parents[2]
EC2 = ROOT / "deploy" / "ec2"
sys.path.insert(0, str(EC2))
import render  # noqa: E402

UNIT = EC2 / "src" / "tickserver.service"
VALUES = {
    "ListenAddress": "127.0.0.1",
    "ApiPort": "8080",
    "Symbols": "AAPL,MSFT",
    "Sources": "sim",
    "KafkaEnabled": "false",
    "KafkaBootstrapServers": "",
    "MetricsNamespace": "tickserver",
    "AWS::StackName": "test-stack",
    "AWS::Region": "us-east-1",
    "LogGroup": "/tickserver/test-stack",
    "ApiTokenParameter": "/tickserver/api-token",
    "ArtifactBucket": "artifacts",
    "ArtifactPrefix": "tickserver/releases/",
    "ArtifactName": "tickserver.pyz",
    "ArtifactSha256": "0" * 64,
    "DataBucket": "tickserver-data",
    "DataPrefix": "tickserver/",
}


def unit_entries(text: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (keys may repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def cfn_template() -> dict[str, Any]:
    return yaml.safe_load((EC2 / "tickserver.cfn.yaml").read_text())


# ------------------------------------------------------------------ generated files


def test_generated_template_and_user_data_are_up_to_date() -> None:
    # Act
    proc = subprocess.run(
        [sys.executable, str(EC2 / "render.py"), "--check"], capture_output=True, text=True
    )
    # Assert
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_template_passes_cfn_lint() -> None:
    # Act
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(EC2 / "tickserver.cfn.yaml")],
        capture_output=True,
        text=True,
    )
    # Assert
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_embedded_scripts_have_no_nested_placeholders() -> None:
    # Fn::Sub ends a ${...} at the first "}", so "${a:-${b}}" would come out mangled.
    for src, *_ in render.FILES:
        text = (EC2 / "src" / src).read_text()
        assert not re.search(r"\$\{[^}]*\$\{", text), src


def test_substitution_follows_fn_sub_and_names_missing_values() -> None:
    assert render.sub("a ${X} ${!Y} ${AWS::Region}", {"X": "1", "AWS::Region": "r"}) == (
        "a 1 ${Y} r"
    )
    with pytest.raises(KeyError, match="no value for Z"):
        render.sub("${Z}", {})


# ------------------------------------------------------------------ IAM


def _fixed_part(resource: str) -> str:
    return resource[:-1] if resource.endswith("*") else resource


SPECIFIC = (
    "${DataPrefix}",
    "${ArtifactPrefix}",
    "${LogGroup}",
    "${AWS::StackName}",
    "${MskClusterPath}",
)


def policy_violations(policy: dict[str, Any]) -> list[str]:
    """Everything in ``policy`` wider than the stack's own bucket prefix, log group, stack,
    MSK topics and metrics namespace."""
    bad = []
    for st in policy["Statement"]:
        sid = st.get("Sid", "?")
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
            bad.append(f"{sid}: only plain Allow statements are expected")
        bad += [f"{sid}: wildcard action {a}" for a in actions if "*" in a]
        for r in resources:
            if r == "*":
                cond = st.get("Condition", {}).get("StringEquals", {})
                if (
                    actions != ["cloudwatch:PutMetricData"]
                    or cond.get("cloudwatch:namespace") != "${MetricsNamespace}"
                ):
                    bad.append(f"{sid}: Resource * beyond PutMetricData in the namespace")
                continue
            if r == "arn:${AWS::Partition}:s3:::${DataBucket}":
                prefix = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                if actions != ["s3:ListBucket"] or prefix != ["${DataPrefix}*"]:
                    bad.append(f"{sid}: bucket-level access beyond listing the prefix")
                continue
            if "*" in _fixed_part(r):
                bad.append(f"{sid}: wildcard inside {r}")
            if r.endswith("*") and not any(s in r for s in SPECIFIC):
                bad.append(f"{sid}: {r} is not limited to this stack's own resources")
            if "${ArtifactBucket}" in r and actions != ["s3:GetObject"]:
                bad.append(f"{sid}: releases are read-only")
            if ":s3:::${DataBucket}" in r and not r.startswith(
                "arn:${AWS::Partition}:s3:::${DataBucket}/${DataPrefix}"
            ):
                bad.append(f"{sid}: {r} is outside the data prefix")
    return bad


def test_iam_policy_grants_nothing_beyond_prefix_namespace_and_own_resources() -> None:
    # Arrange
    policy = json.loads((EC2 / "iam-policy.json").read_text())
    # Act / Assert
    assert policy_violations(policy) == []


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:*", "arn:${AWS::Partition}:s3:::${DataBucket}/${DataPrefix}*"),
        ("s3:GetObject", "arn:${AWS::Partition}:s3:::${DataBucket}/*"),
        ("s3:GetObject", "*"),
        ("logs:PutLogEvents", "arn:${AWS::Partition}:logs:*:*:log-group:*"),
        ("s3:PutObject", "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ArtifactPrefix}*"),
    ],
)
def test_iam_check_rejects_wider_grants(action: str, resource: str) -> None:
    policy = {
        "Statement": [{"Sid": "x", "Effect": "Allow", "Action": action, "Resource": resource}]
    }
    assert policy_violations(policy) != []


def test_template_instance_role_uses_exactly_the_policy_file() -> None:
    # Arrange
    policy = json.loads((EC2 / "iam-policy.json").read_text())
    role = cfn_template()["Resources"]["InstanceRole"]["Properties"]["Policies"][0]
    statements = role["PolicyDocument"]["Statement"]

    def plain(node: Any) -> Any:  # undo the Fn::Sub / Fn::If wrapping render.py adds
        if isinstance(node, dict) and "Fn::Sub" in node:
            sub = node["Fn::Sub"]
            return sub[0] if isinstance(sub, list) else sub
        if isinstance(node, dict) and "Fn::If" in node:
            return plain(node["Fn::If"][1])
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    # Act / Assert
    assert [plain(s) for s in statements] == policy["Statement"]


# ------------------------------------------------------------------ cloud-init


def test_user_data_fits_ec2_limit_and_is_cloud_config() -> None:
    # Arrange
    text = render.sub(render.user_data(), VALUES)
    # Act
    doc = yaml.safe_load(text)
    # Assert
    assert len(text.encode()) <= render.USER_DATA_LIMIT
    assert text.startswith("#cloud-config\n")
    paths = {f["path"] for f in doc["write_files"]}
    assert {"/etc/tickserver/tickserver.toml", "/etc/systemd/system/tickserver.service"} <= paths
    assert doc["runcmd"] == [["/usr/local/sbin/tickserver-bootstrap"]]


def test_user_data_delivers_the_unit_and_scripts_unchanged_through_substitution() -> None:
    # Arrange
    doc = yaml.safe_load(render.sub(render.user_data(), VALUES))
    files = {f["path"]: f["content"] for f in doc["write_files"]}
    # Act / Assert: non-template files survive Fn::Sub byte for byte (comment lines aside)
    for src, path, _mode, is_template in render.FILES:
        if not is_template:
            assert files[path] == render._embedded((EC2 / "src" / src).read_text()), src
    agent = json.loads(files["/etc/tickserver/cloudwatch-agent.json"])
    assert agent["metrics"]["append_dimensions"] == {"InstanceId": "${aws:InstanceId}"}
    assert agent["logs"]["logs_collected"]["files"]["collect_list"][0]["file_path"] == (
        unit_entries(UNIT.read_text())["StandardOutput"][0].removeprefix("append:")
    )


def test_instance_config_renders_to_a_valid_config(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "tickserver.toml"
    path.write_text(render.sub((EC2 / "src" / "tickserver.toml").read_text(), VALUES))
    # Act
    cfg = load_config(path, environ={})
    # Assert
    assert cfg.server.port == 8080
    assert cfg.market.symbols == ["AAPL", "MSFT"]
    assert cfg.cloudwatch.enabled
    assert cfg.cloudwatch.dimensions == {"Stack": "test-stack"}


def test_alarms_watch_metrics_the_sink_emits() -> None:
    # Arrange
    emitted = {e.name for e in EXPORTS} | {"Ticks", "TicksPerSecond", "MarketOpen", "Starts"}
    alarms = [r for r in cfn_template()["Resources"].values() if r["Type"].endswith("::Alarm")]
    # Act
    watched = {a["Properties"]["MetricName"] for a in alarms if "MetricName" in a["Properties"]}
    for a in alarms:
        for m in a["Properties"].get("Metrics", []):
            if "MetricStat" in m:
                watched.add(m["MetricStat"]["Metric"]["MetricName"])
                assert m["MetricStat"]["Metric"]["Dimensions"][0]["Name"] == "Stack"
    # Assert
    assert watched == {"Ticks", "MarketOpen", "SinkBacklog", "Starts", "Ready"}
    assert watched <= emitted


# ------------------------------------------------------------------ shell scripts


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="scripts/test installs shellcheck")
def test_shell_scripts_pass_shellcheck(tmp_path: Path) -> None:
    # Arrange: the bootstrap as the instance receives it (placeholders filled)
    text = (EC2 / "src" / "bootstrap.sh").read_text()
    bootstrap = tmp_path / "bootstrap.sh"
    bootstrap.write_text(render.sub(text, dict.fromkeys(render.placeholders(text), "x")))
    scripts = [
        EC2 / "build-artifact.sh",
        EC2 / "lock.sh",
        EC2 / "src" / "tickserver-install",
        bootstrap,
    ]
    # Act
    proc = subprocess.run(
        ["shellcheck", "--severity=warning", *map(str, scripts)], capture_output=True, text=True
    )
    # Assert
    assert proc.returncode == 0, proc.stdout


# ------------------------------------------------------------------ systemd unit

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze missing: scripts/test installs Debian's systemd package",
)


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify() -> None:
    # Arrange: verify checks that ExecStart's binary exists; the unit runs Debian's python3
    exec_start = unit_entries(UNIT.read_text())["ExecStart"][0].split()[0]
    assert Path(exec_start).exists(), f"{exec_start} is missing (Debian's python3 package)"
    # Act
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(UNIT)], capture_output=True, text=True
    )
    # Assert
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


@needs_systemd_analyze
def test_unit_security_exposure_is_ok_or_better() -> None:
    # Act: --threshold=20 fails the command above an exposure of 2.0
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
    )
    # Assert
    assert proc.returncode == 0, proc.stdout + proc.stderr
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", proc.stdout)
    assert level is not None, proc.stdout
    assert float(level.group(1)) <= 2.0
    assert level.group(2) in {"OK", "SAFE"}


def test_unit_stops_after_tickserver_drains_and_runs_unprivileged() -> None:
    # Arrange
    unit = unit_entries(UNIT.read_text())
    cfg = tomllib.loads(render.sub((EC2 / "src" / "tickserver.toml").read_text(), VALUES))
    drain = cfg["server"]["shutdown_timeout_s"] + 5  # cli.serve gives up after this
    # Act / Assert
    assert float(unit["TimeoutStopSec"][0]) > drain
    assert unit["Restart"] == ["on-failure"]
    assert unit["DynamicUser"] == ["yes"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["StateDirectory"] == ["tickserver"]
    assert unit["EnvironmentFile"] == ["-/etc/tickserver/tickserver.env"]
    assert "--config /etc/tickserver/tickserver.toml" in unit["ExecStart"][0]


# ------------------------------------------------------------------ dependency lock


def test_lock_pins_every_runtime_dependency_within_its_range() -> None:
    # Arrange
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", (EC2 / "requirements.lock").read_text(), re.M)
    )
    norm = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    # Act
    problems = []
    for dep in deps:
        req = Requirement(dep)
        pinned = norm.get(re.sub(r"[-_.]+", "-", req.name).lower())
        if pinned is None or not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{dep} (locked: {pinned})")
    # Assert
    assert problems == [], "requirements.lock is stale; run deploy/ec2/lock.sh: " + str(problems)


# ------------------------------------------------------------------ the deploy guide

GUIDE = ROOT / "docs" / "deploy.md"


def guide_commands() -> list[str]:
    """Shell commands of the guide's sh blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    return [c for b in blocks for c in b.replace("\\\n", " ").splitlines() if c.strip()]


def test_guide_builds_and_installs_with_the_scripts_the_tests_run() -> None:
    commands = guide_commands()
    assert any(c.startswith("deploy/ec2/build-artifact.sh ") for c in commands)
    assert any(c.startswith("sudo tickserver-install s3://") for c in commands)
    assert any(c.startswith("sudo tickserver-install --rollback") for c in commands)


def test_guide_stack_command_sets_every_required_parameter_by_its_name() -> None:
    # Arrange
    params = cfn_template()["Parameters"]
    required = {name for name, p in params.items() if "Default" not in p}
    [create] = [c for c in guide_commands() if "cloudformation deploy" in c and "VpcId=" in c]
    # Act
    given = set(re.findall(r"\b([A-Z][A-Za-z0-9]+)=", create))
    # Assert
    assert required <= given, f"missing: {required - given}"
    assert given <= set(params), f"unknown: {given - set(params)}"


def test_guide_manual_user_data_command_fills_every_placeholder() -> None:
    [cmd] = [c for c in guide_commands() if "render.py user-data" in c]
    given = set(re.findall(r"--set ([A-Za-z0-9:]+)=", cmd))
    assert render.placeholders(render.user_data()) <= given
