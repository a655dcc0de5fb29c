"""The offline bundle (installers/offline_bundle.py): built from this tree through pip's
configured sources, then installed into fresh virtual environments with pip cut off from
every index; a damaged bundle, the wrong Python and a pin that does not exist are refused
with a message that names them.

The slow tests share one bundle built per session (about 700 MB of wheels); the fast ones
make a bundle of EdgeLoop's own wheel alone, enough for everything install.sh checks before
it installs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from installers import offline_bundle
from installers.offline import wheelhouse
from installers.offline.wheelhouse import NotPinned, PinMissing, Wheel

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
VERSION = wheelhouse.project_version(ROOT)
# The interpreter the tests' venv was made from: a real Python 3.11 with venv and ensurepip.
BASE_PYTHON = sys._base_executable
INSTALL_TIMEOUT_S = 1200
# The packages whose versions matter most, as pip names their distributions.
KEY_PACKAGES = ["torch", "pyside6-essentials", "pyside6-addons", "onnxruntime", "openvino",
                "sqlalchemy"]
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy"}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cut_off_env(home: Path) -> dict[str, str]:
    """The environment of a machine whose pip can reach no index: no pip configuration file,
    no PIP_* setting but an index URL on a closed port, no find-links, no proxy, no cache
    (HOME is empty), and no virtualenv of ours on PATH."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PIP_") and key.lower() not in _PROXIES
           and key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PATH="/usr/bin:/bin", PIP_CONFIG_FILE="/dev/null",
               PIP_INDEX_URL=f"http://127.0.0.1:{closed_port()}/simple")
    return env


def run_install(bundle: Path, venv: Path, home: Path, *args: str,
                python: str = BASE_PYTHON) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(bundle / "install.sh"), "--python", python, *args,
                           str(venv)], env=cut_off_env(home), capture_output=True, text=True,
                          timeout=INSTALL_TIMEOUT_S)


def installed_versions(venv: Path, names: list[str]) -> dict[str, str | None]:
    """The versions of ``names`` installed in ``venv`` (None where not installed)."""
    code = ("import json, sys\nfrom importlib import metadata\nout = {}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        out[name] = metadata.version(name)\n"
            "    except metadata.PackageNotFoundError:\n        out[name] = None\n"
            "print(json.dumps(out))")
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code, *names],
                            capture_output=True, text=True, timeout=120, check=True)
    return json.loads(result.stdout)


def public(version: str) -> str:
    return version.split("+", 1)[0]


# ---------------------------------------------------------------- the full bundle (slow)

@pytest.fixture(scope="session")
def full_bundle(
        tmp_path_factory: pytest.TempPathFactory) -> tuple[offline_bundle.BundleResult, list[str]]:
    """The offline bundle of this tree, built once per session, with the progress messages
    the build reported."""
    messages: list[str] = []
    result = offline_bundle.build_offline_bundle(
        tmp_path_factory.mktemp("offline"), progress=lambda step: messages.append(step.message))
    return result, messages


