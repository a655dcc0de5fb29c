"""``edgeloop devices install-agent``: the agent's PyInstaller bundle pushed to a "device"
behind a real OpenSSH server, installed, and started as a service.

Everything is real except one part: ``systemctl``. systemd cannot run in this container (it
is not PID 1), so the device (tests/support/install_device.py) has a stand-in ``systemctl``,
passed with ``--systemctl``, that handles the one unit the installer writes
(``daemon-reload``, ``enable [--now]``, ``is-active``, ``restart``, ``stop``): it starts the
unit's ``ExecStart`` in the background with its ``Environment=`` and records the PID, by
which the tests stop the agent. The sshd, SFTP, the bundle, the agent's ``init`` and
``--selfcheck`` on the device, and the started agent process (reached over SSH afterwards)
are the real ones. The sshd logs in the user running the tests (root here), so the unit's
``User=`` and ``--sudo`` are not exercised with another account.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.audit import AuditTrail
from app.core.errors import InvalidInput
from app.core.models import AuditEvent
from app.core.project import Project, init_project
from app.core.roles import Actor
from app.core.users import actor_named
from app.fleet.agent.home import AgentHome
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent_bundle_archive import BundleInvalid, open_bundle
from app.fleet.agent_install import InstallOptions, install_agent
from app.fleet.agent_push import InstallFailed, NotEnoughSpace, SudoUnavailable
from app.fleet.agent_unit import AgentService, check_device_id, check_remote_path, check_source
from app.fleet.context import FleetContext
from app.fleet.enrollment import Bootstrap, enroll
from app.fleet.errors import HostKeyMismatch
from app.fleet.signing import load_or_create_signing_key
from app.fleet.ssh import DeviceConnection
from tests.support.agent_bundle import agent_bundle
from tests.support.install_device import InstallDevice, alive, install_device
from tests.support.sshd import sshd_available

EDGELOOP = str(Path(sys.executable).parent / "edgeloop")

@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The agent's real one-folder bundle (built once per session, or taken from
    EDGELOOP_BUNDLE_CACHE when its sources did not change); its .tar.gz lies beside it."""
    cache = os.environ.get("EDGELOOP_BUNDLE_CACHE")
    return agent_bundle(Path(cache) if cache else tmp_path_factory.mktemp("agent-bundle"))


@pytest.fixture
def device(tmp_path: Path) -> Iterator[InstallDevice]:
    if not sshd_available():
        if os.environ.get("EDGELOOP_REQUIRE_SSHD") == "1":
            pytest.fail("OpenSSH sshd is required (EDGELOOP_REQUIRE_SSHD=1) but not installed")
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    with install_device(tmp_path) as built:
        yield built


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Project, FleetContext, Actor]]:
    opened = init_project(tmp_path / "project", admin="admin")
    try:
        yield opened, FleetContext.of(opened), actor_named(opened.db, "admin")
    finally:
        opened.close()


def _install_events(project: Project) -> list[AuditEvent]:
    with project.db.read() as session:
        events = list(AuditTrail().events(session, action="device.install_agent"))
        session.expunge_all()
    return events


def _tiny_archive(folder: Path, program: bytes | None = None) -> Path:
    """A small .tar.gz laid out like the bundle (``edgeloop-agent/edgeloop-agent``), for the
    checks that refuse an install before anything is unpacked on the device. Its program is
    a copy of a real ELF executable of this machine (/bin/true)."""
    src = folder / "tiny" / "edgeloop-agent"
    src.mkdir(parents=True, exist_ok=True)
    (src / "edgeloop-agent").write_bytes(program if program is not None
                                         else Path("/bin/true").read_bytes())
    (src / "edgeloop-agent").chmod(0o755)
    archive = folder / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="edgeloop-agent")
    return archive


# -- fast: names, paths and the texts written on the device ---------------------------------
@pytest.mark.parametrize("uid", ["../etc", "cam;reboot", "a b", "", ".hidden", "a/b",
                                 "cam-1/../../x", "x" * 65, "cam$(id)", "cam\n1"])
