"""Getting the agent bundle onto a device: its shell, the checks made before anything is
written there, and the verified upload.

A :class:`DeviceShell` runs one ``sh -c`` script per exec channel (behind ``sudo -n`` when
the step is privileged and ``--sudo`` was given); every value in a script is quoted with
:func:`shlex.quote`. The checks refuse early and say why: another OS or CPU than the
bundle's, ``sudo`` that wants a password, too little free space (``df``) for the archive
and the unpacked bundle. The upload goes over SFTP on the same connection, with progress
and cancel, and counts only when the sha256 computed on the device matches the
workstation's.
"""

from __future__ import annotations

import hashlib
import shlex
import time

import paramiko

from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn
from app.fleet.agent_bundle_archive import BYTES, UNAME_MACHINES, BundleArchive
from app.fleet.errors import FleetError, reason
from app.fleet.ssh import MAX_PACKET, WINDOW, CommandResult, DeviceConnection

LONG_COMMAND_S = 600.0
# Room kept free beyond what the bundle needs: a device that fills its disk stops working.
SPACE_MARGIN = 32 * 1024 * 1024
ARCHIVE_NAME = "bundle.tar.gz"


class InstallFailed(FleetError):
    """A step of installing the agent on a device failed; the message names the step."""


class NotEnoughSpace(InstallFailed):
    """The device has too little free disk space for the bundle; nothing was written."""


class SudoUnavailable(InstallFailed):
    """``--sudo`` was asked for but ``sudo -n`` does not work for the SSH account."""


class DeviceShell:
    """Scripts on a connected device, each in ``sh -c``; privileged ones behind ``sudo -n``
    when ``sudo`` is set."""

    def __init__(self, conn: DeviceConnection, sudo: bool) -> None:
        self.conn = conn
        self.sudo = sudo
        self.where = str(conn.address)

    def run(self, script: str, *, privileged: bool = False, timeout: float | None = None,
            stdin: bytes | None = None) -> CommandResult:
        command = "sh -c " + shlex.quote(script)
        if privileged and self.sudo:
            command = "sudo -n " + command
        return self.conn.run(command, stdin, timeout=timeout)

    def check(self, script: str, step: str, *, privileged: bool = False,
              timeout: float | None = None, hint: str = "", stdin: bytes | None = None) -> str:
        """Run ``script``; its stdout, or :class:`InstallFailed` naming ``step`` and stderr."""
        result = self.run(script, privileged=privileged, timeout=timeout, stdin=stdin)
        if result.status != 0:
            detail = result.error_text or result.stdout.decode("utf-8", "replace").strip()[-800:]
            raise InstallFailed(f"{self.where}: {step} failed (exit {result.status}): "
                                f"{detail or 'no message'}{hint}")
        return result.stdout.decode("utf-8", "replace")

    def remove(self, folder: str, *, privileged: bool = False) -> str | None:
        """``rm -rf folder``; when the connection is gone, a note saying what was left, since
        the error that got us here matters more than a leftover folder."""
        try:
            self.run(f"rm -rf {shlex.quote(folder)}", privileged=privileged)
        except FleetError as exc:
            return f"{folder} left on the device ({exc})"
        return None


def check_platform(shell: DeviceShell, bundle_machine: str | None) -> None:
    """The device runs Linux on the CPU the bundle was built for."""
    system, _, machine = shell.check("uname -sm", "uname").strip().partition(" ")
    if system != "Linux":
        raise InstallFailed(f"{shell.where} runs {system}; the agent bundle is for Linux")
    have = UNAME_MACHINES.get(machine.strip())
    if bundle_machine and have and bundle_machine != have:
        raise InstallFailed(f"{shell.where} has a {machine.strip()} CPU but the bundle was built "
                            f"for {bundle_machine}; build the agent bundle on a {have} machine")


def check_sudo(shell: DeviceShell, user: str) -> None:
    """``sudo -n true`` works: sudo is installed and asks ``user`` for no password."""
    result = shell.run("sudo -n true")
    if result.status == 0:
        return
    text = result.error_text
    if result.status == 127 or "not found" in text:
        raise SudoUnavailable(f"{shell.where}: --sudo was given but sudo is not installed; "
                              "install it on the device or log in as root (--ssh-user root)")
    if "password" in text:
        raise SudoUnavailable(
            f"{shell.where}: sudo asks {user} for a password, and install-agent runs `sudo -n` "
            f"(no prompt over SSH). Allow {user} passwordless sudo for the install (a sudoers "
            f"line `{user} ALL=(root) NOPASSWD: ALL`, removed afterwards) or log in as root.")
    raise SudoUnavailable(f"{shell.where}: `sudo -n true` failed (exit {result.status}): "
                          f"{text or 'no message'}")


