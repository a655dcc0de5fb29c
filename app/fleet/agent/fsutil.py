"""Crash-safe file operations on the device: atomic writes and atomic symlink switches.

The agent may lose power at any instant, so every file that matters is replaced in one
rename, and the folder is fsynced so the rename itself survives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from app.core.fsutil import atomic_write_bytes, fsync_dir

__all__ = ["fsync_dir", "read_json", "switch_symlink", "write_atomic", "write_json_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old or the new file, never a mix."""
    atomic_write_bytes(path, data)


def write_json_atomic(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file's value, or ``default`` if it is absent (a damaged file raises ValueError)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def switch_symlink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one atomic rename (never a moment without a link)."""
    tmp = link.with_name(f".{link.name}.new")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)