def test_device_ids_that_could_name_other_files_or_commands_are_refused(uid: str) -> None:
    with pytest.raises(InvalidInput, match="device id"):
        check_device_id(uid)


def test_plain_device_ids_pass() -> None:
    for uid in ("cam-1", "line3.cam_07", "A1"):
        assert check_device_id(uid) == uid


def test_remote_paths_and_sources_are_checked() -> None:
    assert check_remote_path("/opt//edgeloop-agent/", "--prefix") == "/opt/edgeloop-agent"
    for bad in ("opt/edgeloop", "/opt/../etc", "/", "/opt/a\nb"):
        with pytest.raises(InvalidInput, match="--prefix"):
            check_remote_path(bad, "--prefix")
    assert check_source("generator:7") == "generator:7"
    assert check_source("folder:/srv/images with space") == "folder:/srv/images with space"
    for bad in ("webcam", "camera:front", "folder:", "generator:x"):
        with pytest.raises(InvalidInput, match="--source"):
            check_source(bad)
    with pytest.raises(InvalidInput, match="--systemctl"):
        InstallOptions(systemctl="sudo systemctl")
    with pytest.raises(InvalidInput, match="--home"):
        InstallOptions(home="var/lib/agent")


def test_unit_runs_the_current_link_with_the_home_and_source() -> None:
    service = AgentService("/opt/edgeloop-agent", "/var/lib/edge loop", "folder:/srv/50%$x",
                           "edgeloop")
    unit = service.unit_text("cam-1").splitlines()
    assert ("ExecStart=/opt/edgeloop-agent/current/edgeloop-agent --home "
            '"/var/lib/edge loop" run --source "folder:/srv/50%%$$x"') in unit
    assert 'Environment="EDGELOOP_AGENT_HOME=/var/lib/edge loop"' in unit
    assert "Restart=on-failure" in unit and "User=edgeloop" in unit
    assert "WantedBy=multi-user.target" in unit
    quiet = AgentService("/opt/a", "/var/lib/a", "generator", "edgeloop", advertise=False)
    assert quiet.exec_start()[-1] == "--no-advertise"


