"""The offline bundle's wheelhouse: every wheel EdgeLoop's install needs, at the versions of
requirements/lock.txt, fetched through the pip sources this machine is configured with.

Three pip commands, run with this interpreter (the bundle is for its Python and platform):

1. :func:`build_project_wheel`: EdgeLoop's own wheel, ``pip wheel --no-deps`` on a copy of
   the source tree (setuptools reuses build/lib, so a module deleted since an earlier build
   would otherwise ride along);
2. :func:`resolve`: ``pip install --dry-run --report`` of that wheel with the ``agent`` extra
   and the lock as constraints: the exact set of wheels an install takes, which
   :func:`check_against_lock` holds against the lock before anything large is fetched;
3. :func:`download`: ``pip download --no-deps --require-hashes`` of exactly that set.
"""

from __future__ import annotations

import email.parser
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from app.core.errors import EdgeLoopError
from app.core.progress import Cancelled, CancelToken, Progress, ProgressFn, no_progress

PROJECT = "edgeloop"
PYTHON = (3, 11)
AGENT_EXTRA = "agent"
# pip draws its own progress bars on a terminal; piped into us they are noise.
_QUIET_BARS = ("--progress-bar", "off")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_MISSING = (re.compile(rf"No matching distribution found for ({_NAME})"),
            re.compile(rf"satisfies the requirement ({_NAME})"))
_FETCHING = (re.compile(rf"^Collecting ({_NAME})"), re.compile(r"^Processing (\S+\.whl)"))
# Legacy manylinux tags and the glibc each stands for (PEP 600).
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class OfflineBundleError(EdgeLoopError):
    """The offline bundle cannot be built; the message names the package or file at fault
    and what to do."""


class PinMissing(OfflineBundleError):
    """A version pinned in requirements/lock.txt cannot be found in pip's sources."""


class NotPinned(OfflineBundleError):
    """The install needs a package that requirements/lock.txt does not pin (or pins at
    another version)."""


@dataclass(frozen=True)
class Wheel:
    """One wheel of the install: its canonical project name, exact version (a local label
    such as ``+cpu`` included) and, when pip's source published it, its sha256."""

    name: str
    version: str
    sha256: str = ""

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def check_python() -> None:
    """Refuse to build with another Python than the bundle's: pip picks wheels for the
    interpreter it runs in."""
    if sys.version_info[:2] != PYTHON:
        wanted = ".".join(map(str, PYTHON))
        raise OfflineBundleError(
            f"the offline bundle is built for Python {wanted}, and this is Python "
            f"{platform.python_version()}: run it with .venv/bin/python")


def read_lock(path: Path) -> dict[str, str]:
    """The pins of a lock file (``name==version`` lines), by canonical project name."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise OfflineBundleError(f"cannot read the lock file {path}: {exc.strerror}") from exc
    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise OfflineBundleError(
                f"{path}, line {number}: {raw.strip()!r} is not an exact pin (name==version)")
        pins[canonicalize_name(name.strip())] = version.strip()
    return pins


def project_version(project: Path) -> str:
    """The version in ``project``'s pyproject.toml."""
    return str(_pyproject(project)["project"]["version"])


def build_project_wheel(project: Path, dest: Path, progress: ProgressFn = no_progress,
                        cancel: CancelToken | None = None) -> Path:
    """EdgeLoop's wheel, built from a clean copy of ``project``'s sources into ``dest``."""
    meta = _pyproject(project)
    version = str(meta["project"]["version"])
    dest.mkdir(parents=True, exist_ok=True)
    progress(Progress("wheel", 0, 1, f"building the {PROJECT} {version} wheel"))
    with tempfile.TemporaryDirectory(prefix="edgeloop-src-") as scratch:
        source = Path(scratch) / PROJECT
        _copy_sources(project, meta, source)
        code, lines = run_pip(["wheel", "--no-deps", *_QUIET_BARS, "--wheel-dir", str(dest),
                               str(source)], cancel=cancel)
    if code != 0:
        raise OfflineBundleError(f"pip could not build the {PROJECT} wheel from {project}:\n"
                                 + _pip_errors(lines))
    built = [p for p in dest.glob("*.whl") if _wheel_id(p)[0] == PROJECT]
    if len(built) != 1 or _wheel_id(built[0])[1] != version:
        raise OfflineBundleError(f"pip wheel left {[p.name for p in built]} in {dest}, "
                                 f"not one {PROJECT} {version} wheel")
    progress(Progress("wheel", 1, 1, f"built {built[0].name}"))
    return built[0]


