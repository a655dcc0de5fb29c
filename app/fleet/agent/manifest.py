"""The release manifest: what a release holds, and the check of its signature and files.

A release is a folder::

    manifest.json   version, labels, input spec, artifacts per runtime, sha256 of every file
    manifest.sig    base64 ed25519 signature of manifest.json's exact bytes
    model.onnx ...  the files the manifest lists

The workstation signs (app.fleet.release_build); the agent only verifies, against the public
keys it was provisioned with. Names in a manifest come from outside, so any name that is not
a plain file name (a path, "..", a hidden file) rejects the whole release.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.core.fsutil import sha256_file
from app.fleet.agent.errors import ReleaseRejected

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MANIFEST_FORMAT = 1
RUNTIMES = ("onnxruntime", "openvino")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """Short stable id of a signing key: "ed25519:" + the first 16 hex of sha256(raw key)."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a public key file: base64 of the 32 raw bytes (what provisioning writes)."""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except (ValueError, TypeError) as exc:
        raise ReleaseRejected(f"a trusted key file is not a base64 ed25519 key: {exc}") from exc


def public_key_to_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode() + "\n"


def check_name(name: object, what: str) -> str:
    """A file name from a manifest: plain, no path, no traversal; else the release is rejected."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ReleaseRejected(f"{what} {name!r} is not a plain file name; release refused")
    return name


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input tensor."""

    width: int
    height: int
    color: str = "RGB"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSpec:
        try:
            spec = cls(
                width=int(data["width"]), height=int(data["height"]),
                color=str(data.get("color", "RGB")),
                mean=tuple(float(v) for v in data.get("mean", (0, 0, 0))),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data.get("std", (1, 1, 1))),  # type: ignore[arg-type]
                scale=float(data.get("scale", 1 / 255)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReleaseRejected(f"manifest input spec is malformed: {exc}") from exc
        if not (8 <= spec.width <= 4096 and 8 <= spec.height <= 4096):
            raise ReleaseRejected(f"manifest input size {spec.width}x{spec.height} is out of range")
        if spec.color not in ("RGB", "BGR") or len(spec.mean) != 3 or len(spec.std) != 3:
            raise ReleaseRejected("manifest input spec needs color RGB/BGR and 3 means and stds")
        if any(s <= 0 for s in spec.std):
            raise ReleaseRejected("manifest input std values must be positive")
        return spec

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "color": self.color,
                "mean": list(self.mean), "std": list(self.std), "scale": self.scale,
                "layout": "NCHW", "dtype": "float32"}


@dataclass(frozen=True)
class SelfTest:
    """A sample input shipped in the release and the output the model must give on it."""

    input: str
    expected_label: str
    expected_probs: tuple[float, ...]
    tolerance: float = 0.05
    # Per runtime, when a release's runtimes run different files (INT8 from two quantizers
    # does not give the same probabilities): runtime -> (label, probs). Else the above.
    by_runtime: dict[str, tuple[str, tuple[float, ...]]] = field(default_factory=dict)

    def expected_for(self, runtime: str) -> tuple[str, tuple[float, ...]]:
        """The label and probabilities ``runtime`` must give on the sample."""
        return self.by_runtime.get(runtime, (self.expected_label, self.expected_probs))


@dataclass(frozen=True)
class Manifest:
    """A verified release manifest."""

    version: str
    labels: tuple[str, ...]
    input: InputSpec
    artifacts: dict[str, str]
    files: dict[str, str]
    selftest: SelfTest
    signing_key: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise ReleaseRejected(f"manifest is not an EdgeLoop release manifest of format {MANIFEST_FORMAT}")
        try:
            version = str(data["version"])
            labels = tuple(str(label) for label in data["labels"])
            files = {check_name(n, "file"): str(meta["sha256"]) for n, meta in data["files"].items()}
            artifacts = {str(rt): check_name(n, "artifact") for rt, n in data["artifacts"].items()}
            st = data["selftest"]
            selftest = SelfTest(
                input=check_name(st["input"], "self-test input"),
                expected_label=str(st["expected_label"]),
                expected_probs=tuple(float(p) for p in st["expected_probs"]),
                tolerance=float(st.get("tolerance", 0.05)),
                by_runtime={str(rt): (str(e["expected_label"]),
                                      tuple(float(p) for p in e["expected_probs"]))
                            for rt, e in (st.get("by_runtime") or {}).items()},
            )
            signing_key = str(data["signing_key"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ReleaseRejected(f"manifest is malformed ({exc!r}); release refused") from exc
        if not _VERSION.match(version):
            raise ReleaseRejected(f"release version {version!r} is not a plain name")
        if not labels or len(set(labels)) != len(labels):
            raise ReleaseRejected("manifest labels must be a non-empty list without repeats")
        unknown = set(artifacts) - set(RUNTIMES)
        if not artifacts or unknown:
            raise ReleaseRejected(f"manifest artifacts must name runtimes among {RUNTIMES}")
        for name in [*artifacts.values(), selftest.input]:
            if name not in files:
                raise ReleaseRejected(f"{name} is used by the manifest but has no sha256 in it")
        expectations = [(selftest.expected_label, selftest.expected_probs),
                        *selftest.by_runtime.values()]
        if any(label not in labels or len(probs) != len(labels) for label, probs in expectations):
            raise ReleaseRejected("manifest self-test does not match its labels")
        if not set(selftest.by_runtime) <= set(artifacts):
            raise ReleaseRejected("manifest self-test names a runtime the release has no "
                                  "artifact for")
        return cls(version, labels, InputSpec.from_json(data["input"]), artifacts, files,
                   selftest, signing_key, data)


def read_manifest(folder: Path) -> tuple[bytes, bytes]:
    """The raw manifest bytes and decoded signature of a release folder."""
    manifest_path, sig_path = folder / MANIFEST, folder / SIGNATURE
    for path in (manifest_path, sig_path):
        if not path.is_file() or path.is_symlink():
            raise ReleaseRejected(f"{path.name} is missing from {folder}; the release is unsigned")
    try:
        signature = base64.b64decode(sig_path.read_bytes().strip(), validate=True)
    except ValueError as exc:
        raise ReleaseRejected(f"{SIGNATURE} is not base64: {exc}") from exc
    return manifest_path.read_bytes(), signature


def verify_release(folder: Path, trusted: list[Ed25519PublicKey]) -> Manifest:
    """Check signature, names and every file's sha256; return the manifest or raise."""
    folder = Path(folder)
    data, signature = read_manifest(folder)
    if not trusted:
        raise ReleaseRejected("this device trusts no signing key yet; enroll it first")
    signer = None
    for key in trusted:
        try:
            key.verify(signature, data)
            signer = key
            break
        except InvalidSignature:
            continue
    if signer is None:
        raise ReleaseRejected(
            f"the signature of {folder.name} does not verify with any trusted key; "
            "the release was tampered with or signed by another project"
        )
    try:
        manifest = Manifest.from_json(json.loads(data))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReleaseRejected(f"manifest.json is not valid JSON: {exc}") from exc
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file() or path.is_symlink():
            raise ReleaseRejected(f"{name} listed in the manifest is missing from the release")
        actual = sha256_file(path)
        if actual != expected:
            raise ReleaseRejected(
                f"{name} hashes to {actual[:12]}…, the manifest says {expected[:12]}…; "
                "the file is damaged or was changed"
            )
    return manifest
