"""The offline bundle: EdgeLoop and every wheel it needs, with a script that installs them on
a machine with no network.

    .venv/bin/python -m installers.offline_bundle --out DIR [--agent-bundle PATH]

makes ``DIR/edgeloop-offline-<version>/``::

    wheelhouse/              EdgeLoop's wheel and every dependency's, at the lock's versions
    constraints.txt          those exact versions, for pip --constraint
    agent-requirements.txt   the device agent's own dependencies (install.sh --agent)
    install.sh               the installer (pip --no-index, checks SHA256SUMS first)
    README.txt               for IT: what it is, how to install, the disk space it takes
    agent/<name>.tar.gz      the agent's PyInstaller bundle, with --agent-bundle
    SHA256SUMS               of every other file

The wheels come through the pip sources this machine is configured with (the build is the
one step that may use a network). The folder is put together under a temporary name beside
its final one and renamed when whole, so a folder with the final name is always complete.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from app.core.errors import EdgeLoopError
from app.core.progress import CancelToken, Progress, ProgressFn, no_progress
from installers.offline import wheelhouse
from installers.offline.wheelhouse import OfflineBundleError

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
TEMPLATES = Path(__file__).resolve().parent / "offline"
# What pip's byte-compiling and the venv itself add to the wheels' unpacked size, measured
# on a full install (docs/installers.md, "Offline bundle"); the installer asks for this much.
INSTALL_OVERHEAD = 1.17
VENV_MB = 25


@dataclass(frozen=True)
class BundleResult:
    """What a build made: the bundle folder and its figures."""

    root: Path
    wheels: int
    wheelhouse_bytes: int
    unpacked_bytes: int
    seconds: float


def bundle_name(version: str) -> str:
    """The bundle folder's name for EdgeLoop ``version``."""
    return f"edgeloop-offline-{version}"


def build_offline_bundle(out: Path, *, project: Path = ROOT, lock: Path = LOCK,
                         agent_bundle: Path | None = None, progress: ProgressFn = no_progress,
                         cancel: CancelToken | None = None) -> BundleResult:
    """Build the offline bundle of ``project`` into ``out`` (see the module's docstring)."""
    started = time.monotonic()
    wheelhouse.check_python()
    version = wheelhouse.project_version(project)
    _check_agent_bundle(agent_bundle)
    final = out / bundle_name(version)
    if final.exists():
        raise OfflineBundleError(f"{final} already exists: remove it or give another --out")
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        house = partial / "wheelhouse"
        own = wheelhouse.build_project_wheel(project, house, progress, cancel)
        wheels = wheelhouse.resolve(own, lock, progress, cancel)
        wheelhouse.check_against_lock(wheels, lock)
        wheelhouse.download(wheels, house, progress, cancel)
        write_bundle_files(partial, version, wheelhouse.extra_requirements(own), agent_bundle,
                           progress)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    files = [path for _, path in wheelhouse.wheels_in(final / "wheelhouse").values()]
    return BundleResult(final, len(files), sum(p.stat().st_size for p in files),
                        wheelhouse.unpacked_bytes(files), time.monotonic() - started)


