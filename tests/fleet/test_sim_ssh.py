"""The simulated device's SSH + SFTP server, driven by a real paramiko client on loopback."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import stat
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.core.errors import InvalidInput
from app.fleet.sim_ssh import (
    DEVICE_USER,
    CommandRefused,
    DeviceSSHServer,
    SSHEndpoint,
    authorize_client_key,
    device_host_key,
)
from app.fleet.sim_ssh_exec import TarCommand
from app.fleet.sim_ssh_thread import DeviceSSHServerThread

# Echoes what it got, as JSON on stdout, a line on stderr, and exits with the status given
# as its first argument.
ECHO_ARGS = (
    "import json, os, sys\n"
    "data = sys.stdin.buffer.read()\n"
    "sys.stdout.write(json.dumps({'args': sys.argv[1:], 'stdin': data.hex(),"
    " 'cwd': os.getcwd()}))\n"
    "sys.stderr.write('echo-args done\\n')\n"
    "sys.exit(int(sys.argv[1]))\n"
)
# Prints its pid, then sleeps: a command that is still running when it should be killed.
SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"

COMMANDS = {
    "echo-args": lambda args: [sys.executable, "-c", ECHO_ARGS, *args],
    "sleeper": lambda args: [sys.executable, "-c", SLEEPER],
    "broken": lambda args: [str(1 / len(args))],  # a buggy entry: ZeroDivisionError
}


@dataclass
class ClientKey:
    pkey: paramiko.PKey
    public_line: str


def new_client_key() -> ClientKey:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return ClientKey(paramiko.Ed25519Key.from_private_key(io.StringIO(pem)),
                     public + " test@workstation")


@dataclass
class Device:
    home: Path
    endpoint: SSHEndpoint
    runner: DeviceSSHServerThread
    key: ClientKey


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    """A started device server (on its own thread) with one authorized client key."""
    home = tmp_path / "home"
    home.mkdir()
    key = new_client_key()
    authorize_client_key(home, key.public_line)
    runner = DeviceSSHServerThread(DeviceSSHServer(home, commands=COMMANDS))
    endpoint = runner.start()
    yield Device(home, endpoint, runner, key)
    runner.stop()


@contextmanager
def connected(endpoint: SSHEndpoint, key: ClientKey | None, known_hosts: Path, *,
              user: str | None = None, known_hosts_line: str | None = None,
              password: str | None = None) -> Iterator[paramiko.SSHClient]:
    """A paramiko client with strict host-key checking against ``known_hosts``."""
    known_hosts.write_text((known_hosts_line or endpoint.known_hosts_line()) + "\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(endpoint.host, endpoint.port, username=endpoint.user if user is None else user,
                       pkey=key.pkey if key else None, password=password,
                       look_for_keys=False, allow_agent=False, timeout=10, auth_timeout=10,
                       banner_timeout=10)
        yield client
    finally:
        client.close()


def run(client: paramiko.SSHClient, command: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    chan = client.get_transport().open_session()
    chan.settimeout(60)
    chan.exec_command(command)
    if stdin:
        chan.sendall(stdin)
    chan.shutdown_write()
    out, err = bytearray(), bytearray()
    while True:
        if chan.recv_ready():
            out += chan.recv(1 << 20)
        elif chan.recv_stderr_ready():
            err += chan.recv_stderr(1 << 20)
        elif (chan.eof_received or chan.closed) and chan.exit_status_ready():
            break
        else:
            time.sleep(0.002)
    status = chan.recv_exit_status()
    chan.close()
    return status, bytes(out), bytes(err)


def sha256_fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def process_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


# --- connecting and SFTP -----------------------------------------------------------------


def test_authorized_key_connects_with_strict_host_key_checking_and_sftp_works(
        device: Device, tmp_path: Path) -> None:
    (device.home / "spool").mkdir()
    (device.home / "spool" / "c1.json").write_bytes(b'{"label": "ok"}')
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        server_key = client.get_transport().get_remote_server_key()
        assert sha256_fingerprint(server_key) == device.endpoint.host_key_fingerprint
        assert f"{server_key.get_name()} {server_key.get_base64()}" == \
            device.endpoint.host_public_key
        sftp = client.open_sftp()
        assert sorted(sftp.listdir("/")) == ["spool", "ssh"]
        assert sftp.listdir("spool") == ["c1.json"]
        with sftp.open("/spool/c1.json", "rb") as f:
            assert f.read() == b'{"label": "ok"}'
        with sftp.open("spool/new.bin", "wb") as f:
            f.write(bytes(range(256)) * 100)
        assert sftp.normalize(".") == "/"
        sftp.close()
    assert (device.home / "spool" / "new.bin").read_bytes() == bytes(range(256)) * 100


def test_known_hosts_line_uses_the_bracketed_form_off_port_22() -> None:
    endpoint = SSHEndpoint("127.0.0.1", 2222, DEVICE_USER, "SHA256:x", "ssh-ed25519 AAAA")
    assert endpoint.known_hosts_line() == "[127.0.0.1]:2222 ssh-ed25519 AAAA"
    on_22 = SSHEndpoint("10.0.0.5", 22, DEVICE_USER, "SHA256:x", "ssh-ed25519 AAAA")
    assert on_22.known_hosts_line() == "10.0.0.5 ssh-ed25519 AAAA"


def test_unknown_key_is_refused_until_authorized_while_the_server_runs(
        device: Device, tmp_path: Path) -> None:
    newcomer = new_client_key()
    with pytest.raises(paramiko.AuthenticationException):
        with connected(device.endpoint, newcomer, tmp_path / "known_hosts"):
            pass
    authorize_client_key(device.home, newcomer.public_line)
    authorize_client_key(device.home, newcomer.public_line)  # idempotent
    lines = (device.home / "ssh" / "authorized_keys").read_text().splitlines()
    assert len(lines) == 2
    assert stat.S_IMODE((device.home / "ssh" / "authorized_keys").stat().st_mode) == 0o600
    with connected(device.endpoint, newcomer, tmp_path / "known_hosts") as client:
        assert run(client, "echo-args 0")[0] == 0


def test_an_authorized_key_under_another_user_name_is_refused(
        device: Device, tmp_path: Path) -> None:
    for user in ("root", DEVICE_USER + "x", ""):
        with pytest.raises(paramiko.AuthenticationException):
            with connected(device.endpoint, device.key, tmp_path / "known_hosts", user=user):
                pass


def test_passwords_are_not_offered(device: Device, tmp_path: Path) -> None:
    with pytest.raises(paramiko.BadAuthenticationType) as refused:
        with connected(device.endpoint, None, tmp_path / "known_hosts", password="edgeloop"):
            pass
    assert refused.value.allowed_types == ["publickey"]


def test_authorize_client_key_rejects_what_is_not_a_public_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        authorize_client_key(tmp_path, "ssh-ed25519 not-base64!")
    assert not (tmp_path / "ssh" / "authorized_keys").exists()


def test_sftp_cannot_escape_the_home(device: Device, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    (device.home / "escape").symlink_to(outside)
    (device.home / "secret-link").symlink_to(outside / "secret.txt")
    (device.home / "dangling").symlink_to(outside / "created-through-link.txt")
    (device.home / "inside-link").symlink_to("ssh/authorized_keys")
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        sftp = client.open_sftp()
        for path in ("../outside/secret.txt", "/../../outside/secret.txt",
                     str(outside / "secret.txt"), "/etc/passwd", "../../../../etc/passwd",
                     "escape/secret.txt", "secret-link", "/escape/../escape/secret.txt"):
            with pytest.raises(IOError):
                with sftp.open(path, "rb") as f:
                    f.read()
        with pytest.raises(IOError):
            sftp.listdir("escape")
        with pytest.raises(IOError):
            sftp.stat("secret-link")
        for path in ("escape/planted.txt", "dangling"):
            with pytest.raises(IOError):
                with sftp.open(path, "wb") as f:
                    f.write(b"x")
        # a link the client creates to an absolute path points into the home, not the host
        sftp.symlink("/etc", "etc-link")
        with pytest.raises(IOError):
            with sftp.open("etc-link/passwd", "rb") as f:
                f.read()
        # listing a folder holding bad links still works; links inside the home still work
        assert {"escape", "secret-link", "inside-link"} <= set(sftp.listdir("/"))
        with sftp.open("inside-link", "rb") as f:
            assert f.read().startswith(b"ssh-ed25519 ")
        assert sftp.normalize("../..") == "/"
        sftp.close()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "SECRET"


# --- host key ----------------------------------------------------------------------------


def test_host_key_persists_across_restart_and_a_changed_key_is_refused(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = new_client_key()
    authorize_client_key(home, key.public_line)
    with DeviceSSHServerThread(DeviceSSHServer(home)) as first:
        pass
    key_file = home / "ssh" / "host_ed25519"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert device_host_key(home).get_fingerprint("sha256") == first.host_key_fingerprint
    with DeviceSSHServerThread(DeviceSSHServer(home)) as second:
        assert second.host_key_fingerprint == first.host_key_fingerprint
        assert second.host_public_key == first.host_public_key
        with connected(second, key, tmp_path / "known_hosts") as client:
            assert run(client, "tar -cf - ssh/authorized_keys")[0] == 0
        other_key = device_host_key(tmp_path / "another-device").export_public_key()
        impostor_line = f"[{second.host}]:{second.port} " + " ".join(
            other_key.decode().split()[:2])
        with pytest.raises(paramiko.BadHostKeyException):
            with connected(second, key, tmp_path / "known_hosts",
                           known_hosts_line=impostor_line):
                pass


# --- exec --------------------------------------------------------------------------------


def test_a_program_not_in_the_command_map_exits_127_and_nothing_runs(
        device: Device, tmp_path: Path) -> None:
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        for command in ("touch marker", "sh -c 'touch marker'", "/usr/bin/touch marker",
                        "echo-args; touch marker", ""):
            status, out, err = run(client, command)
            assert status == 127, command
            assert out == b""
            assert b"not a command this device offers" in err
        status, _, err = run(client, "echo-args 'unterminated")
        assert status == 126 and b"cannot parse" in err
    assert not (device.home / "marker").exists()


def test_a_session_without_a_command_is_refused(device: Device, tmp_path: Path) -> None:
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        with pytest.raises(paramiko.SSHException):
            client.invoke_shell()
        chan = client.get_transport().open_session()
        with pytest.raises(paramiko.SSHException):
            chan.get_pty()
        chan.close()
        with pytest.raises(paramiko.SSHException):
            client.get_transport().open_session().invoke_subsystem("netconf")


def test_tar_streams_many_small_files_and_a_large_one_intact(
        device: Device, tmp_path: Path) -> None:
    rng = random.Random(7)
    spool = device.home / "spool"
    spool.mkdir()
    expected = {}
    for i in range(200):
        data = rng.randbytes(rng.randrange(0, 20_000))
        expected[f"c{i:04d}.jpg"] = data
        (spool / f"c{i:04d}.jpg").write_bytes(data)
    expected["big.onnx"] = rng.randbytes(5 * 1024 * 1024 + 17)
    (spool / "big.onnx").write_bytes(expected["big.onnx"])
    names = " ".join(sorted(expected))
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        status, archive, err = run(client, f"tar -cf - -C spool {names}")
    assert (status, err) == (0, b"")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == set(expected)
        for name, data in expected.items():
            assert tar.extractfile(members[name]).read() == data, name


@pytest.mark.parametrize("command", [
    "tar -cf - ../x",
    "tar -cf - spool/../../x",
    "tar -cf - /etc",
    "tar -cf - -C /etc passwd",
    "tar -cf - -C .. home",
    "tar -cf - --directory=/ etc",
    "tar -cf - escape",  # a symlink in the home that leads outside
    "tar -cf - -C escape secret.txt",
    "tar -xf -",
    "tar -cf {outside}/stolen.tar ssh",
    "tar -cf - --to-command=id ssh",
    "tar -cf - --checkpoint-action=exec=id ssh",
    "tar -cf - -I id ssh",
    "tar -cf - -T list.txt",
    "tar -cf - -h ssh",
])
def test_tar_refuses_what_leaves_the_home_or_is_not_offered_with_126(
        device: Device, tmp_path: Path, command: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    (device.home / "escape").symlink_to(outside)
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        status, out, err = run(client, command.format(outside=outside))
    assert status == 126
    assert out == b""
    assert err.startswith(b"edgeloop device: tar:")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_tar_command_builds_a_canonical_argv(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "spool").mkdir(parents=True)
    (home / "spool" / "up").symlink_to(tmp_path)
    tar = TarCommand(home, program="/bin/tar")
    assert tar(["-cf", "-", "-C", "spool", "a", "b"]) == \
        ["/bin/tar", "--create", "--file", "-", "--directory", "spool", "a", "b"]
    assert tar(["cvf", "-", "spool"]) == \
        ["/bin/tar", "--create", "--verbose", "--file", "-", "spool"]
    assert tar(["-c", "spool"]) == ["/bin/tar", "--file", "-", "--create", "spool"]
    with pytest.raises(CommandRefused, match="outside"):
        tar(["-cf", "-", "-C", "spool", "-C", "up", "x"])  # -C paths are cumulative
    with pytest.raises(CommandRefused, match="'..' is not allowed"):
        tar(["-cf", "-", "spool/x/../../.."])
    with pytest.raises(CommandRefused, match="exactly one"):
        tar(["-ctf", "-", "spool"])


def test_a_custom_command_gets_its_arguments_and_stdin_and_returns_stdout_and_status(
        device: Device, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        status, out, err = run(client, "echo-args 3 'two words' '$(touch marker)' \"a;b\"",
                               stdin=payload)
    assert status == 3
    assert err == b"echo-args done\n"
    report = json.loads(out)
    assert report["args"] == ["3", "two words", "$(touch marker)", "a;b"]
    assert bytes.fromhex(report["stdin"]) == payload
    assert Path(report["cwd"]).resolve() == device.home.resolve()
    assert not (device.home / "marker").exists()


def test_exec_command_without_closing_stdin_returns_output_and_status(
        device: Device, tmp_path: Path) -> None:
    """paramiko's usual exec_command never sends EOF on stdin: the command must still end
    cleanly, and the server must not trip over its own stdin feeder."""
    (device.home / "spool").mkdir()
    (device.home / "spool" / "a.txt").write_text("A")
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        for _ in range(3):
            stdin, stdout, stderr = client.exec_command("tar -cf - -C spool a.txt", timeout=30)
            archive = stdout.read()
            assert stdout.channel.recv_exit_status() == 0
            assert stderr.read() == b""
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                assert tar.extractfile("a.txt").read() == b"A"
        # the connection still serves after those commands
        assert run(client, "echo-args 0")[0] == 0


def test_a_failing_command_map_entry_is_reported_not_left_hanging(
        device: Device, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        status, out, err = run(client, "broken")
        assert (status, out) == (255, b"")
        assert b"internal error" in err
        assert run(client, "echo-args 0")[0] == 0
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)


# --- shutdown ----------------------------------------------------------------------------


def _start_sleeper(client: paramiko.SSHClient) -> tuple[paramiko.Channel, int]:
    chan = client.get_transport().open_session()
    chan.settimeout(30)
    chan.exec_command("sleeper")
    line = b""
    while not line.endswith(b"\n"):
        line += chan.recv(100)
    return chan, int(line)


def test_a_client_that_goes_away_has_its_command_killed(device: Device, tmp_path: Path) -> None:
    with connected(device.endpoint, device.key, tmp_path / "known_hosts") as client:
        chan, pid = _start_sleeper(client)
        chan.close()
        assert process_gone(pid)
        chan, pid = _start_sleeper(client)
    assert process_gone(pid)  # the whole connection went away this time


def test_close_ends_connections_and_kills_running_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = new_client_key()
    authorize_client_key(home, key.public_line)
    runner = DeviceSSHServerThread(DeviceSSHServer(home, commands=COMMANDS))
    endpoint = runner.start()
    try:
        with connected(endpoint, key, tmp_path / "known_hosts") as client:
            chan, pid = _start_sleeper(client)
            sftp = client.open_sftp()
            started = time.monotonic()
            runner.stop()
            assert time.monotonic() - started < 10
            assert process_gone(pid, within=1)
            assert chan.recv(100) == b""  # EOF: the server closed the channel
            with pytest.raises((OSError, EOFError, paramiko.SSHException)):
                sftp.listdir("/")
    finally:
        runner.stop()