@pytest.mark.slow
def test_bundle_holds_every_wheel_at_the_lock_versions(full_bundle) -> None:
    result, messages = full_bundle
    root = result.root
    assert root.name == f"edgeloop-offline-{VERSION}"
    pins = wheelhouse.read_lock(LOCK)
    constraints = wheelhouse.read_lock(root / "constraints.txt")
    wheels = wheelhouse.wheels_in(root / "wheelhouse")
    assert set(constraints) == set(wheels)
    for name, (version, _) in wheels.items():
        assert constraints[name] == version
        if name == "edgeloop":
            assert version == VERSION
        else:
            assert public(version) == public(pins[name]), name
    # The workstation's and the agent's packages are all there.
    for name in KEY_PACKAGES + ["numpy", "opencv-python-headless", "zeroconf", "cryptography"]:
        assert name in wheels, name
    # Every file is in SHA256SUMS, and sha256sum agrees with it.
    listed = {line.split("  ", 1)[1]
              for line in (root / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.is_file() and p.name != "SHA256SUMS"}
    assert listed == on_disk
    check = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=root,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    # The build said what it was fetching, with the pinned version.
    assert f"fetching torch=={wheels['torch'][0]}" in messages
    assert result.wheels == len(wheels)


@pytest.mark.slow
def test_installs_with_pip_cut_off_from_every_index(full_bundle, tmp_path: Path) -> None:
    root = full_bundle[0].root
    venv = tmp_path / "venv"
    result = run_install(root, venv, tmp_path / "home")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # pip looked at the wheelhouse only.
    assert f"Looking in links: {root / 'wheelhouse'}" in output
    assert "Looking in indexes" not in output
    assert "No broken requirements found." in output

    help_run = subprocess.run([str(venv / "bin" / "edgeloop"), "--help"], capture_output=True,
                              text=True, timeout=120, env=cut_off_env(tmp_path / "home"))
    assert help_run.returncode == 0, help_run.stderr
    assert "devices" in help_run.stdout and "Usage" in help_run.stdout
    # Every part works from the wheels alone: Qt offscreen with the icons (data files of the
    # wheel, outside the app package), the runtimes, the migrations of a new project.
    selfcheck = subprocess.run([str(venv / "bin" / "edgeloop"), "--selfcheck"],
                               capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env=cut_off_env(tmp_path / "home"))
    assert selfcheck.returncode == 0, selfcheck.stdout + selfcheck.stderr
    assert (venv / "share" / "edgeloop" / "resources" / "icons" / "edgeloop.svg").is_file()

    pins = wheelhouse.read_lock(LOCK)
    versions = installed_versions(venv, KEY_PACKAGES + ["edgeloop"])
    assert versions["edgeloop"] == VERSION
    for name in KEY_PACKAGES:
        assert versions[name] is not None, f"{name} was not installed"
        assert public(versions[name]) == public(pins[name]), name


@pytest.mark.slow
def test_agent_install_has_no_torch_or_qt_and_passes_its_selfcheck(full_bundle,
                                                                   tmp_path: Path) -> None:
    root = full_bundle[0].root
    venv = tmp_path / "agent-venv"
    result = run_install(root, venv, tmp_path / "home", "--agent")
    assert result.returncode == 0, result.stdout + result.stderr
    pins = wheelhouse.read_lock(LOCK)
    versions = installed_versions(venv, ["torch", "pyside6-essentials", "sqlalchemy", "typer",
                                         "onnxruntime", "openvino", "edgeloop"])
    assert versions["torch"] is None
    assert versions["pyside6-essentials"] is None
    assert versions["sqlalchemy"] is None
    assert versions["typer"] is None
    assert versions["onnxruntime"] == pins["onnxruntime"]
    assert versions["openvino"] == pins["openvino"]
    assert versions["edgeloop"] == VERSION
    check = subprocess.run([str(venv / "bin" / "edgeloop-agent"), "--selfcheck"],
                           capture_output=True, text=True, timeout=300,
                           env=cut_off_env(tmp_path / "home"))
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_a_pin_that_cannot_be_found_is_named(full_bundle, tmp_path: Path) -> None:
    own = full_bundle[0].root / "wheelhouse" / f"edgeloop-{VERSION}-py3-none-any.whl"
    lock = tmp_path / "lock.txt"
    lines = LOCK.read_text().splitlines()
    lock.write_text("\n".join("ifaddr==0.0.9" if line.startswith("ifaddr==") else line
                              for line in lines) + "\n")
    with pytest.raises(PinMissing) as caught:
        wheelhouse.resolve(own, lock)
    assert str(caught.value).startswith(f"ifaddr==0.0.9 (pinned in {lock})")


# ---------------------------------------------------------- EdgeLoop's wheel alone (fast)

@pytest.fixture(scope="module")
def own_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EdgeLoop's wheel, built from this tree once for the fast tests."""
    return wheelhouse.build_project_wheel(ROOT, tmp_path_factory.mktemp("own-wheel"))


@pytest.fixture
def small_bundle(own_wheel: Path, tmp_path: Path) -> Path:
    """A bundle holding EdgeLoop's wheel alone: complete as far as install.sh's checks go."""
    root = tmp_path / "bundle"
    (root / "wheelhouse").mkdir(parents=True)
    shutil.copy2(own_wheel, root / "wheelhouse" / own_wheel.name)
    offline_bundle.write_bundle_files(root, VERSION, wheelhouse.extra_requirements(own_wheel))
    return root


@pytest.mark.parametrize("damage", ["changed", "missing", "added"])
def test_a_damaged_bundle_stops_before_installing(small_bundle: Path, tmp_path: Path,
                                                  damage: str) -> None:
    own = next((small_bundle / "wheelhouse").glob("edgeloop-*.whl"))
    named = f"wheelhouse/{own.name}"
    if damage == "changed":
        data = bytearray(own.read_bytes())
        data[len(data) // 2] ^= 0xFF
        own.write_bytes(bytes(data))
    elif damage == "missing":
        own.unlink()
    else:
        shutil.copy2(own, small_bundle / "wheelhouse" / "evil-1.0-py3-none-any.whl")
        named = "wheelhouse/evil-1.0-py3-none-any.whl"
    venv = tmp_path / "venv"
    result = run_install(small_bundle, venv, tmp_path / "home")
    assert result.returncode != 0
    assert named in result.stderr
    assert {"changed": "corrupt", "missing": "missing",
            "added": "not part of this bundle"}[damage] in result.stderr
    assert "the bundle is damaged" in result.stderr
    assert not venv.exists(), "install.sh went on after the checksum failed"


def test_the_intact_small_bundle_passes_its_checks(small_bundle: Path, tmp_path: Path) -> None:
    """The control of the test above: the same bundle, undamaged, gets past the checksums and
    the venv; pip then stops because EdgeLoop's dependencies are not in this wheelhouse, and
    the venv install.sh made is removed again."""
    venv = tmp_path / "venv"
    result = run_install(small_bundle, venv, tmp_path / "home")
    assert result.returncode != 0
    assert "creating the virtual environment" in result.stdout
    assert "pip could not install edgeloop" in result.stderr
    assert "removed the unfinished virtual environment" in result.stderr
    assert not venv.exists()


def test_the_wrong_python_is_refused(own_wheel: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A bundle whose wheels would be for Python 3.10, run with this Python 3.11.
    monkeypatch.setattr(wheelhouse, "PYTHON", (3, 10))
    root = tmp_path / "bundle"
    (root / "wheelhouse").mkdir(parents=True)
    shutil.copy2(own_wheel, root / "wheelhouse" / own_wheel.name)
    offline_bundle.write_bundle_files(root, VERSION, wheelhouse.extra_requirements(own_wheel))
    venv = tmp_path / "venv"
    result = run_install(root, venv, tmp_path / "home")
    assert result.returncode != 0
    assert "wheels are for Python 3.10" in result.stderr
    assert "is Python 3.11" in result.stderr and "--python" in result.stderr
    assert not venv.exists()


def test_a_folder_that_is_not_a_venv_is_refused(small_bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "keep.txt").write_text("not a venv")
    result = run_install(small_bundle, target, tmp_path / "home")
    assert result.returncode != 0
    assert f"{target} exists and is not a virtual environment" in result.stderr
    assert (target / "keep.txt").read_text() == "not a venv"


def test_bundle_files_describe_the_wheelhouse(small_bundle: Path, own_wheel: Path) -> None:
    constraints = wheelhouse.read_lock(small_bundle / "constraints.txt")
    assert constraints == {"edgeloop": VERSION}
    agent = (small_bundle / "agent-requirements.txt").read_text().splitlines()
    assert "onnxruntime==" + wheelhouse.read_lock(LOCK)["onnxruntime"] in agent
    assert not any(line.startswith(("torch", "pyside6", "sqlalchemy")) for line in agent)
    script = (small_bundle / "install.sh").read_text()
    assert f'VERSION="{VERSION}"' in script and "@" + "VERSION@" not in script
    readme = (small_bundle / "README.txt").read_text()
    assert f"EdgeLoop {VERSION}" in readme and "wheelhouse/" in readme


def test_a_package_the_lock_does_not_pin_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.13.0\n")
    # A local label on top of the pinned release is the same release (the CPU wheel).
    wheelhouse.check_against_lock([Wheel("torch", "2.13.0+cpu"), Wheel("edgeloop", VERSION)],
                                  lock)
    with pytest.raises(NotPinned, match=r"torch==2\.12\.0.*pins torch==2\.13\.0"):
        wheelhouse.check_against_lock([Wheel("torch", "2.12.0")], lock)
    with pytest.raises(NotPinned, match=r"setuptools==84\.2\.1 .* does not pin setuptools"):
        wheelhouse.check_against_lock([Wheel("setuptools", "84.2.1")], lock)


def test_a_version_pip_cannot_fetch_is_named(tmp_path: Path) -> None:
    with pytest.raises(PinMissing) as caught:
        wheelhouse.download([Wheel("defusedxml", "0.0.999")], tmp_path / "wheels")
    assert str(caught.value).startswith("defusedxml==0.0.999 (as resolved): no such wheel")


def test_the_agent_bundle_travels_in_the_offline_bundle(own_wheel: Path, tmp_path: Path) -> None:
    # An archive of the shape `installers.build agent` writes (a one-folder bundle, tarred).
    folder = tmp_path / "edgeloop-agent"
    folder.mkdir()
    (folder / "edgeloop-agent").write_text("#!/bin/sh\n")
    archive = Path(shutil.make_archive(str(tmp_path / "edgeloop-agent"), "gztar", tmp_path,
                                       "edgeloop-agent"))
    root = tmp_path / "bundle"
    (root / "wheelhouse").mkdir(parents=True)
    shutil.copy2(own_wheel, root / "wheelhouse" / own_wheel.name)
    offline_bundle.write_bundle_files(root, VERSION, wheelhouse.extra_requirements(own_wheel),
                                      agent_bundle=archive)
    copied = root / "agent" / archive.name
    assert copied.read_bytes() == archive.read_bytes()
    assert f"  agent/{archive.name}" in (root / "SHA256SUMS").read_text()
    assert f"agent/{archive.name}" in (root / "README.txt").read_text()


def test_command_line_names_a_missing_agent_bundle(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "installers.offline_bundle", "--out", str(tmp_path / "out"),
         "--agent-bundle", str(tmp_path / "nope.tar.gz")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"--agent-bundle {tmp_path / 'nope.tar.gz'}: no such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