def write_bundle_files(root: Path, version: str, agent_requirements: list[str],
                       agent_bundle: Path | None = None,
                       progress: ProgressFn = no_progress) -> None:
    """Everything beside ``root/wheelhouse`` (already filled): constraints, the agent's
    requirements, install.sh, README.txt, the agent bundle if given, and SHA256SUMS last."""
    progress(Progress("write", 0, 1, "writing install.sh, README.txt and SHA256SUMS"))
    found = wheelhouse.wheels_in(root / "wheelhouse")
    if wheelhouse.PROJECT not in found or found[wheelhouse.PROJECT][0] != version:
        raise OfflineBundleError(f"{root / 'wheelhouse'} holds no {wheelhouse.PROJECT} "
                                 f"{version} wheel")
    files = [path for _, path in found.values()]
    (root / "constraints.txt").write_text(
        "# The exact version of every wheel in wheelhouse/ (pip --constraint).\n"
        + "".join(f"{name}=={v}\n" for name, (v, _) in sorted(found.items())), encoding="utf-8")
    (root / "agent-requirements.txt").write_text(
        "# What the device agent needs (install.sh --agent); constraints.txt fixes versions.\n"
        + "".join(f"{line}\n" for line in agent_requirements), encoding="utf-8")
    glibc = wheelhouse.glibc_needed(files)
    wheels_bytes = sum(p.stat().st_size for p in files)
    needed_mb = int(wheelhouse.unpacked_bytes(files) * INSTALL_OVERHEAD / 2**20) + VENV_MB
    agent_line = ""
    if agent_bundle is not None:
        (root / "agent").mkdir(exist_ok=True)
        shutil.copy2(agent_bundle, root / "agent" / agent_bundle.name)
        agent_line = (f"\n  agent/{agent_bundle.name}   the device agent's PyInstaller bundle "
                      "(no Python needed on the device)")
    fields = {
        "VERSION": version,
        "PYTHON": ".".join(map(str, wheelhouse.PYTHON)),
        "MACHINE": platform.machine(),
        "GLIBC": ".".join(map(str, glibc)) if glibc else "",
        "NEEDED_MB": str(needed_mb),
        "WHEELS": str(len(files)),
        "WHEELHOUSE_MB": f"{wheels_bytes / 2**20:.0f}",
        "BUNDLE_MB": f"{(wheels_bytes + _size(root / 'agent')) / 2**20:.0f}",
        "BUILT_AT": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "AGENT_BUNDLE_LINE": agent_line,
    }
    script = root / "install.sh"
    script.write_text(_fill("install.sh", fields), encoding="utf-8")
    script.chmod(0o755)
    (root / "README.txt").write_text(_fill("README.txt", fields), encoding="utf-8")
    write_sha256sums(root)
    progress(Progress("write", 1, 1, "wrote the bundle files"))


def write_sha256sums(root: Path) -> None:
    """``root/SHA256SUMS`` of every file below ``root`` (``sha256sum -c`` reads it)."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        sha = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        lines.append(f"{sha.hexdigest()}  {path.relative_to(root).as_posix()}\n")
    (root / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """The command line: build the bundle, print progress and the figures."""
    parser = argparse.ArgumentParser(prog="python -m installers.offline_bundle",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True,
                        help="folder to write edgeloop-offline-<version>/ into")
    parser.add_argument("--agent-bundle", type=Path, metavar="PATH",
                        help="the agent's PyInstaller bundle (.tar.gz from "
                             "`python -m installers.build agent`) to put in the bundle too")
    parser.add_argument("--lock", type=Path, default=LOCK, help="the pins (default: %(default)s)")
    args = parser.parse_args(argv)

    def show(step: Progress) -> None:
        counted = step.stage == "download" and step.total
        count = f"[{step.done:.0f}/{step.total:.0f}] " if counted else ""
        print(f"offline bundle: {count}{step.message}", flush=True)

    try:
        result = build_offline_bundle(args.out, lock=args.lock, agent_bundle=args.agent_bundle,
                                      progress=show)
    except EdgeLoopError as exc:
        print(f"offline bundle: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("offline bundle: interrupted; nothing was left behind", file=sys.stderr)
        return 130
    print(f"offline bundle: {result.root}\n"
          f"  wheelhouse: {result.wheels} wheels, {result.wheelhouse_bytes / 2**20:.0f} MB "
          f"({result.unpacked_bytes / 2**20:.0f} MB unpacked)\n"
          f"  built in {result.seconds:.0f} s")
    return 0


def _check_agent_bundle(path: Path | None) -> None:
    if path is None:
        return
    if not path.is_file():
        raise OfflineBundleError(f"--agent-bundle {path}: no such file; build it with "
                                 "`.venv/bin/python -m installers.build agent`")
    if not path.name.endswith(".tar.gz"):
        raise OfflineBundleError(f"--agent-bundle {path}: not a .tar.gz (the archive "
                                 "`python -m installers.build agent` writes beside its folder)")


def _fill(template: str, fields: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in fields.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise OfflineBundleError(f"installers/offline/{template}: no value for {left}")
    return text


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


if __name__ == "__main__":
    sys.exit(main())
