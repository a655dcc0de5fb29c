"""A private OpenSSH server for tests, on a free loopback port, stopped by PID.

Its own config, host key and authorized_keys in a temp folder (NOTES.md: UsePAM no,
StrictModes no, /run/sshd must exist). It logs in the user running the tests.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

SSHD = "/usr/sbin/sshd"


def sshd_available() -> bool:
    return Path(SSHD).exists() and shutil.which("ssh-keygen") is not None


@dataclass
class OpenSSHServer:
    """A running sshd and what a client needs to reach it."""

    port: int
    user: str
    host_public_key: str  # "ssh-ed25519 AAAA..."
    authorized_keys: Path
    process: subprocess.Popen

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_public_key}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_sshd(folder: Path, extra_config: Sequence[str] = ()) -> OpenSSHServer:
    """Start sshd on a loopback port for the current user; ``extra_config`` adds lines
    (for example ``SetEnv`` for the commands it runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                   check=True)
    authorized = folder / "authorized_keys"
    authorized.touch(mode=0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}",
        f"AuthorizedKeysFile {authorized}", f"PidFile {folder / 'sshd.pid'}",
        "UsePAM no", "StrictModes no", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes", "Subsystem sftp internal-sftp", "LogLevel ERROR",
        *extra_config, "",
    ]))
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("sshd did not start; run it by hand with -d to see why")
            time.sleep(0.05)
    public = (host_key.with_suffix(".pub")).read_text().split()
    return OpenSSHServer(port, getpass.getuser(), f"{public[0]} {public[1]}", authorized, process)
