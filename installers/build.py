"""Builds EdgeLoop's one-folder PyInstaller bundles and checks that each one really runs.

    .venv/bin/python -m installers.build agent|app|all [--dist DIR] [--work DIR]

For each bundle: PyInstaller runs on its spec (installers/edgeloop-agent.spec,
installers/edgeloop.spec) into ``DIST/<name>/``; the bundled program's ``--selfcheck`` runs
with a clean environment (no virtualenv on PATH or PYTHONPATH), so a module or data file the
bundle lacks fails the build instead of a user's install; then ``DIST/<name>.tar.gz`` is
written beside the folder. The figures (size on disk, archive size, build time) are printed
and written to ``DIST/<name>.build.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import machine  # the machine line every figure in docs/ carries

ROOT = Path(__file__).resolve().parents[1]
INSTALLERS = ROOT / "installers"
DEFAULT_DIST = ROOT / "build" / "installers" / "dist"
DEFAULT_WORK = ROOT / "build" / "installers" / "work"
# A PyInstaller build of the workstation app takes minutes on two cores; the limit only
# keeps a wedged build from hanging CI forever.
BUILD_TIMEOUT_S = 3600
SELFCHECK_TIMEOUT_S = 600

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BundleSpec:
    """One bundle: its key on the command line, its spec file and its program's name."""

    key: str
    name: str
    spec: Path

    @property
    def program(self) -> str:
        return self.name


BUNDLES = {
    "agent": BundleSpec("agent", "edgeloop-agent", INSTALLERS / "edgeloop-agent.spec"),
    "app": BundleSpec("app", "edgeloop", INSTALLERS / "edgeloop.spec"),
}


class BuildFailed(RuntimeError):
    """PyInstaller failed, or the bundle it made does not pass its own self-check."""


@dataclass(frozen=True)
class BuildResult:
    """What one build made and what it measured."""

    bundle: str
    folder: str
    executable: str
    archive: str
    files: int
    size_on_disk_bytes: int
    archive_bytes: int
    build_s: float
    selfcheck_s: float
    archive_s: float
    selfcheck_output: str
    pyinstaller: str
    machine: str

    def summary(self) -> str:
        return (f"{self.bundle}: {self.folder}\n"
                f"  size on disk  {_mib(self.size_on_disk_bytes)} ({self.files} files)\n"
                f"  archive       {_mib(self.archive_bytes)} ({self.archive})\n"
                f"  build time    {self.build_s:.0f} s (PyInstaller), self-check "
                f"{self.selfcheck_s:.1f} s, archive {self.archive_s:.0f} s")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def disk_usage(folder: Path) -> tuple[int, int]:
    """(bytes the folder takes on disk, as ``du`` counts them; number of files)."""
    seen: set[tuple[int, int]] = set()
    total = files = 0
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_blocks * 512
        files += path.is_file() and not path.is_symlink()
    return total, files


def clean_env() -> dict[str, str]:
    """The environment a bundle runs in on a user's machine: no virtualenv, no PYTHONPATH."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "TERM")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def run_selfcheck(executable: Path) -> tuple[int, str]:
    """Run ``executable --selfcheck`` in a clean environment; (exit status, its output)."""
    result = subprocess.run([str(executable), "--selfcheck"], env=clean_env(), cwd="/",
                            capture_output=True, text=True, timeout=SELFCHECK_TIMEOUT_S)
    return result.returncode, (result.stdout + result.stderr).strip()


def _pyinstaller_version() -> str:
    from PyInstaller import __version__

    return __version__


def _run_pyinstaller(spec: BundleSpec, dist: Path, work: Path, progress: Progress) -> None:
    # A fresh work folder: a stale analysis from an older tree must not leak into the bundle.
    # (Not --clean: that also empties PyInstaller's shared cache under ~/.cache, which a
    # concurrent build may be reading.)
    shutil.rmtree(work / spec.name, ignore_errors=True)
    shutil.rmtree(dist / spec.name, ignore_errors=True)
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(spec.spec)]
    progress(f"{spec.name}: running PyInstaller on {spec.spec.relative_to(ROOT)}")
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                            timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        raise BuildFailed(f"PyInstaller failed on {spec.spec.name} (exit {result.returncode}):"
                          f"\n{tail}")


def write_archive(folder: Path) -> Path:
    """``<folder>.tar.gz`` beside the folder, holding it under its own name."""
    archive = folder.with_name(folder.name + ".tar.gz")
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
        tar.add(folder, arcname=folder.name)
    os.replace(partial, archive)
    return archive


def build_bundle(key: str, dist: Path = DEFAULT_DIST, work: Path = DEFAULT_WORK,
                 progress: Progress = print) -> BuildResult:
    """Build, self-check and archive one bundle; raise :class:`BuildFailed` if any step fails."""
    spec = BUNDLES[key]
    dist, work = Path(dist).resolve(), Path(work).resolve()
    dist.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _run_pyinstaller(spec, dist, work, progress)
    build_s = time.perf_counter() - start
    folder = dist / spec.name
    executable = folder / spec.program
    if not executable.is_file():
        raise BuildFailed(f"PyInstaller finished but {executable} is missing")

    progress(f"{spec.name}: built in {build_s:.0f} s; running {spec.program} --selfcheck")
    start = time.perf_counter()
    code, output = run_selfcheck(executable)
    selfcheck_s = time.perf_counter() - start
    progress(output)
    if code != 0:
        raise BuildFailed(f"the bundle {folder} fails its self-check (exit {code}); see the "
                          "FAILED lines above: usually a module or data file the spec must add")

    progress(f"{spec.name}: writing the archive")
    start = time.perf_counter()
    archive = write_archive(folder)
    archive_s = time.perf_counter() - start
    size, files = disk_usage(folder)
    result = BuildResult(
        bundle=spec.name, folder=str(folder), executable=str(executable), archive=str(archive),
        files=files, size_on_disk_bytes=size, archive_bytes=archive.stat().st_size,
        build_s=round(build_s, 1), selfcheck_s=round(selfcheck_s, 2),
        archive_s=round(archive_s, 1), selfcheck_output=output,
        pyinstaller=_pyinstaller_version(), machine=machine(),
    )
    report = dist / f"{spec.name}.build.json"
    report.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m installers.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=[*BUNDLES, "all"], help="the bundle to build")
    parser.add_argument("--dist", type=Path, default=DEFAULT_DIST,
                        help="where the bundles go (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK,
                        help="PyInstaller's work folder (default: %(default)s)")
    args = parser.parse_args(argv)
    keys = list(BUNDLES) if args.which == "all" else [args.which]
    for key in keys:
        try:
            result = build_bundle(key, args.dist, args.work)
        except (BuildFailed, subprocess.TimeoutExpired) as exc:
            print(f"build: {exc}", file=sys.stderr)
            return 1
        print(result.summary(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
