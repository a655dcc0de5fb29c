"""``edgeloop-agent ctl authorize``: let a workstation's SSH key log in to this device.

The key arrives as one OpenSSH public key line on stdin (``ssh-ed25519 AAAA... comment``)
and is appended, once, to the file the config's ``authorized_keys`` names. Only bare key
lines are accepted: a line with options (``command=...``) or anything that is not a key of
a known type is refused, so this command cannot grant more than a plain login.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

from app.core.fsutil import atomic_write_bytes
from app.fleet.agent.errors import AgentError

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")


@dataclass(frozen=True)
class PublicKeyLine:
    """A checked OpenSSH public key line."""

    key_type: str
    base64: str
    comment: str

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.base64)

    def fingerprint(self) -> str:
        """The OpenSSH fingerprint: SHA256: + unpadded base64 of the blob's sha256."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def line(self) -> str:
        return " ".join(part for part in (self.key_type, self.base64, self.comment) if part)


def _refuse(text: str, why: str) -> AgentError:
    return AgentError(f"authorize: not an OpenSSH public key line ({why}): {text[:60]!r}. "
                      "Give the contents of an id_ed25519.pub (or ecdsa, rsa) file")


def _blob_key_type(blob: bytes) -> str | None:
    """The first length-prefixed string of an SSH key blob, if it is one."""
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    if length > len(blob) - 4:
        return None
    return blob[4:4 + length].decode("ascii", errors="replace")


def parse_public_key_line(text: str) -> PublicKeyLine:
    """Check one key line: a known type, base64 that decodes, and a blob whose first field
    names the same type. Raise AgentError otherwise."""
    stripped = text.strip()
    if not stripped or "\n" in stripped or "\r" in stripped:
        raise _refuse(stripped, "exactly one line is expected")
    if not stripped.replace("\t", " ").isprintable():
        raise _refuse(stripped, "it holds control characters")
    fields = stripped.split(maxsplit=2)
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise _refuse(stripped, f"it must start with one of {', '.join(KEY_TYPES)}")
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(stripped, "the key is not base64") from None
    if _blob_key_type(blob) != key_type:
        raise _refuse(stripped, f"the key data is not a {key_type} key")
    try:  # the rest of the blob: a point on the curve, a sane RSA modulus
        load_ssh_public_key(f"{key_type} {encoded}".encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise _refuse(stripped, f"the {key_type} key data is damaged: {exc}") from None
    return PublicKeyLine(key_type, encoded, fields[2] if len(fields) > 2 else "")


def authorized_keys_path(setting: str, home_root: Path) -> Path:
    """The file a config's ``authorized_keys`` names: ``~`` expands, and a relative path is
    relative to the agent home."""
    path = Path(os.path.expanduser(setting))
    return path if path.is_absolute() else Path(home_root) / path


def _present(existing: str, key: PublicKeyLine) -> bool:
    """Whether ``existing`` (an authorized_keys file) already holds this key, with or
    without options and whatever its comment."""
    for line in existing.splitlines():
        tokens = line.split()
        if any(tokens[i:i + 2] == [key.key_type, key.base64] for i in range(len(tokens) - 1)):
            return True
    return False


def _make_private_folder(folder: Path) -> None:
    if folder.is_dir():
        return  # someone else's folder: its mode is theirs to choose
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)  # mkdir's mode passes through the umask


def authorize_key(path: Path, text: str) -> str:
    """Append the key line ``text`` to the authorized_keys file ``path`` unless the key is
    already there; return its fingerprint. The file is replaced atomically, mode 0600."""
    key = parse_public_key_line(text)
    _make_private_folder(path.parent)
    target = Path(os.path.realpath(path))  # a linked authorized_keys stays linked
    # Lock the folder: two authorize calls at once must not lose a key.
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            existing = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = ""
        if not _present(existing, key):
            if existing and not existing.endswith("\n"):
                existing += "\n"
            atomic_write_bytes(target, (existing + key.line() + "\n").encode(), mode=0o600)
    finally:
        os.close(fd)  # releases the lock
    return key.fingerprint()
