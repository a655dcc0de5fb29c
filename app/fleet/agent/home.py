"""The agent's home folder: its layout and its typed config.

    config.json          the device's settings (AgentConfig)
    trust/*.pub          model-signing public keys it accepts releases from
    releases/<version>/  installed releases; ``current`` and ``previous`` link into here
    inbox/               where the workstation uploads a release before installing it
    spool/               captures: <id>.jpg + <id>.json sidecar
    quarantine/          captures the workstation refused (``ctl pull`` hold), newest 500
    drift/               hourly drift statistics, <YYYYmmddHH>.json
    state/               status.json, spool.json, the activation journal and lock
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.fleet.agent.errors import ConfigError
from app.fleet.agent.fsutil import read_json, write_atomic, write_json_atomic
from app.fleet.agent.spool import Spool

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

CONFIG_VERSION = 1


@dataclass
class CaptureConfig:
    """Which frames the device keeps. Random sampling is opt-in (0 by default)."""

    enabled: bool = True
    low_confidence: float = 0.6
    random_rate: float = 0.0
    every_nth: int = 0
    image_format: str = "jpg"
    jpeg_quality: int = 92


@dataclass
class AgentConfig:
    """A device's settings, kept in config.json with a schema version."""

    device_id: str
    name: str = ""
    hardware: str = "generic"
    fps: float = 5.0
    runtime: str = "auto"
    quota_mb: float = 256.0
    # None: advertise on every interface (a real device); tests and the simulator give loopback.
    interfaces: list[str] | None = None
    ssh_port: int = 22
    status_interval_s: float = 2.0
    drift_flush_interval_s: float = 60.0
    # Where ``ctl authorize`` adds workstation keys: ``~`` expands, relative is to the home.
    authorized_keys: str = "~/.ssh/authorized_keys"
    capture: CaptureConfig = field(default_factory=CaptureConfig)

    def to_json(self) -> dict[str, Any]:
        return {"config_version": CONFIG_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str = "config.json") -> AgentConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source} must hold a JSON object")
        data = dict(data)
        version = data.pop("config_version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"{source} has config_version {version}; this agent reads {CONFIG_VERSION}")
        try:
            capture = CaptureConfig(**data.pop("capture", {}))
            config = cls(capture=capture, **data)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        if not config.device_id or not isinstance(config.device_id, str):
            raise ConfigError(f"{source}: device_id is required")
        if not 0 < config.fps <= 1000 or config.quota_mb <= 0:
            raise ConfigError(f"{source}: fps must be in (0, 1000] and quota_mb positive")
        if not 0.0 <= config.capture.random_rate <= 1.0:
            raise ConfigError(f"{source}: capture.random_rate must be within 0..1")
        if not isinstance(config.authorized_keys, str) or not config.authorized_keys:
            raise ConfigError(f"{source}: authorized_keys must name a file")
        if config.capture.image_format not in ("jpg", "png"):
            raise ConfigError(f"{source}: capture.image_format must be jpg or png")
        return config


class AgentHome:
    """Paths of one agent home, and loading what lives there."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.config_path = self.root / "config.json"
        self.trust = self.root / "trust"
        self.releases = self.root / "releases"
        self.current = self.root / "current"
        self.previous = self.root / "previous"
        self.inbox = self.root / "inbox"
        self.spool = self.root / "spool"
        self.quarantine = self.root / "quarantine"
        self.drift = self.root / "drift"
        self.state = self.root / "state"
        self.status_path = self.state / "status.json"
        self.reload_request = self.state / "reload-request"

    def create(self, config: AgentConfig) -> None:
        """Make the folders and write config.json (keeps an existing config untouched)."""
        for folder in (self.root, self.trust, self.releases, self.inbox, self.spool,
                       self.drift, self.state):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.config_path.exists():
            write_json_atomic(self.config_path, config.to_json())

    def load_config(self) -> AgentConfig:
        if not self.config_path.is_file():
            raise ConfigError(f"no agent config at {self.config_path}; run `edgeloop-agent init` first")
        try:
            data = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.config_path} is not valid JSON: {exc}") from exc
        return AgentConfig.from_json(data, str(self.config_path))

    def save_config(self, config: AgentConfig) -> None:
        write_json_atomic(self.config_path, config.to_json())

    def trusted_keys(self) -> list[Ed25519PublicKey]:
        """Every signing key the device was provisioned with."""
        # Imported here: cryptography costs ctl commands that never check a key (pull) time.
        from app.fleet.agent.manifest import public_key_from_text

        if not self.trust.is_dir():
            return []
        return [public_key_from_text(p.read_text()) for p in sorted(self.trust.glob("*.pub"))]

    def add_trusted_key(self, name: str, key_text: str) -> None:
        from app.fleet.agent.manifest import public_key_from_text

        public_key_from_text(key_text)  # refuse garbage before writing it
        self.trust.mkdir(parents=True, exist_ok=True)
        write_atomic(self.trust / f"{name}.pub", key_text.encode())

    def open_spool(self, config: AgentConfig, lock_timeout: float | None = None) -> Spool:
        """The capture spool under the config's quota (safe to open from several processes);
        with ``lock_timeout``, :class:`SpoolBusy` rather than waiting longer for the lock."""
        return Spool(self.spool, self.state / "spool.json", int(config.quota_mb * 1024 * 1024),
                     lock_timeout)

    def request_reload(self) -> None:
        """Ask the running agent to reload its release (it watches this file's mtime)."""
        write_atomic(self.reload_request, str(os.getpid()).encode())

    def status(self) -> dict[str, Any]:
        return read_json(self.status_path, default={}) or {}

    def drift_records(self, since: str) -> tuple[list[dict[str, Any]], list[str]]:
        """The hourly drift records of hours after ``since`` (YYYYmmddHH), oldest first, and
        the hours whose file could not be read (named, so none goes missing unnoticed)."""
        if not (len(since) == 10 and since.isascii() and since.isdigit()):
            raise ConfigError(f"--drift-since {since!r} is not an hour written YYYYmmddHH")
        hours = sorted(p.stem for p in self.drift.glob("*.json")
                       if len(p.stem) == 10 and p.stem.isascii() and p.stem.isdigit())
        records, unreadable = [], []
        for hour in (h for h in hours if h > since):
            try:
                records.append(read_json(self.drift / f"{hour}.json"))
            except (ValueError, OSError):
                unreadable.append(hour)
        return [r for r in records if r is not None], unreadable
