"""The project's model-signing key: ed25519, private half in keys/ with mode 0600.

Devices are provisioned with the public half and accept only releases it signed.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding, NoEncryption, PrivateFormat, load_pem_private_key,
)

from app.core.errors import ProjectError
from app.core.fsutil import atomic_write_bytes
from app.fleet.agent.manifest import public_key_to_text

PRIVATE_NAME = "model-signing.key"
PUBLIC_NAME = "model-signing.pub"


def load_or_create_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """The project's signing key, made on first use."""
    path = Path(keys_dir) / PRIVATE_NAME
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        key = load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ProjectError(f"{path} is not an ed25519 key; restore the project's signing key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    Path(keys_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(path, pem, mode=0o600)
    atomic_write_bytes(Path(keys_dir) / PUBLIC_NAME, public_key_to_text(key.public_key()).encode())
    return key
