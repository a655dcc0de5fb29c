"""Making an unpacked, self-checked agent version the one that runs on a device.

The version folder goes to ``PREFIX/<version>`` (an identical one already there is reused;
the folder ``current`` names is never overwritten: another build of the same version goes to
``<version>-<sha8>``). ``current`` then switches in one ``rename`` of a fresh link, the old
target becoming ``previous``; the launcher and the systemd unit are written (temp file and
``mv``), and ``systemctl`` reloads, enables and starts (or restarts) the unit. The install
counts only when systemd says active *and* the agent's own status says running under a new
PID, still so a few seconds later (an agent that dies at its first frame must not pass);
otherwise ``current`` and the unit go back to what they were, and the old agent restarts.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from typing import Any

from app.fleet.agent_push import LONG_COMMAND_S, DeviceShell, InstallFailed
from app.fleet.agent_unit import LAUNCHER_MARK, PROGRAM, UNIT_NAME, AgentService
from app.fleet.ssh import CommandResult

START_TIMEOUT_S = 90.0
# A started agent must still run this long after it first says so (it writes its status
# every 2 s by default).
SETTLE_S = 3.0
SHA_FILE = ".bundle-sha256"  # in each version folder: which archive it came from
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")


def agent_status(shell: DeviceShell, program: str, home: str) -> dict[str, Any]:
    """``program --home HOME ctl status`` on the device, as JSON."""
    out = shell.check(shlex.join([program, "--home", home, "ctl", "status"]),
                      f"`{PROGRAM} ctl status`", timeout=LONG_COMMAND_S)
    try:
        answer = json.loads(out)
    except json.JSONDecodeError as exc:
        raise InstallFailed(f"{shell.where}: `{PROGRAM} ctl status` did not answer JSON "
                            f"({exc})") from exc
    if not isinstance(answer, dict):
        raise InstallFailed(f"{shell.where}: `{PROGRAM} ctl status` answered {answer!r}")
    return answer


@dataclass(frozen=True)
class Started:
    """The state the unit reached, and the PID of the agent it runs."""

    state: str
    pid: int | None


class Activation:
    """One version's activation on one device (see the module docstring)."""

    def __init__(self, shell: DeviceShell, service: AgentService, systemctl: str,
                 sha256: str) -> None:
        self.shell = shell
        self.service = service
        self.systemctl = systemctl
        self.sha256 = sha256
        self.prefix = service.prefix

    def current(self) -> str | None:
        """The folder name ``current`` points at, if any."""
        result = self.shell.run(f"readlink {shlex.quote(self.prefix + '/current')}")
        return result.stdout.decode("utf-8", "replace").strip() or None

    def place(self, incoming: str, version: str, current: str | None) -> tuple[str, bool]:
        """Move ``incoming`` to its version folder; (folder name, whether an identical
        folder was already there and reused)."""
        q = shlex.quote
        for name in (version, f"{version}-{self.sha256[:8]}"):
            folder = f"{self.prefix}/{name}"
            there = self.shell.run(f"cat {q(folder + '/' + SHA_FILE)}")
            if there.status == 0 and there.stdout.decode().strip() == self.sha256:
                self.shell.check(f"rm -rf {q(incoming)}", "removing the duplicate upload",
                                 privileged=True)
                return name, True
            if name == current:
                continue
            self.shell.check(f"rm -rf {q(folder)} && mv -T {q(incoming)} {q(folder)}",
                             f"moving the bundle to {folder}", privileged=True)
            return name, False
        raise InstallFailed(f"{self.shell.where}: {self.prefix}/{version} and its -sha variant "
                            "are both taken")

    def write_files(self, upload: str) -> str | None:
        """The launcher (unless a program of that name that is not ours is there) and the
        unit, each copied from the upload folder to a temp name and renamed; the unit's
        text before, if there was one (for :meth:`roll_back`)."""
        q, service = shlex.quote, self.service
        launcher, unit = service.launcher_path, service.unit_path
        before = self.shell.run(f"cat {q(unit)}")
        old_unit = before.stdout.decode("utf-8", "replace") if before.status == 0 else None
        refuse = (f"{launcher} exists and was not written by install-agent; move it away or "
                  "pass another --bin-dir")
        self.shell.check(
            f"if [ -e {q(launcher)} ] && ! grep -qF {q(LAUNCHER_MARK)} {q(launcher)}; then "
            f"echo {q(refuse)} >&2; exit 1; fi; mkdir -p {q(service.bin_dir)} && "
            f"cp {q(upload + '/' + PROGRAM)} {q(launcher + '.tmp')} && "
            f"chmod 755 {q(launcher + '.tmp')} && mv -f {q(launcher + '.tmp')} {q(launcher)}",
            f"writing {launcher}", privileged=True)
        self.shell.check(
            f"mkdir -p {q(service.unit_dir)} && cp {q(upload + '/' + UNIT_NAME)} "
            f"{q(unit + '.tmp')} && chmod 644 {q(unit + '.tmp')} && "
            f"mv -f {q(unit + '.tmp')} {q(unit)}", f"writing {unit}", privileged=True)
        return old_unit

    def switch(self, name: str, previous: str | None) -> None:
        """Point ``current`` at ``name`` in one rename; the old target becomes ``previous``."""
        q = shlex.quote
        script = (f"set -e; cd {q(self.prefix)}; ln -sfn {q(name)} .current.tmp; "
                  "mv -Tf .current.tmp current")
        if previous and previous != name:
            script += f"; ln -sfn {q(previous)} .previous.tmp; mv -Tf .previous.tmp previous"
        self.shell.check(script, f"switching {self.prefix}/current to {name}", privileged=True)

    def is_active(self) -> str:
        result = self._systemctl("is-active", UNIT_NAME)
        return result.stdout.decode("utf-8", "replace").strip() or "unknown"

    def status_pid(self, program: str | None = None, any_state: bool = False) -> int | None:
        """The PID in the agent's status when it says running (or in any state)."""
        try:
            status = agent_status(self.shell, program or self.service.executable,
                                  self.service.home)
        except InstallFailed:
            return None
        inner = status.get("status") or {}
        pid = inner.get("pid")
        return pid if (any_state or inner.get("state") == "running") and isinstance(
            pid, int) else None

    def start(self, was_active: bool, old_pid: int | None, timeout: float) -> Started:
        """Reload systemd, enable the unit and start (or restart) it; wait for a new agent."""
        steps: list[tuple[str, ...]] = [("daemon-reload",)]
        steps += ([("enable", UNIT_NAME), ("restart", UNIT_NAME)] if was_active
                  else [("enable", "--now", UNIT_NAME)])
        for args in steps:
            result = self._systemctl(*args)
            if result.status != 0:
                raise InstallFailed(
                    f"{self.shell.where}: `{self.systemctl} {' '.join(args)}` failed (exit "
                    f"{result.status}): {result.error_text or 'no message'}")
        return self._wait_running(old_pid, timeout)

    def roll_back(self, previous: str, old_unit: str | None, failed_pid: int | None,
                  timeout: float) -> str:
        """``current`` back to ``previous``, the unit as it was, that agent restarted; what
        came of it, in words."""
        q, unit = shlex.quote, self.service.unit_path
        self.switch(previous, None)
        if old_unit is not None:
            self.shell.check(f"cat > {q(unit + '.tmp')} && mv -f {q(unit + '.tmp')} {q(unit)}",
                             f"restoring {unit}", privileged=True, stdin=old_unit.encode())
            self._systemctl("daemon-reload")
        self._systemctl("restart", UNIT_NAME)
        try:
            started = self._wait_running(failed_pid, timeout)
        except InstallFailed as exc:
            return f"current points at {previous} again, but it did not start either: {exc}"
        return f"current points at {previous} again, running as PID {started.pid}"

    def prune(self, keep: set[str]) -> list[str]:
        """Remove the version folders not in ``keep`` (only ours: they hold SHA_FILE; never
        the links), and unpacked uploads a broken-off install left over a day ago; the
        names removed."""
        q = shlex.quote
        kept = " ".join(q(k) for k in sorted(keep))
        script = (f"cd {q(self.prefix)} || exit 0; find . -maxdepth 1 -name '.incoming.*' "
                  "-mmin +1440 -exec rm -rf {} + ; for d in */; do d=${d%/}; "
                  f"[ -L \"$d\" ] || [ ! -f \"$d/{SHA_FILE}\" ] && continue; keep=0; "
                  f"for k in {kept}; do [ \"$d\" = \"$k\" ] && keep=1; done; "
                  "[ $keep = 1 ] || { rm -rf \"$d\" && echo \"$d\"; }; done")
        result = self.shell.run(script, privileged=True)
        return result.stdout.decode("utf-8", "replace").split()

    def _systemctl(self, *args: str) -> CommandResult:
        return self.shell.run(shlex.join([self.systemctl, *args]), privileged=True)

    def _wait_running(self, old_pid: int | None, timeout: float) -> Started:
        """Until systemd says active and the status names a new PID, running, twice
        :data:`SETTLE_S` apart."""
        deadline = time.monotonic() + timeout
        state, seen = "unknown", None
        while time.monotonic() < deadline:
            state = self.is_active()
            pid = self.status_pid() if state == "active" else None
            if pid is not None and pid != old_pid and pid == seen:
                return Started(state, pid)
            seen = pid if pid != old_pid else None
            time.sleep(SETTLE_S if seen is not None else 1.0)
        raise InstallFailed(
            f"{self.shell.where}: {UNIT_NAME} is {state} and the agent did not keep running "
            f"within {timeout:.0f} s; see `journalctl -u {UNIT_NAME}` on the device")
