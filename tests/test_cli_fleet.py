"""The fleet commands as a user runs them: the real ``edgeloop`` console script in a
subprocess, against a running simulated fleet on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.fleet.agent.home import AgentHome
from app.fleet.signing import load_or_create_signing_key
from tests.fleet.fleet_env import FleetEnv, fleet_env
from tests.support.releases import make_release
from tests.test_cli import edgeloop

FAST = ["--min-fps", "1", "--health-window", "2", "--health-timeout", "30"]


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    with fleet_env(tmp_path, count=2) as built:
        yield built


def _table(stdout: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the printed table whose header starts with ``first_header``, by column.

    Cells may hold single spaces (a device name), so columns are cut where the header's
    names start: ``echo_table`` puts two spaces between columns.
    """
    lines = stdout.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    header = lines[top]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2:i] == "  ")]
    bounds = list(zip(starts, starts[1:] + [None]))
    names = [header[a:b].strip() for a, b in bounds]
    rows = []
    for line in lines[top + 1:]:
        if not line.strip():
            break
        rows.append({name: line[a:b].strip() for name, (a, b) in zip(names, bounds)})
    return rows


def _column(stdout: str, first_header: str, key: str, value: str) -> dict[str, str]:
    return {row[key]: row[value] for row in _table(stdout, first_header)}


def test_discover_enroll_pull_deploy_from_the_command_line(env: FleetEnv) -> None:
    p = ["--project", str(env.project.root)]
    first, second = (d.spec.device_id for d in env.devices)

    found = edgeloop("devices", "discover", "--seconds", "4", *p)
    assert found.returncode == 0, found.stderr
    assert first in found.stdout and second in found.stdout
    listed = edgeloop("devices", "list", *p)
    states = _column(listed.stdout, "DEVICE", "DEVICE", "STATE")
    assert states[first] == "discovered" and states[second] == "discovered"

    # A host key must be confirmed: --yes alone is refused, a "no" at the prompt enrolls nothing.
    key = ["--bootstrap-key", str(env.workdir / "id_ed25519")]
    blind = edgeloop("devices", "enroll", first, "--yes", *key, *p)
    assert blind.returncode == 2 and "--fingerprint" in blind.stderr
    assert "Traceback" not in blind.stderr
    declined = edgeloop("devices", "enroll", first, *key, *p, input="n\n")
    assert declined.returncode == 1 and "Nothing was enrolled" in declined.stdout
    assert env.device(0).endpoint.host_key_fingerprint in declined.stdout
    accepted = edgeloop("devices", "enroll", first, *key, *p, input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "pinned" in accepted.stdout
    pinned = edgeloop("devices", "enroll", second, "--yes", "--fingerprint",
                      env.device(1).endpoint.host_key_fingerprint, *key, *p)
    assert pinned.returncode == 0, pinned.stderr

    env.wait_for_spool(0, 3)
    env.wait_for_spool(1, 3)
    pulled = edgeloop("pull", *p)
    assert pulled.returncode == 0, pulled.stderr
    imported = _column(pulled.stdout, "DEVICE", "DEVICE", "IMPORTED")
    assert set(imported) == {first, second} and min(map(int, imported.values())) >= 3
    assert env.captures_in_db() == sum(map(int, imported.values()))
    assert "No quarantined captures." in edgeloop("devices", "quarantine", *p).stdout

    signing = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-2", signing, seed=2)
    added = edgeloop("releases", "add", str(folder), *p)
    assert added.returncode == 0, added.stderr
    assert _column(edgeloop("releases", "list", *p).stdout, "VERSION", "VERSION",
                   "STATUS") == {"edge-2": "approved"}

    deployed = edgeloop("deploy", "edge-2", "--canary", second, *FAST, *p)
    assert deployed.returncode == 0, deployed.stderr
    assert "completed" in deployed.stdout
    for device in env.devices:
        assert AgentHome(device.home.root).current.resolve().name == "edge-2"
    status = edgeloop("rollout", "status", *p)
    stages = {row["DEVICE"]: (row["STAGE"], row["STATE"])
              for row in _table(status.stdout, "STAGE")}
    assert stages == {second: ("1", "healthy"), first: ("2", "healthy")}
    installs = _column(edgeloop("devices", "list", *p).stdout, "DEVICE", "DEVICE", "INSTALL")
    assert installs == {first: "edge-2 healthy", second: "edge-2 healthy"}
    halted = edgeloop("rollout", "halt", *p)
    assert halted.returncode == 2 and "completed, not running" in halted.stderr

    health = edgeloop("devices", "health", *p)
    assert health.returncode == 0, health.stderr
    assert _column(health.stdout, "DEVICE", "DEVICE", "MODEL") == {first: "edge-2",
                                                                   second: "edge-2"}

    forgot = edgeloop("devices", "forget", first, "--yes", *p)
    assert forgot.returncode == 0, forgot.stderr
    refused = edgeloop("pull", "--device", first, *p)
    assert refused.returncode == 1 and "not enrolled" in refused.stdout


def test_a_failed_rollout_exits_non_zero_and_says_why(env: FleetEnv) -> None:
    p = ["--project", str(env.project.root)]
    env.enroll(0)
    signing = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-9", signing, seed=9)
    assert edgeloop("releases", "add", str(folder), *p).returncode == 0
    unreachable_fps = ["--min-fps", "10000", "--health-window", "2", "--health-timeout", "10"]
    deployed = edgeloop("deploy", "edge-9", "--device", env.device(0).spec.device_id,
                        *unreachable_fps, *p)
    assert deployed.returncode == 1
    assert "halted" in deployed.stdout and "rolled_back" in deployed.stdout
    assert AgentHome(env.device(0).home.root).current.resolve().name == "edge-1"
    resumed = edgeloop("rollout", "resume", *p)
    assert resumed.returncode == 2 and "only a running rollout resumes" in resumed.stderr

    watched = edgeloop("devices", "watch", "--rounds", "1", *p)
    assert watched.returncode == 0, watched.stderr
    assert f"{env.device(0).spec.device_id} healthy" in watched.stdout
