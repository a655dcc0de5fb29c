"""The SSH + SFTP server of one simulated device, on a loopback port (asyncssh).

A real device runs OpenSSH; a simulated one (a folder, its "device home") runs this, so the
workstation's paramiko client talks to both the same way:

- public-key auth only, for :data:`DEVICE_USER` only; the accepted keys are
  ``home/ssh/authorized_keys``, re-read on every attempt (enrollment adds a key while the
  server runs; see :func:`authorize_client_key`);
- SFTP confined to the home (:mod:`app.fleet.sim_ssh_sftp`);
- exec of the programs in a command map only, never through a shell, and no interactive
  shell or pty at all (:mod:`app.fleet.sim_ssh_exec`);
- a host key kept in ``home/ssh/host_ed25519`` so a restarted device keeps its fingerprint.

No Qt, torch or SQLAlchemy here: the simulator and the tests run it on their own event loop
(or on a thread, with :class:`app.fleet.sim_ssh_thread.DeviceSSHServerThread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from app.core.errors import InvalidInput
from app.core.fsutil import atomic_write_text
from app.fleet.sim_ssh_exec import (
    CommandMap,
    CommandRefused,
    command_env,
    default_commands,
    kill_process_group,
    serve_exec,
)
from app.fleet.sim_ssh_sftp import HomeConfinedSFTPServer

__all__ = [
    "DEVICE_USER", "CommandMap", "CommandRefused", "DeviceSSHServer", "SSHEndpoint",
    "authorize_client_key", "device_host_key", "load_authorized_keys",
]

log = logging.getLogger(__name__)

#: The only user name a simulated device accepts.
DEVICE_USER = "edgeloop"

_HOST_KEY = Path("ssh", "host_ed25519")
_AUTHORIZED_KEYS = Path("ssh", "authorized_keys")
#: Receive window per channel: large, so uploads from a large-window paramiko client are not
#: throttled by the device (asyncssh's default is 2 MiB).
_WINDOW = 16 * 1024 * 1024


@dataclass(frozen=True)
class SSHEndpoint:
    """Where a started device server listens, and the host key a client must expect."""

    host: str
    port: int
    user: str
    host_key_fingerprint: str  # OpenSSH style "SHA256:<base64 without padding>"
    host_public_key: str  # OpenSSH one-line public key, "ssh-ed25519 AAAA..."

    def known_hosts_line(self) -> str:
        """The OpenSSH known_hosts line for this endpoint ("[host]:port key" off port 22)."""
        where = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{where} {self.host_public_key}"


def device_host_key(home: Path) -> asyncssh.SSHKey:
    """Load home/ssh/host_ed25519, creating it (mode 0600) on first use, so a device
    restarted keeps its fingerprint."""
    path = Path(home) / _HOST_KEY
    if not path.exists():
        _create_host_key(path)
    return asyncssh.read_private_key(path)


def _create_host_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="edgeloop simulated device")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key("openssh"))
            out.flush()
            os.fsync(out.fileno())
        # link, not replace: if another process created the key meanwhile, theirs stays.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def public_key_line(key: asyncssh.SSHKey) -> str:
    """The OpenSSH one-line public key ("ssh-ed25519 AAAA..."), without a comment."""
    algorithm, blob = key.export_public_key("openssh").decode("ascii").split()[:2]
    return f"{algorithm} {blob}"


def _parse_public_key(line: str) -> asyncssh.SSHKey:
    try:
        return asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidInput(f"Not an OpenSSH public key line: {line.strip()[:60]!r} ({exc}). "
                           "Give the contents of an id_*.pub file.") from exc


def load_authorized_keys(home: Path) -> list[asyncssh.SSHKey]:
    """The client keys in home/ssh/authorized_keys (lines with options are skipped)."""
    path = Path(home) / _AUTHORIZED_KEYS
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    keys = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                keys.append(_parse_public_key(line))
            except InvalidInput:
                log.warning("skipping an unreadable line in %s", path)
    return keys


def authorize_client_key(home: Path, public_key_line: str) -> None:
    """Append an OpenSSH public key line to home/ssh/authorized_keys (idempotent).

    Raises :class:`InvalidInput` if the line is not a public key. The file is replaced
    atomically, so a server reading it meanwhile sees the old or the new list.
    """
    key = _parse_public_key(public_key_line)
    path = Path(home) / _AUTHORIZED_KEYS
    if any(k.public_data == key.public_data for k in load_authorized_keys(home)):
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    atomic_write_text(path, text + public_key_line.strip() + "\n", mode=0o600)


class _DeviceSession(asyncssh.SSHServerProcess):
    """A session channel that offers exec and the sftp subsystem, and nothing else."""

    def shell_requested(self) -> bool:
        return False  # a session without a command is refused

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"


class _DeviceConnection(asyncssh.SSHServer):
    """Per-connection policy: who may log in, what a session may do."""

    def __init__(self, device: DeviceSSHServer) -> None:
        self._device = device
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._device._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._device._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True  # always authenticate, whatever the user name

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh would accept a listed key for ANY user name: the user is checked here.
        if username != self._device.user:
            return False
        return any(k.public_data == key.public_data
                   for k in load_authorized_keys(self._device.home))

    def session_requested(self) -> _DeviceSession:
        return _DeviceSession(self._device._start_exec, self._device._open_sftp, 3, False)


class DeviceSSHServer:
    """asyncssh server for one simulated device: key auth for DEVICE_USER only, SFTP
    confined to the home, exec limited to the command map.

    ``commands`` adds entries to (or replaces entries of) the default map, which offers
    ``tar`` (see :class:`app.fleet.sim_ssh_exec.TarCommand`); ``env`` adds variables to the
    environment of exec'd commands. Use it on one event loop: ``await start()``, then
    ``await close()``, which also ends open connections and kills running commands.
    """

    def __init__(self, home: Path, *, host: str = "127.0.0.1", port: int = 0,
                 user: str = DEVICE_USER, commands: CommandMap | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.host = host
        self.port = port
        self.user = user
        self._commands = {**default_commands(self.home), **(commands or {})}
        self._env = command_env(self.home, env)
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._endpoint: SSHEndpoint | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._exec_tasks: set[asyncio.Task[None]] = set()
        self._running: set[asyncio.subprocess.Process] = set()

    @property
    def endpoint(self) -> SSHEndpoint:
        """The endpoint of the started server."""
        if self._endpoint is None:
            raise RuntimeError("the device SSH server is not started")
        return self._endpoint

    async def start(self) -> SSHEndpoint:
        """Listen (port 0: a free port chosen by the OS); the endpoint tells the real one."""
        if self._acceptor is not None:
            raise RuntimeError("the device SSH server is already started")
        self.home.mkdir(parents=True, exist_ok=True)
        key = device_host_key(self.home)
        self._acceptor = await asyncssh.create_server(
            lambda: _DeviceConnection(self), self.host, self.port,
            server_host_keys=[key], encoding=None, window=_WINDOW,
            password_auth=False, kbdint_auth=False, host_based_auth=False, gss_host=None,
            allow_pty=False, agent_forwarding=False, x11_forwarding=False, line_editor=False,
            login_timeout=30)
        self._endpoint = SSHEndpoint(
            host=self.host, port=self._acceptor.get_port(), user=self.user,
            host_key_fingerprint=key.get_fingerprint("sha256"),
            host_public_key=public_key_line(key))
        return self._endpoint

    async def close(self) -> None:
        """Stop listening, close open connections, kill and reap running commands."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        acceptor.close()
        for task in list(self._exec_tasks):
            task.cancel()
        for proc in list(self._running):
            kill_process_group(proc)
        await asyncio.gather(*self._exec_tasks, return_exceptions=True)
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()
        await acceptor.wait_closed()

    def _start_exec(self, process: asyncssh.SSHServerProcess) -> None:
        task = asyncio.ensure_future(
            serve_exec(process, self.home, self._commands, self._env, self._running))
        self._exec_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)

    def _open_sftp(self, chan: asyncssh.SSHServerChannel) -> HomeConfinedSFTPServer:
        return HomeConfinedSFTPServer(chan, self.home)
