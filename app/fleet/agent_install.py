"""Installing the device agent on a device from the workstation, over SSH.

``install_agent`` (``edgeloop devices install-agent``) logs in with a bootstrap credential
(or the workstation's key) at the host key the engineer confirmed, as enrollment does, and:

1. checks the device and pushes the bundle (:mod:`app.fleet.agent_push`): Linux on the
   bundle's CPU, ``sudo -n`` working when asked for, room for the archive and the unpacked
   bundle, then the upload over SFTP with its sha256 checked on the device;
2. unpacks it into a hidden folder under the prefix, runs the bundle's ``--selfcheck``
   there, creates the agent's home with ``init --id ... --trust <project signing key>`` if it
   has no config yet (or with ``reinit``), and asks the new program for its version and
   the home's device id;
3. activates it (:mod:`app.fleet.agent_activate`): ``PREFIX/<version>``, the ``current``
   link switched in one rename, the launcher and the systemd unit written, the unit enabled
   and (re)started, and the agent seen running; until the switch the installed agent runs
   untouched, and if the new one does not come up, ``current`` goes back.

Every attempt is audited (``device.install_agent``: who, where, which bundle and version,
and the outcome). Names and paths are checked by :mod:`app.fleet.agent_unit` before they
reach a device's shell, quoted.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.errors import InvalidInput
from app.core.models import EnrollmentState
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress
from app.core.roles import Actor, Permission, authorize
from app.fleet.agent.cli import DEFAULT_HOME
from app.fleet.agent.manifest import public_key_to_text
from app.fleet.agent_activate import (
    SHA_FILE, START_TIMEOUT_S, VERSION, Activation, agent_status,
)
from app.fleet.agent_bundle_archive import BundleArchive, open_bundle
from app.fleet.agent_push import (
    ARCHIVE_NAME, LONG_COMMAND_S, DeviceShell, InstallFailed, check_platform, check_space,
    check_sudo, make_upload_folder, upload,
)
from app.fleet.agent_unit import (
    PROGRAM, UNIT_NAME, AgentService, check_device_id, check_program, check_remote_path,
    check_source, check_user,
)
from app.fleet.context import FleetContext, find_device
from app.fleet.enrollment import Bootstrap
from app.fleet.errors import HostKeyMismatch
from app.fleet.signing import load_or_create_signing_key
from app.fleet.ssh import DeviceAddress, DeviceConnection, probe_host_key

DEFAULT_PREFIX = "/opt/edgeloop-agent"
DEFAULT_UNIT_DIR = "/etc/systemd/system"
DEFAULT_BIN_DIR = "/usr/local/bin"
DEFAULT_UPLOAD_DIR = "/var/tmp"
TRUST_FILE = "project-signing.pub"


@dataclass(frozen=True)
class InstallTarget:
    """The device to install on, and the host key the engineer confirmed for it."""

    uid: str
    host: str
    port: int = 22
    user: str = "edgeloop"
    fingerprint: str = ""

    def address(self) -> DeviceAddress:
        return DeviceAddress(self.uid, self.host, self.port, self.user, self.fingerprint)


@dataclass(frozen=True)
class InstallOptions:
    """Where the agent goes on the device and how it runs; checked on construction."""

    prefix: str = DEFAULT_PREFIX
    home: str = DEFAULT_HOME
    unit_dir: str = DEFAULT_UNIT_DIR
    bin_dir: str = DEFAULT_BIN_DIR
    upload_dir: str = DEFAULT_UPLOAD_DIR
    source: str = "camera:0"
    systemctl: str = "systemctl"
    sudo: bool = False
    reinit: bool = False
    name: str = ""
    interfaces: tuple[str, ...] = ()
    advertise: bool = True
    start_timeout_s: float = START_TIMEOUT_S

    def __post_init__(self) -> None:
        for option in ("prefix", "home", "unit_dir", "bin_dir", "upload_dir"):
            value = check_remote_path(getattr(self, option), "--" + option.replace("_", "-"))
            object.__setattr__(self, option, value)
        check_source(self.source)
        check_program(self.systemctl, "--systemctl")
        for ip in self.interfaces:
            if not all(c in "0123456789abcdefABCDEF.:" for c in ip) or not ip:
                raise InvalidInput(f"--interfaces: {ip!r} is not an IP address")
        if any(ord(c) < 32 for c in self.name):
            raise InvalidInput("--name must be on one line")

    def service(self, user: str) -> AgentService:
        return AgentService(self.prefix, self.home, self.source, user, self.advertise,
                            self.unit_dir, self.bin_dir)


@dataclass(frozen=True)
class InstallResult:
    """What was installed where, and how the agent runs now."""

    uid: str
    version: str
    folder: str
    previous: str | None
    reused: bool
    executable: str
    home: str
    config_created: bool
    unit_path: str
    unit_state: str
    launcher: str
    selfcheck: str
    agent_pid: int | None
    uploaded_bytes: int
    sha256: str
    notes: list[str] = field(default_factory=list)


def install_agent(ctx: FleetContext, actor: Actor, target: InstallTarget, bundle: Path,
                  options: InstallOptions = InstallOptions(), *,
                  bootstrap: Bootstrap = Bootstrap(), progress: ProgressFn = no_progress,
                  cancel: CancelToken | None = None) -> InstallResult:
    """Install the agent ``bundle`` (its ``.tar.gz`` or folder) on ``target`` as the module
    docstring describes; audited whatever the outcome."""
    check_device_id(target.uid)
    check_user(target.user)
    authorize(ctx.db, ctx.audit, actor, Permission.MANAGE_DEVICES, f"device {target.uid}")
    record: dict[str, Any] = {"address": f"{target.user}@{target.host}:{target.port}",
                              "host_key_fingerprint": target.fingerprint,
                              "bundle": str(bundle), "prefix": options.prefix,
                              "home": options.home, "sudo": options.sudo}
    try:
        result = _install(ctx, target, Path(bundle), options, bootstrap, progress,
                          cancel or CancelToken(), record)
    except BaseException as exc:
        outcome = "cancelled" if isinstance(exc, Cancelled) else "failed"
        _audit(ctx, actor, target, record, outcome, str(exc) or type(exc).__name__)
        raise
    _audit(ctx, actor, target, record, "installed", None)
    return result


def pinned_fingerprint(ctx: FleetContext, uid: str) -> str | None:
    """The host key pinned when ``uid`` was enrolled, if it is an enrolled device."""
    with ctx.db.read() as session:
        try:
            device = find_device(session, uid)
        except InvalidInput:
            return None
        if device.enrollment is not EnrollmentState.ENROLLED:
            return None
        return device.host_key_fingerprint


def _audit(ctx: FleetContext, actor: Actor, target: InstallTarget, record: dict[str, Any],
           outcome: str, error: str | None) -> None:
    before = {"agent": record.pop("previous", None)}
    after = {**record, "outcome": outcome, **({"error": error[-1000:]} if error else {})}
    with ctx.db.write() as session:
        ctx.audit.append(session, actor=actor.name, action="device.install_agent",
                         object_type="device", object_id=target.uid, before=before, after=after)


def _install(ctx: FleetContext, target: InstallTarget, bundle: Path, options: InstallOptions,
             bootstrap: Bootstrap, progress: ProgressFn, cancel: CancelToken,
             record: dict[str, Any]) -> InstallResult:
    _check_host_key(target)
    archive = open_bundle(bundle, progress, cancel)
    record["bundle_sha256"] = archive.sha256
    signing_public = public_key_to_text(load_or_create_signing_key(ctx.keys_dir).public_key())
    try:
        cancel.check()
        with DeviceConnection.connect(target.address(), ctx.identity,
                                      password=bootstrap.password,
                                      extra_key=bootstrap.key()) as conn:
            installer = _Installer(DeviceShell(conn, options.sudo), target, options, archive,
                                   progress, cancel, record)
            return installer.run(signing_public)
    finally:
        archive.discard()


def _check_host_key(target: InstallTarget) -> None:
    if not target.fingerprint:
        raise HostKeyMismatch(f"device {target.uid}: no confirmed host-key fingerprint; give "
                              "the one the device's own console shows (SHA256:...)")
    seen = probe_host_key(target.host, target.port)
    if seen.fingerprint != target.fingerprint:
        raise HostKeyMismatch(
            f"{target.address()} presents host key {seen.fingerprint}, not the confirmed "
            f"{target.fingerprint}; nothing was uploaded or installed. Check the fingerprint "
            "on the device's own console before trusting it.")


class _Installer:
    """One install on one connected device, step by step (see the module docstring)."""

    def __init__(self, shell: DeviceShell, target: InstallTarget, options: InstallOptions,
                 archive: BundleArchive, progress: ProgressFn, cancel: CancelToken,
                 record: dict[str, Any]) -> None:
        self.shell = shell
        self.target = target
        self.options = options
        self.archive = archive
        self.progress = progress
        self.cancel = cancel
        self.record = record
        self.service = options.service(target.user)
        self.activation = Activation(shell, self.service, options.systemctl, archive.sha256)

    def run(self, signing_public: str) -> InstallResult:
        opts, archive = self.options, self.archive
        self._step("checking the device", str(self.target.address()))
        check_platform(self.shell, archive.machine)
        if opts.sudo:
            check_sudo(self.shell, self.target.user)
        check_space(self.shell, {opts.upload_dir: archive.size + 64 * 1024,
                                 opts.prefix: archive.unpacked_bytes},
                    f"the bundle ({archive.size / 2**20:.0f} MiB archive, "
                    f"{archive.unpacked_bytes / 2**20:.0f} MiB unpacked)")
        folder = make_upload_folder(self.shell, opts.upload_dir)
        incoming: str | None = None
        try:
            upload(self.shell, archive, folder, {
                TRUST_FILE: signing_public,
                UNIT_NAME: self.service.unit_text(self.target.uid),
                PROGRAM: self.service.launcher_text(),
            }, self.progress, self.cancel)
            self.record["uploaded_bytes"] = archive.size
            incoming = self._unpack(folder)
            selfcheck = self._selfcheck(incoming)
            config_created = self._init_home(incoming, folder)
            version = self._version(incoming)
            self.cancel.check()  # the last point where cancelling changes nothing
            current = self.activation.current()
            self.record["previous"] = current
            name, reused = self.activation.place(incoming, version, current)
            incoming = None
            return self._activate(name, version, reused, current, selfcheck, config_created,
                                  folder)
        finally:
            leftovers = [self.shell.remove(incoming, privileged=True) if incoming else None,
                         self.shell.remove(folder)]
            if any(leftovers):
                self.record["leftovers"] = [note for note in leftovers if note]

    def _step(self, stage: str, message: str = "", cancellable: bool = True) -> None:
        if cancellable:
            self.cancel.check()
        self.progress(Progress(stage, 0, 0, message))

    def _unpack(self, upload_folder: str) -> str:
        q, prefix = shlex.quote, self.options.prefix
        self._step("unpacking", prefix)
        strip = self.archive.strip_components
        script = (
            f"set -e; mkdir -p {q(prefix)}; inc=$(mktemp -d {q(prefix + '/.incoming.XXXXXX')}); "
            f"tar -xzf {q(upload_folder + '/' + ARCHIVE_NAME)} -C \"$inc\" --no-same-owner"
            f"{f' --strip-components={strip}' if strip else ''} || "
            "{ rm -rf \"$inc\"; exit 1; }; chmod 755 \"$inc\"; "
            f"printf '%s\\n' {q(self.archive.sha256)} > \"$inc\"/{SHA_FILE}; echo \"$inc\"")
        hint = "" if self.options.sudo else (
            f"; if {self.target.user} may not write {prefix}, pass --sudo or another --prefix")
        out = self.shell.check(script, f"unpacking the bundle into {prefix}", privileged=True,
                               timeout=LONG_COMMAND_S, hint=hint).strip()
        incoming = out.splitlines()[-1] if out else ""
        if not incoming.startswith(prefix + "/.incoming."):
            raise InstallFailed(f"{self.shell.where}: unpacking answered {out!r}")
        self.shell.check(f"test -x {q(incoming + '/' + PROGRAM)}",
                         f"finding {PROGRAM} in the unpacked bundle")
        return incoming

    def _selfcheck(self, incoming: str) -> str:
        self._step("self-check", "running the bundle's --selfcheck on the device")
        result = self.shell.run(f"{shlex.quote(incoming + '/' + PROGRAM)} --selfcheck 2>&1",
                                timeout=LONG_COMMAND_S)
        output = result.stdout.decode("utf-8", "replace").strip()
        if result.status != 0:
            tail = "\n".join(output.splitlines()[-15:])
            raise InstallFailed(f"{self.shell.where}: the bundle's --selfcheck failed on the "
                                f"device (exit {result.status}); the installed agent was left "
                                f"as it was:\n{tail}")
        summary = output.splitlines()[-1] if output else "exit 0"
        self.record["selfcheck"] = summary[:300]
        return summary

    def _init_home(self, incoming: str, upload_folder: str) -> bool:
        """``init`` the home unless it has a config (kept as it is, unless ``reinit``)."""
        q, home, user = shlex.quote, self.options.home, self.target.user
        config = f"{home}/config.json"
        exists = self.shell.run(f"test -f {q(config)}").status == 0
        if exists and not self.options.reinit:
            return False
        self._step("creating the agent's home", home)
        if exists:  # reinit: the old config stays beside the new one
            self.shell.check(f"mv {q(config)} {q(config)}.before-reinit-$(date +%Y%m%d%H%M%S)",
                             "setting the old config aside")
        elif self.options.sudo:  # a home under /var/lib, owned by the account that runs it
            self.shell.check(f"test -d {q(home)} || install -d -o {q(user)} -g "
                             f"\"$(id -gn {q(user)})\" -m 0750 {q(home)}",
                             f"creating {home}", privileged=True)
        args = [f"{incoming}/{PROGRAM}", "--home", home, "init", "--id", self.target.uid,
                "--ssh-port", str(self.target.port), "--trust",
                f"{upload_folder}/{TRUST_FILE}"]
        if self.options.name:
            args += ["--name", self.options.name]
        if self.options.interfaces:
            args += ["--interfaces", ",".join(self.options.interfaces)]
        self.shell.check(f"mkdir -p {q(home)} && {shlex.join(args)}",
                         f"`{PROGRAM} init` in {home}", timeout=LONG_COMMAND_S)
        return True

    def _version(self, incoming: str) -> str:
        """The version the new program reports, after checking the home is this device's."""
        status = agent_status(self.shell, f"{incoming}/{PROGRAM}", self.options.home)
        version = str(status.get("agent") or "")
        if not VERSION.fullmatch(version):
            raise InstallFailed(f"{self.shell.where}: the bundle reports version {version!r}")
        if status.get("device_id") != self.target.uid:
            raise InstallFailed(
                f"{self.shell.where}: the home {self.options.home} belongs to device "
                f"{status.get('device_id')!r}, not {self.target.uid}; use that id, or pass "
                f"--reinit to set this home up again as {self.target.uid}")
        self.record["version"] = version
        return version

    def _activate(self, name: str, version: str, reused: bool, previous: str | None,
                  selfcheck: str, config_created: bool, upload_folder: str) -> InstallResult:
        act, opts = self.activation, self.options
        # Past the last cancel check: what follows finishes (or rolls back) on its own.
        self._step("installing the service", f"{opts.prefix}/{name}", cancellable=False)
        old_unit = act.write_files(upload_folder)
        was_active = act.is_active() == "active"
        # The PID in the status file now, whatever its state: a stale "running" left by an
        # agent that was killed must not pass for the new one.
        old_pid = act.status_pid(f"{opts.prefix}/{name}/{PROGRAM}", any_state=True)
        act.switch(name, previous)
        self.record["installed"] = name
        self._step("starting the agent", UNIT_NAME, cancellable=False)
        try:
            started = act.start(was_active, old_pid, opts.start_timeout_s)
        except InstallFailed as exc:
            if previous and previous != name:
                failed_pid = act.status_pid(any_state=True)
                outcome = act.roll_back(previous, old_unit, failed_pid, opts.start_timeout_s)
                self.record["rolled_back"] = outcome
                raise InstallFailed(f"{exc}\nThe new agent did not start; {outcome}.") from exc
            raise
        self.record.update(unit_state=started.state, agent_pid=started.pid)
        removed = act.prune({name, previous or name})
        return InstallResult(
            uid=self.target.uid, version=version, folder=f"{opts.prefix}/{name}",
            previous=previous if previous != name else None, reused=reused,
            executable=self.service.executable, home=opts.home, config_created=config_created,
            unit_path=self.service.unit_path, unit_state=started.state,
            launcher=self.service.launcher_path, selfcheck=selfcheck, agent_pid=started.pid,
            uploaded_bytes=self.archive.size, sha256=self.archive.sha256,
            notes=[f"removed the older version {d}" for d in removed])
