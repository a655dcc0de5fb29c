"""A "device" for ``install-agent`` tests and benchmarks: a folder tree behind a private
OpenSSH server, with a stand-in ``systemctl``.

systemd cannot run in the test container (it is not PID 1), so ``systemctl`` is the one
stand-in (STANDIN): it handles the one unit the installer writes (``daemon-reload``,
``enable [--now]``, ``is-active``, ``restart``, ``stop``) by running the unit's ``ExecStart``
in the background with its ``Environment=`` and recording the PID, by which the caller stops
the agent afterwards (:meth:`InstallDevice.stop_agents`). Everything else is real: sshd,
SFTP, and whatever the installer runs there. The sshd logs in the user running the tests.
"""

from __future__ import annotations

import base64
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import paramiko

from app.fleet.agent_install import InstallOptions, InstallTarget
from app.fleet.ssh import fingerprint
from tests.support.ssh import client_key, connect_strict, run
from tests.support.sshd import OpenSSHServer, start_sshd

STANDIN = '''#!{python}
"""Test stand-in for systemctl (systemd is not PID 1 in the test container): manages the
one unit edgeloop-agent.service by running its ExecStart in the background."""
import os, shlex, signal, subprocess, sys, time

UNIT_DIR, STATE, UNIT = {unit_dir!r}, {state!r}, "edgeloop-agent.service"


def pid():
    try:
        p = int(open(os.path.join(STATE, "pid")).read())
        with open(f"/proc/{{p}}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError):
        return None
    return None if state in ("Z", "X") else p


def start():
    if pid():
        return
    env, fields = dict(os.environ), {{}}
    for line in open(os.path.join(UNIT_DIR, UNIT)):
        key, _, value = line.strip().partition("=")
        if key == "Environment":
            name, _, val = shlex.split(value)[0].partition("=")
            env[name] = val
        elif key and not key.startswith(("#", "[")):
            fields[key] = value
    with open(os.path.join(STATE, "agent.log"), "ab") as log:
        proc = subprocess.Popen(shlex.split(fields["ExecStart"]), env=env, stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    open(os.path.join(STATE, "pid"), "w").write(str(proc.pid))
    with open(os.path.join(STATE, "pids"), "a") as fh:
        fh.write(f"{{proc.pid}}\\n")


def stop():
    p = pid()
    if p:
        os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while pid() and time.monotonic() < deadline:
            time.sleep(0.05)


def main(args):
    with open(os.path.join(STATE, "calls.log"), "a") as fh:
        fh.write(" ".join(args) + "\\n")
    command, units = args[0], [a for a in args[1:] if not a.startswith("-")]
    if command == "daemon-reload":
        return 0
    if units != [UNIT]:
        print(f"stand-in systemctl: no unit {{units}}", file=sys.stderr)
        return 5
    if command == "enable":
        open(os.path.join(STATE, "enabled"), "w").write("enabled")
        if "--now" in args:
            start()
    elif command == "is-active":
        print("active" if pid() else "inactive")
        return 0 if pid() else 3
    elif command == "restart":
        stop()
        start()
    elif command == "stop":
        stop()
    else:
        return 1
    return 0


sys.exit(main(sys.argv[1:]))
'''


@dataclass
class InstallDevice:
    """A "device": a folder tree served by a private sshd, with the stand-in systemctl."""

    sshd: OpenSSHServer
    root: Path
    fingerprint: str
    key_file: Path
    systemctl: Path
    state: Path

    def options(self, **changes: object) -> InstallOptions:
        base = InstallOptions(
            prefix=str(self.root / "opt/edgeloop-agent"),
            home=str(self.root / "var/lib/edgeloop-agent"),
            unit_dir=str(self.root / "etc/systemd/system"),
            bin_dir=str(self.root / "usr/local/bin"), upload_dir=str(self.root / "var/tmp"),
            systemctl=str(self.systemctl), source="generator:7", interfaces=("127.0.0.1",))
        return replace(base, **changes)  # type: ignore[arg-type]

    def target(self, uid: str = "cam-1", fingerprint: str | None = None) -> InstallTarget:
        return InstallTarget(uid, "127.0.0.1", self.sshd.port, self.sshd.user,
                             fingerprint or self.fingerprint)

    def ssh(self, command: str) -> tuple[int, str, str]:
        client = connect_strict("127.0.0.1", self.sshd.port, self.sshd.user,
                                self.sshd.known_hosts_line(),
                                paramiko.Ed25519Key.from_private_key_file(str(self.key_file)),
                                self.root)
        try:
            return run(client, command)
        finally:
            client.close()

    def agent_pid(self) -> int:
        return int((self.state / "pid").read_text())

    def calls(self) -> list[str]:
        path = self.state / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    def stop_agents(self) -> None:
        """Stop, by PID, every agent the stand-in started (they are not our children)."""
        path = self.state / "pids"
        for pid in (int(p) for p in (path.read_text().split() if path.exists() else [])):
            stop_pid(pid)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not: nobody may have reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def stop_pid(pid: int) -> None:
    """SIGTERM, up to 30 s to exit, then SIGKILL; for a process that is not our child."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@contextmanager
def install_device(folder: Path) -> Iterator[InstallDevice]:
    """A device under ``folder``, its sshd running; its agents and sshd stopped on exit."""
    root = folder / "device"
    login_home = root / "home"
    (login_home / ".ssh").mkdir(parents=True)
    state = folder / "standin"
    state.mkdir()
    bin_dir = root / "usr/local/bin"
    # The login environment of the device's account: PATH reaches the launcher the install
    # writes; HOME is the account's (the agent's `ctl authorize` writes ~/.ssh/...), and sshd
    # reads that authorized_keys file too, as a device's sshd would.
    sshd = start_sshd(folder / "sshd", extra_config=[
        f"SetEnv PATH={bin_dir}:/usr/bin:/bin HOME={login_home}",
        "Match all",
        f"AuthorizedKeysFile {folder / 'sshd' / 'authorized_keys'} "
        f"{login_home / '.ssh' / 'authorized_keys'}",
    ])
    try:
        _, public = client_key(folder)
        sshd.authorized_keys.write_text(public + "\n")
        systemctl = folder / "standin-bin" / "systemctl"
        systemctl.parent.mkdir()
        systemctl.write_text(STANDIN.format(python=sys.executable,
                                            unit_dir=str(root / "etc/systemd/system"),
                                            state=str(state)))
        systemctl.chmod(0o755)
        host_key = paramiko.Ed25519Key(data=base64.b64decode(sshd.host_public_key.split()[1]))
        built = InstallDevice(sshd, root, fingerprint(host_key), folder / "id_ed25519",
                              systemctl, state)
        try:
            yield built
        finally:
            built.stop_agents()
    finally:
        sshd.stop()