def resolve(project_wheel: Path, lock: Path, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None) -> list[Wheel]:
    """Every wheel an install of ``project_wheel`` with its agent extra takes, under the
    lock's pins (pip's own resolver, nothing installed)."""
    pins = read_lock(lock)
    seen: list[str] = []

    def on_line(line: str) -> None:
        name = _fetched_name(line)
        if name:
            seen.append(name)
            progress(Progress("resolve", len(seen), 0, f"resolving {name}"))

    with tempfile.TemporaryDirectory(prefix="edgeloop-resolve-") as scratch:
        report = Path(scratch) / "report.json"
        code, lines = run_pip(
            ["install", "--dry-run", "--ignore-installed", "--only-binary=:all:", *_QUIET_BARS,
             "--report", str(report), "--constraint", str(lock),
             f"{project_wheel}[{AGENT_EXTRA}]"], on_line=on_line, cancel=cancel)
        if code != 0:
            raise _resolution_error(lines, pins, f"pinned in {lock}")
        data = json.loads(report.read_text(encoding="utf-8"))
    wheels = []
    for item in data["install"]:
        hashes = (item.get("download_info", {}).get("archive_info", {}).get("hashes", {}))
        wheels.append(Wheel(canonicalize_name(item["metadata"]["name"]),
                            item["metadata"]["version"], hashes.get("sha256", "")))
    return sorted(wheels, key=lambda w: w.name)


def check_against_lock(wheels: Iterable[Wheel], lock: Path) -> None:
    """Every wheel but EdgeLoop's own must be pinned in the lock, at its version (a local
    label like ``+cpu`` may come on top of a pin that has none)."""
    pins = read_lock(lock)
    for wheel in wheels:
        if wheel.name == PROJECT:
            continue
        pinned = pins.get(wheel.name)
        if pinned is None:
            raise NotPinned(
                f"{wheel.pin} is part of EdgeLoop's install, but {lock} does not pin "
                f"{wheel.name}: add '{wheel.name}=={wheel.version}' to it so every bundle "
                "gets the same version")
        if not _same_release(wheel.version, pinned):
            raise NotPinned(f"pip chose {wheel.pin}, but {lock} pins {wheel.name}=={pinned}: "
                            "make pyproject.toml and the lock agree")


def download(wheels: Sequence[Wheel], dest: Path,
             progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> list[Path]:
    """Fetch exactly ``wheels`` (EdgeLoop's own excepted: it is built, not fetched) into
    ``dest``, checked against the hashes the resolution saw; returns the wheel files."""
    wanted = [w for w in wheels if w.name != PROJECT]
    dest.mkdir(parents=True, exist_ok=True)
    hashed = all(w.sha256 for w in wanted)
    count = 0

    def on_line(line: str) -> None:
        nonlocal count
        name = _fetched_name(line)
        if name:
            count += 1
            version = next((w.version for w in wanted if w.name == name), "")
            progress(Progress("download", count, len(wanted),
                              f"fetching {name}=={version}" if version else f"fetching {name}"))

    with tempfile.TemporaryDirectory(prefix="edgeloop-pins-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text("".join(
            f"{w.pin} --hash=sha256:{w.sha256}\n" if hashed else f"{w.pin}\n" for w in wanted))
        args = ["download", "--no-deps", "--only-binary=:all:", *_QUIET_BARS, "--dest", str(dest),
                "--requirement", str(requirements)]
        code, lines = run_pip(args + (["--require-hashes"] if hashed else []),
                              on_line=on_line, cancel=cancel)
    if code != 0:
        raise _resolution_error(lines, {w.name: w.version for w in wanted}, "as resolved")
    found = wheels_in(dest)
    for wheel in wanted:
        got = found.get(wheel.name)
        if got is None or got[0] != wheel.version:
            raise OfflineBundleError(f"pip download did not leave {wheel.pin} in {dest}")
    return [found[w.name][1] for w in wanted]


def wheels_in(folder: Path) -> dict[str, tuple[str, Path]]:
    """The wheels in ``folder``: canonical name -> (version, path); anything else there is
    an error (an sdist would need a compiler on the offline machine)."""
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(".whl"):
            raise OfflineBundleError(f"{path} is not a wheel: the wheelhouse holds wheels only")
        name, version = _wheel_id(path)
        if name in found:
            raise OfflineBundleError(f"{folder} holds two wheels of {name}: "
                                     f"{found[name][1].name} and {path.name}")
        found[name] = (version, path)
    return found


