"""The layer rules of DESIGN.md hold: checked with import-linter and by importing for real."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is a dev dependency; install the dev extra"
    result = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _modules(package: str) -> list[str]:
    pkg = __import__(package, fromlist=["_"])
    # __main__ modules run a program when imported; they are checked by import-linter alone.
    return [package] + [m.name for m in pkgutil.walk_packages(pkg.__path__, package + ".")
                        if not m.name.endswith(".__main__")]


def _import_all_with_blocked(modules: list[str], blocked: tuple[str, ...]) -> None:
    """In a fresh interpreter, make ``blocked`` unimportable, then import every module."""
    code = (
        "import sys, importlib\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_core_and_fleet_import_with_qt_absent() -> None:
    modules = [m for m in _modules("app.core") + _modules("app.fleet")
               if not m.startswith("app.core.migrations.")]
    _import_all_with_blocked(modules, ("PySide6", "qasync"))


def test_agent_imports_without_torch_sqlalchemy_or_qt() -> None:
    _import_all_with_blocked(_modules("app.fleet.agent"),
                             ("torch", "sqlalchemy", "alembic", "PySide6", "qasync"))


def test_package_version_is_set() -> None:
    assert app.__version__.count(".") == 2