def test_launcher_passes_arguments_and_supplies_the_home(tmp_path: Path) -> None:
    """The launcher text run by a real sh, with a home that needs quoting."""
    prefix, home = tmp_path / "pre fix", tmp_path / 'ho"me $HOME `x`'
    (prefix / "current").mkdir(parents=True)
    echo = prefix / "current" / "edgeloop-agent"
    echo.write_text('#!/bin/sh\nprintf "%s|" "$EDGELOOP_AGENT_HOME" "$@"\n')
    echo.chmod(0o755)
    launcher = tmp_path / "launcher"
    launcher.write_text(AgentService(str(prefix), str(home), "generator", "u").launcher_text())
    launcher.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([launcher, "ctl", "status", "a b"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert out == f"{home}|ctl|status|a b|"
    env["EDGELOOP_AGENT_HOME"] = "/elsewhere"
    out = subprocess.run([launcher, "x"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out == "/elsewhere|x|"


# -- fast: the bundle archive checked on the workstation -------------------------------------
def test_bundle_archive_is_read_through_and_its_layout_found(tmp_path: Path) -> None:
    archive = open_bundle(_tiny_archive(tmp_path))
    assert archive.strip_components == 1 and archive.files == 1 and not archive.temporary
    assert archive.machine == {"x86_64": "x86_64", "aarch64": "aarch64"}.get(os.uname().machine)
    folder = open_bundle(tmp_path / "tiny" / "edgeloop-agent")
    assert folder.temporary and folder.path.exists() and folder.strip_components == 1
    with tarfile.open(folder.path) as tar:
        assert "edgeloop-agent/edgeloop-agent" in tar.getnames()
    folder.discard()
    assert not folder.path.exists()


def test_truncated_or_foreign_archives_are_refused(tmp_path: Path) -> None:
    good = _tiny_archive(tmp_path, os.urandom(200_000))  # incompressible: cut mid-data
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size * 2 // 3])
    with pytest.raises(BundleInvalid, match="truncated"):
        open_bundle(cut)

    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../edgeloop-agent")
        tar.addfile(info)
    with pytest.raises(BundleInvalid, match="outside the bundle"):
        open_bundle(evil)

    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        tar.add(tmp_path / "tiny" / "edgeloop-agent", arcname="edgeloop-agent")
        info = tarfile.TarInfo("edgeloop-agent/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(BundleInvalid, match="points outside"):
        open_bundle(link)

    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(tmp_path / "tiny" / "edgeloop-agent" / "edgeloop-agent", arcname="app/run")
    with pytest.raises(BundleInvalid, match="no edgeloop-agent program"):
        open_bundle(other)
    with pytest.raises(BundleInvalid, match="no such file"):
        open_bundle(tmp_path / "missing.tar.gz")


# -- fast: refusals against the real sshd ----------------------------------------------------
def test_wrong_host_key_is_refused_before_anything_is_uploaded(device: InstallDevice, project,
                                                               tmp_path: Path) -> None:
    opened, ctx, admin = project
    other = "SHA256:" + base64.b64encode(b"\1" * 32).decode().rstrip("=")
    with pytest.raises(HostKeyMismatch) as refused:
        install_agent(ctx, admin, device.target(fingerprint=other), _tiny_archive(tmp_path),
                      device.options(), bootstrap=Bootstrap(key_file=device.key_file))
    assert device.fingerprint in str(refused.value) and other in str(refused.value)
    assert "nothing was uploaded" in str(refused.value)
    assert not (device.root / "var").exists() and not (device.root / "opt").exists()
    [event] = _install_events(opened)
    assert event.after["outcome"] == "failed" and event.object_id == "cam-1"
    assert event.after["host_key_fingerprint"] == other


def test_bad_device_id_is_refused_before_connecting(device: InstallDevice, project,
                                                   tmp_path: Path) -> None:
    opened, ctx, admin = project
    for uid in ("../cam", "cam;reboot"):
        with pytest.raises(InvalidInput, match="device id"):
            install_agent(ctx, admin, device.target(uid), _tiny_archive(tmp_path),
                          device.options(), bootstrap=Bootstrap(key_file=device.key_file))
    assert not (device.root / "var").exists()
    result = subprocess.run(
        [EDGELOOP, "devices", "install-agent", "cam;reboot", "--address", "127.0.0.1",
         "--port", str(device.sshd.port), "--bundle", str(tmp_path / "tiny.tar.gz"),
         "--source", "generator", "--fingerprint", device.fingerprint,
         "--project", str(opened.root)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "EDGELOOP_USER": "admin"})
    assert result.returncode == 2
    assert "device id 'cam;reboot' is not allowed" in result.stderr
    assert "Traceback" not in result.stderr


def test_sudo_that_cannot_run_without_a_password_is_named(device: InstallDevice, project,
                                                          tmp_path: Path) -> None:
    """``--sudo`` runs ``sudo -n``; where sudo is missing the install stops with that
    reason. (Where sudo is installed the tests' root login runs it without a password.)"""
    if shutil.which("sudo") is not None:
        pytest.skip("sudo is installed here and root needs no password: nothing to refuse")
    opened, ctx, admin = project
    with pytest.raises(SudoUnavailable, match="sudo is not installed"):
        install_agent(ctx, admin, device.target(), _tiny_archive(tmp_path),
                      device.options(sudo=True), bootstrap=Bootstrap(key_file=device.key_file))
    assert not (device.root / "var").exists()


def test_a_no_at_the_fingerprint_prompt_installs_nothing(device: InstallDevice, project,
                                                         tmp_path: Path) -> None:
    opened, _, _ = project
    result = subprocess.run(
        [EDGELOOP, "devices", "install-agent", "cam-1", "--address", "127.0.0.1",
         "--port", str(device.sshd.port), "--ssh-user", device.sshd.user,
         "--bundle", str(_tiny_archive(tmp_path)), "--source", "generator",
         "--bootstrap-key", str(device.key_file), "--project", str(opened.root)],
        capture_output=True, text=True, input="n\n", timeout=120,
        env={**os.environ, "EDGELOOP_USER": "admin"})
    assert result.returncode == 1, result.stderr
    assert device.fingerprint in result.stdout and "Nothing was installed." in result.stdout
    assert not (device.root / "var").exists() and _install_events(opened) == []


# -- slow: the real bundle -------------------------------------------------------------------
def _install_cli(device: InstallDevice, project: Project, bundle: Path, *extra: str,
                 ) -> subprocess.CompletedProcess:
    opts = device.options()
    return subprocess.run(
        [EDGELOOP, "devices", "install-agent", "cam-1", "--address", "127.0.0.1",
         "--port", str(device.sshd.port), "--ssh-user", device.sshd.user,
         "--fingerprint", device.fingerprint, "--bootstrap-key", str(device.key_file),
         "--bundle", str(bundle), "--prefix", opts.prefix, "--home", opts.home,
         "--unit-dir", opts.unit_dir, "--bin-dir", opts.bin_dir, "--upload-dir",
         opts.upload_dir, "--source", "generator:7", "--interfaces", "127.0.0.1",
         "--systemctl", str(device.systemctl), "--project", str(project.root), *extra],
        capture_output=True, text=True, timeout=900, env={**os.environ, "EDGELOOP_USER": "admin"})


@pytest.mark.slow
def test_install_start_and_enroll_the_real_bundle(device: InstallDevice, project,
                                                  bundle_dir: Path) -> None:
    opened, ctx, admin = project
    archive = bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    done = _install_cli(device, opened, archive)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "uploading [" in done.stderr and "MiB" in done.stderr  # the progress line
    assert f"edgeloop devices enroll cam-1 --address 127.0.0.1 --port {device.sshd.port}" \
        in done.stdout

    opts = device.options()
    prefix, home = Path(opts.prefix), AgentHome(Path(opts.home))
    version = os.readlink(prefix / "current")
    assert version == "0.1.0" and (prefix / version / "edgeloop-agent").is_file()
    assert not list((device.root / "var/tmp").iterdir())  # the upload folder is gone
    unit = (Path(opts.unit_dir) / "edgeloop-agent.service").read_text()
    assert (f"ExecStart={prefix}/current/edgeloop-agent --home {home.root} run --source "
            "generator:7") in unit
    assert device.calls() == ["is-active edgeloop-agent.service", "daemon-reload",
                              "enable --now edgeloop-agent.service"] + device.calls()[3:]
    # The home was made by the bundle's own `init`, trusting the project's signing key.
    assert home.load_config().device_id == "cam-1"
    signing = load_or_create_signing_key(ctx.keys_dir)
    assert (home.trust / "project.pub").read_text() == public_key_to_text(signing.public_key())

    # The started agent answers over SSH through the installed program, and through the
    # launcher on the account's PATH (how the workstation calls it), with the stand-in's PID.
    code, out, err = device.ssh(f"{prefix}/current/edgeloop-agent --home {home.root} ctl status")
    assert code == 0, err
    status = json.loads(out)
    assert status["status"]["state"] == "running"
    assert status["status"]["pid"] == device.agent_pid() and alive(device.agent_pid())
    code, out, err = device.ssh("edgeloop-agent ctl status")
    assert code == 0 and json.loads(out)["device_id"] == "cam-1", err

    [event] = _install_events(opened)
    assert event.actor == "admin" and event.object_id == "cam-1"
    assert event.after["outcome"] == "installed" and event.after["version"] == "0.1.0"
    assert event.after["address"] == f"{device.sshd.user}@127.0.0.1:{device.sshd.port}"

    # The next step the command printed works against the installed agent.
    result = enroll(ctx, admin, "cam-1", confirmed_fingerprint=device.fingerprint,
                    address="127.0.0.1", port=device.sshd.port, user=device.sshd.user,
                    bootstrap=Bootstrap(key_file=device.key_file))
    assert result.agent_version == "0.1.0"
    with DeviceConnection.connect(device.target().address(), ctx.identity) as conn:
        assert conn.agent("ctl", "status")["device_id"] == "cam-1"


@pytest.mark.slow
def test_a_bad_bundle_or_a_failing_start_leaves_the_running_agent(
        device: InstallDevice, project, bundle_dir: Path, tmp_path: Path) -> None:
    opened, ctx, admin = project
    bootstrap = Bootstrap(key_file=device.key_file)
    archive = bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    first = install_agent(ctx, admin, device.target(), archive, device.options(),
                          bootstrap=bootstrap)
    assert first.version == "0.1.0" and first.previous is None and first.config_created
    running = device.agent_pid()
    prefix = Path(device.options().prefix)
    unit = Path(first.unit_path)
    unit_before = unit.read_text()

    truncated = tmp_path / "edgeloop-agent.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BundleInvalid, match="truncated"):
        install_agent(ctx, admin, device.target(), truncated, device.options(),
                      bootstrap=bootstrap)
    assert os.readlink(prefix / "current") == "0.1.0"
    assert device.agent_pid() == running and alive(running)

    # Another build of the same version (the folder, archived on the fly) whose agent dies
    # at once (its source folder holds no image): after the switch it does not keep running,
    # so current, the unit and the running agent go back to what they were.
    empty = device.root / "no-images"
    empty.mkdir()
    with pytest.raises(InstallFailed, match="did not keep running") as failed:
        install_agent(ctx, admin, device.target(), bundle_dir,
                      device.options(source=f"folder:{empty}", start_timeout_s=20),
                      bootstrap=bootstrap)
    assert "current points at 0.1.0 again, running as PID" in str(failed.value)
    assert os.readlink(prefix / "current") == "0.1.0" and unit.read_text() == unit_before
    code, out, err = device.ssh(f"{prefix}/current/edgeloop-agent --home {first.home} ctl status")
    assert code == 0 and json.loads(out)["status"]["pid"] == device.agent_pid(), err
    assert alive(device.agent_pid()) and not alive(running)

    # The same folder with a source that works: it goes beside the running version, then
    # becomes current; the old one stays as previous, the failed one is removed.
    running = device.agent_pid()
    steps: list[str] = []
    second = install_agent(ctx, admin, device.target(), bundle_dir, device.options(),
                           bootstrap=bootstrap, progress=lambda p: steps.append(p.stage))
    assert second.version == "0.1.0" and not second.config_created
    assert second.folder == f"{prefix}/0.1.0-{second.sha256[:8]}" and second.previous == "0.1.0"
    assert os.readlink(prefix / "current") == f"0.1.0-{second.sha256[:8]}"
    assert os.readlink(prefix / "previous") == "0.1.0"
    assert sorted(p.name for p in prefix.iterdir() if not p.name.startswith(".")) == [
        "0.1.0", f"0.1.0-{second.sha256[:8]}", "current", "previous"]
    assert len(second.notes) == 1 and "removed the older version 0.1.0-" in second.notes[0]
    assert "packing the bundle" in steps and "uploading" in steps and "self-check" in steps
    assert "restart edgeloop-agent.service" in device.calls()
    assert not alive(running) and second.agent_pid == device.agent_pid() != running
    assert [e.after["outcome"] for e in _install_events(opened)] == [
        "installed", "failed", "failed", "installed"]


@pytest.mark.slow
def test_too_little_disk_space_is_refused_before_uploading(device: InstallDevice, project,
                                                           bundle_dir: Path) -> None:
    """The prefix on a real 64 MiB tmpfs: smaller than the unpacked bundle."""
    small = device.root / "small"
    small.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()})")
    try:
        opened, ctx, admin = project
        with pytest.raises(NotEnoughSpace, match="not enough free space") as refused:
            install_agent(ctx, admin, device.target(),
                          bundle_dir.with_name(bundle_dir.name + ".tar.gz"),
                          device.options(prefix=str(small / "edgeloop-agent")),
                          bootstrap=Bootstrap(key_file=device.key_file))
        assert str(small) in str(refused.value)
        assert list(small.iterdir()) == [] and not (device.root / "var/tmp").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)