def extra_requirements(project_wheel: Path, extra: str = AGENT_EXTRA) -> list[str]:
    """The requirements ``project_wheel`` adds for ``extra`` (its METADATA), without markers."""
    with zipfile.ZipFile(project_wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    wanted = []
    for line in metadata.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or not req.marker.evaluate({"extra": extra}):
            continue
        if req.marker.evaluate({"extra": ""}):
            continue  # a base requirement with an environment marker, not the extra's own
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        wanted.append(f"{req.name}{extras}{req.specifier}")
    if not wanted:
        raise OfflineBundleError(f"{project_wheel.name} declares no '{extra}' extra")
    return wanted


def unpacked_bytes(paths: Iterable[Path]) -> int:
    """What the wheels take once unpacked (their files' sizes, before byte-compiling)."""
    total = 0
    for path in paths:
        with zipfile.ZipFile(path) as archive:
            total += sum(info.file_size for info in archive.infolist())
    return total


def glibc_needed(paths: Iterable[Path]) -> tuple[int, int] | None:
    """The oldest glibc on which every manylinux wheel of ``paths`` installs (None when none
    is a manylinux wheel). A wheel with several tags needs the least of them."""
    needed: tuple[int, int] | None = None
    for path in paths:
        versions = [v for tag in parse_wheel_filename(path.name)[3]
                    if (v := _manylinux_glibc(tag)) is not None]
        if versions:
            least = min(versions)
            needed = least if needed is None else max(needed, least)
    return needed


def run_pip(args: Sequence[str], on_line: Callable[[str], None] | None = None,
            cancel: CancelToken | None = None) -> tuple[int, list[str]]:
    """``python -m pip ARGS`` with this interpreter; each output line goes to ``on_line``
    as it comes. Returns the exit status and every line."""
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    lines: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "pip", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if on_line is not None:
                on_line(line)
            if cancel is not None and cancel.cancelled:
                proc.terminate()
                proc.wait()
                raise Cancelled("building the offline bundle was cancelled")
        code = proc.wait()
    return code, lines


def _pyproject(project: Path) -> dict:
    path = project / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise OfflineBundleError(f"cannot read {path}: {exc}") from exc


def _copy_sources(project: Path, meta: dict, dest: Path) -> None:
    """What setuptools needs to build the wheel: pyproject.toml, the readme, the top-level
    packages matched by [tool.setuptools.packages.find] include, and the files
    [tool.setuptools.data-files] names (the icons in resources/)."""
    dest.mkdir()
    readme = meta["project"].get("readme")
    readme_file = readme.get("file") if isinstance(readme, dict) else readme
    for name in ["pyproject.toml", *([readme_file] if readme_file else [])]:
        shutil.copy2(project / name, dest / name)
    patterns = meta.get("tool", {}).get("setuptools", {}).get("packages", {}) \
        .get("find", {}).get("include", ["*"])
    packages = [p for p in sorted(project.iterdir())
                if (p / "__init__.py").is_file() and any(fnmatch(p.name, pat) for pat in patterns)]
    if not packages:
        raise OfflineBundleError(f"no package of {project} matches {patterns}")
    for package in packages:
        shutil.copytree(package, dest / package.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    data_files = meta.get("tool", {}).get("setuptools", {}).get("data-files", {})
    for pattern in (pattern for patterns in data_files.values() for pattern in patterns):
        for found in sorted(project.glob(pattern)):
            target = dest / found.relative_to(project)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, target)


def _wheel_id(path: Path) -> tuple[str, str]:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except ValueError as exc:
        raise OfflineBundleError(f"{path.name} is not a valid wheel file name: {exc}") from exc
    return str(name), str(version)


def _fetched_name(line: str) -> str:
    """The project pip is fetching on this output line, or ''."""
    collecting, processing = _FETCHING
    if match := collecting.match(line):
        return str(canonicalize_name(match.group(1)))
    if match := processing.match(line):
        try:
            return str(parse_wheel_filename(Path(match.group(1)).name)[0])
        except ValueError:
            return ""
    return ""


def _same_release(version: str, pinned: str) -> bool:
    try:
        got, want = Version(version), Version(pinned)
    except InvalidVersion:
        return version == pinned
    return got == want or (want.local is None and Version(got.public) == want)


def _missing_names(lines: Sequence[str]) -> list[str]:
    """Projects pip says it found no (matching) distribution of."""
    names: list[str] = []
    in_list = False
    for line in lines:
        if "no matching distributions available for your environment" in line:
            in_list = True
            continue
        if in_list and line.startswith((" ", "\t")) and line.strip():
            names.append(line.strip())
            continue
        in_list = False
        for pattern in _MISSING:
            if match := pattern.search(line):
                names.append(match.group(1))
    unique: list[str] = []
    for name in map(canonicalize_name, names):
        if name not in unique:
            unique.append(str(name))
    return unique


def _pip_errors(lines: Sequence[str]) -> str:
    errors = [line for line in lines if line.startswith("ERROR")]
    shown = errors or [line for line in lines if not line.startswith("WARNING")][-15:]
    return "\n".join("  " + line for line in shown)


def _resolution_error(lines: Sequence[str], versions: dict[str, str],
                      why: str) -> OfflineBundleError:
    where = f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"
    names = _missing_names(lines)
    if not names:
        return OfflineBundleError(f"pip could not resolve EdgeLoop's wheels for {where}:\n"
                                  + _pip_errors(lines))
    described = [f"{n}=={versions[n]} ({why})" if n in versions else n for n in names]
    return PinMissing(
        f"{', '.join(described)}: no such wheel in pip's sources for {where}. Check the pin, "
        "and that pip's index or find-links (`pip config list`) hold that version as a wheel "
        "for this platform. pip said:\n" + _pip_errors(lines))


def _manylinux_glibc(tag: Tag) -> tuple[int, int] | None:
    plat = tag.platform
    for legacy, version in _LEGACY_MANYLINUX.items():
        if plat.startswith(legacy + "_"):
            return version
    match = re.match(r"manylinux_(\d+)_(\d+)_", plat)
    return (int(match.group(1)), int(match.group(2))) if match else None