def check_space(shell: DeviceShell, needs: dict[str, int], what: str) -> None:
    """Each folder in ``needs`` (bytes to write there) has room, counting folders on one
    filesystem together and keeping :data:`SPACE_MARGIN` free."""
    free = {path: free_space(shell, path) for path in needs}
    by_mount: dict[str, int] = {}
    for path, need in needs.items():
        mount = free[path][0]
        by_mount[mount] = by_mount.get(mount, 0) + need
    for path, (mount, available) in free.items():
        need = by_mount[mount] + SPACE_MARGIN
        if available < need:
            raise NotEnoughSpace(
                f"{shell.where}: not enough free space on {mount} (holding {path}): "
                f"{_mib(available)} free, {_mib(need)} needed for {what} and 32 MiB kept free. "
                "Free some space or choose another --prefix / --upload-dir; nothing was "
                "uploaded.")


def free_space(shell: DeviceShell, path: str) -> tuple[str, int]:
    """(mount point, bytes available) of the filesystem that holds or would hold ``path``."""
    # The folder may not exist yet: ask df about its nearest existing parent.
    out = shell.check(
        f"p={shlex.quote(path)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; "
        "df -Pk \"$p\" | tail -n 1", f"checking free space for {path}")
    fields = out.split()
    try:
        return " ".join(fields[5:]) or fields[0], int(fields[3]) * 1024
    except (IndexError, ValueError) as exc:
        raise InstallFailed(f"{shell.where}: cannot read `df -Pk` output {out!r}") from exc


def make_upload_folder(shell: DeviceShell, upload_dir: str) -> str:
    """A fresh folder of the SSH account under ``upload_dir`` (``mktemp -d``)."""
    folder = shell.check(
        f"mkdir -p {shlex.quote(upload_dir)} && mktemp -d "
        f"{shlex.quote(upload_dir + '/edgeloop-agent-install.XXXXXX')}",
        f"making an upload folder in {upload_dir}").strip()
    if not folder.startswith(upload_dir + "/") or "\n" in folder:
        raise InstallFailed(f"{shell.where}: mktemp answered {folder!r}")
    return folder


def upload(shell: DeviceShell, archive: BundleArchive, folder: str, texts: dict[str, str],
           progress: ProgressFn, cancel: CancelToken) -> str:
    """Put the archive (as ``folder/bundle.tar.gz``) and the small ``texts`` (name: content)
    into ``folder`` over SFTP, then verify the archive; its path on the device."""
    remote = f"{folder}/{ARCHIVE_NAME}"
    started = time.monotonic()

    def sent(done: int, total: int) -> None:
        cancel.check()
        elapsed = time.monotonic() - started
        rate = f"{done / elapsed / 2**20:.0f} MiB/s" if elapsed > 0.5 else ""
        progress(Progress("uploading", done, total, rate, {**BYTES, "seconds": elapsed}))

    try:
        sftp = paramiko.SFTPClient.from_transport(shell.conn.transport, window_size=WINDOW,
                                                  max_packet_size=MAX_PACKET)
        if sftp is None:
            raise paramiko.SSHException("the device offered no SFTP subsystem")
        with sftp:
            sftp.put(str(archive.path), remote, callback=sent, confirm=True)
            for name, text in texts.items():
                with sftp.open(f"{folder}/{name}", "w") as fh:
                    fh.write(text.encode())
    except Cancelled:
        raise
    except (OSError, paramiko.SSHException) as exc:
        raise InstallFailed(
            f"{shell.where}: uploading the bundle to {remote} failed ({reason(exc)}); check "
            "the connection and the free space in --upload-dir") from exc
    progress(Progress("verifying the upload", 0, 0, "sha256 on the device"))
    _verify(shell, remote, archive.sha256)
    return remote


def _verify(shell: DeviceShell, remote: str, sha256: str) -> None:
    result = shell.run(f"sha256sum {shlex.quote(remote)}", timeout=LONG_COMMAND_S)
    if result.status == 127:  # no sha256sum on the device: read it back, hash it here
        seen = _hash_back(shell, remote)
    elif result.status == 0:
        seen = result.stdout.decode("ascii", "replace").split(" ", 1)[0].strip()
    else:
        raise InstallFailed(f"{shell.where}: `sha256sum {remote}` failed (exit "
                            f"{result.status}): {result.error_text or 'no message'}")
    if seen != sha256:
        raise InstallFailed(f"{shell.where}: the uploaded bundle's sha256 is {seen}, not "
                            f"{sha256}: the upload was damaged; try again")


def _hash_back(shell: DeviceShell, remote: str) -> str:
    digest = hashlib.sha256()
    try:
        sftp = paramiko.SFTPClient.from_transport(shell.conn.transport)
        if sftp is None:
            raise paramiko.SSHException("the device offered no SFTP subsystem")
        with sftp, sftp.open(remote, "rb") as fh:
            fh.prefetch()
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except (OSError, paramiko.SSHException) as exc:
        raise InstallFailed(f"{shell.where}: reading the upload back to verify it failed "
                            f"({reason(exc)}); the device has no sha256sum") from exc
    return digest.hexdigest()


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"
