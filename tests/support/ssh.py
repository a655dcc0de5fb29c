"""Client-side SSH helpers for tests: a fresh ed25519 client key, strict connects, exec."""

from __future__ import annotations

from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def client_key(folder: Path) -> tuple[paramiko.Ed25519Key, str]:
    """A new client key saved in ``folder``: (paramiko key, OpenSSH public key line)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    path = folder / "id_ed25519"
    path.write_bytes(pem)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    return paramiko.Ed25519Key.from_private_key_file(str(path)), public


def connect_strict(host: str, port: int, user: str, known_hosts_line: str,
                   key: paramiko.PKey, folder: Path) -> paramiko.SSHClient:
    """Connect with strict host-key checking against exactly ``known_hosts_line``."""
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(known_hosts_line + "\n")
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(host, port, username=user, pkey=key, allow_agent=False,
                   look_for_keys=False, timeout=10)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    """Run a command over an exec channel: (exit status, stdout, stderr)."""
    _, stdout, stderr = client.exec_command(command, timeout=60)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err
