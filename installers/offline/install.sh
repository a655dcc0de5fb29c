#!/usr/bin/env bash
# Installs EdgeLoop @VERSION@ from this offline bundle into a Python virtual environment.
# Nothing is downloaded: pip is cut off from every index and from pip's configuration
# files, and installs only the wheels of wheelhouse/, after checking them against SHA256SUMS.
#
#   ./install.sh [--python PYTHON] [--agent] [VENV_DIR]
#
# VENV_DIR defaults to ./edgeloop-venv; an existing virtual environment there is reused.
# --agent installs only what the device agent (edgeloop-agent) needs: no torch, no Qt.
set -euo pipefail

VERSION="@VERSION@"
PYTHON_WANTED="@PYTHON@"
MACHINE="@MACHINE@"
GLIBC_MIN="@GLIBC@"
NEEDED_MB=@NEEDED_MB@

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WHEELHOUSE="$BUNDLE/wheelhouse"
PYTHON=""
AGENT=""
TARGET=""
CREATED=""

say() { echo "install.sh: $*"; }
fail() { echo "install.sh: error: $*" >&2; exit 1; }

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

cleanup() {
    local code=$?
    # Only a venv this run created is removed, so a rerun starts clean.
    if [ "$code" -ne 0 ] && [ -n "$CREATED" ] && [ -d "$CREATED" ]; then
        rm -rf -- "$CREATED"
        echo "install.sh: removed the unfinished virtual environment $CREATED" >&2
    fi
}
trap cleanup EXIT

while [ $# -gt 0 ]; do
    case "$1" in
        --python) [ $# -ge 2 ] || fail "--python needs a path (e.g. --python /usr/bin/python3.11)"
                  PYTHON="$2"; shift 2 ;;
        --python=*) PYTHON="${1#--python=}"; shift ;;
        --agent) AGENT=1; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) fail "unknown option $1 (./install.sh --help lists the options)" ;;
        *) [ -z "$TARGET" ] || fail "one VENV_DIR only (got $TARGET and $1)"
           TARGET="$1"; shift ;;
    esac
done
TARGET="${TARGET:-./edgeloop-venv}"

# Cut pip off: no PIP_* variable of this shell (index URLs, find-links, constraints,
# proxies), no pip.conf of this machine or user, no index at all.
for name in $(compgen -e); do
    case "$name" in PIP_*) unset "$name" ;; esac
done
unset PYTHONPATH PYTHONHOME
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# The Python the wheels were built for.
if [ -z "$PYTHON" ]; then
    if command -v "python$PYTHON_WANTED" >/dev/null 2>&1; then
        PYTHON="python$PYTHON_WANTED"
    elif command -v python3 >/dev/null 2>&1; then
        PYTHON=python3
    else
        fail "no Python found: install Python $PYTHON_WANTED (Debian/Ubuntu: apt-get install python$PYTHON_WANTED python$PYTHON_WANTED-venv) or pass --python PATH"
    fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || fail "$PYTHON not found: pass --python with the path of a Python $PYTHON_WANTED"
found="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || fail "$PYTHON does not run"
[ "$found" = "$PYTHON_WANTED" ] \
    || fail "this bundle's wheels are for Python $PYTHON_WANTED, and $PYTHON is Python $found: install Python $PYTHON_WANTED (Debian/Ubuntu: apt-get install python$PYTHON_WANTED python$PYTHON_WANTED-venv) and pass --python /usr/bin/python$PYTHON_WANTED"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || fail "$PYTHON cannot make virtual environments (no venv/ensurepip module): install it (Debian/Ubuntu: apt-get install python$PYTHON_WANTED-venv) and run install.sh again"

# The machine the wheels were built for.
machine="$(uname -m)"
[ "$machine" = "$MACHINE" ] \
    || fail "this bundle's wheels are for $MACHINE machines, and this one is $machine: build a bundle on a $machine machine"
if [ -n "$GLIBC_MIN" ]; then
    "$PYTHON" - "$GLIBC_MIN" <<'PYEOF' || fail "this bundle's wheels need glibc $GLIBC_MIN or newer (e.g. Debian 12, Ubuntu 22.04, RHEL 10): upgrade the operating system or install the PyInstaller bundles instead"
import os, sys
try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
except (AttributeError, ValueError, OSError):
    sys.exit("install.sh: this machine's C library is not glibc")
have = tuple(int(p) for p in version.split(".")[:2])
need = tuple(int(p) for p in sys.argv[1].split("."))
if have < need:
    sys.exit(f"install.sh: this machine has glibc {version}")
PYEOF
fi

# Every file of the bundle, as it was built: a wheel cut short by a copy, or changed on the
# way, stops the install here, before anything is installed.
say "checking the bundle against SHA256SUMS"
"$PYTHON" - "$BUNDLE" <<'PYEOF' || fail "the bundle is damaged (files above): copy it again from the original and check it with: sha256sum -c SHA256SUMS"
import hashlib, pathlib, sys
root = pathlib.Path(sys.argv[1])
sums = root / "SHA256SUMS"
if not sums.is_file():
    sys.exit("  SHA256SUMS: missing")
listed = {}
for number, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
    digest, sep, name = line.partition("  ")
    if not sep or len(digest) != 64:
        sys.exit(f"  SHA256SUMS, line {number}: not '<sha256>  <file>'")
    listed[name] = digest
bad = []
for name, digest in sorted(listed.items()):
    path = root / name
    if not path.is_file():
        bad.append(f"{name}: missing")
        continue
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    if sha.hexdigest() != digest:
        bad.append(f"{name}: corrupt (its sha256 is not the one in SHA256SUMS)")
wheelhouse = root / "wheelhouse"
for path in sorted(wheelhouse.iterdir()) if wheelhouse.is_dir() else []:
    if f"wheelhouse/{path.name}" not in listed:
        bad.append(f"wheelhouse/{path.name}: not part of this bundle (not in SHA256SUMS)")
for line in bad:
    print(f"  {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

# Where it goes.
if [ -e "$TARGET" ] && [ ! -f "$TARGET/pyvenv.cfg" ]; then
    if [ ! -d "$TARGET" ] || [ -n "$(ls -A "$TARGET")" ]; then
        fail "$TARGET exists and is not a virtual environment: give another VENV_DIR, or empty it"
    fi
fi
parent="$TARGET"
[ -e "$parent" ] || parent="$(dirname "$TARGET")"
[ -d "$parent" ] || fail "$(dirname "$TARGET") does not exist: create it first"
free_kb="$(df -Pk "$parent" 2>/dev/null | awk 'NR == 2 { print $4 }')"
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((NEEDED_MB * 1024)) ]; then
    fail "EdgeLoop needs about $NEEDED_MB MB at $TARGET, and $parent has $((free_kb / 1024)) MB free: free some space or give another VENV_DIR"
fi

if [ -f "$TARGET/pyvenv.cfg" ]; then
    have="$("$TARGET/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
        || fail "$TARGET is a broken virtual environment: remove it, or give another VENV_DIR"
    [ "$have" = "$PYTHON_WANTED" ] \
        || fail "$TARGET is a Python $have virtual environment; this bundle needs Python $PYTHON_WANTED: give another VENV_DIR"
    say "installing into the existing virtual environment $TARGET"
else
    say "creating the virtual environment $TARGET"
    existed="$([ -d "$TARGET" ] && echo 1 || true)"
    "$PYTHON" -m venv "$TARGET" || fail "$PYTHON -m venv $TARGET failed (message above)"
    [ -n "$existed" ] || CREATED="$(cd "$TARGET" && pwd)"
fi
TARGET="$(cd "$TARGET" && pwd)"
VPY="$TARGET/bin/python"

pip_install() {
    "$VPY" -m pip install --no-index --find-links "$WHEELHOUSE" --only-binary=:all: \
        --constraint "$BUNDLE/constraints.txt" "$@"
}

if [ -n "$AGENT" ]; then
    say "installing the EdgeLoop $VERSION device agent and its dependencies (no torch, no Qt)"
    pip_install --requirement "$BUNDLE/agent-requirements.txt" \
        || fail "pip could not install the agent's dependencies from $WHEELHOUSE (pip's message above)"
    # The agent's dependencies only: EdgeLoop's own (torch, Qt, ...) stay out.
    pip_install --no-deps "edgeloop==$VERSION" \
        || fail "pip could not install edgeloop $VERSION from $WHEELHOUSE (pip's message above)"
    "$TARGET/bin/edgeloop-agent" --help >/dev/null \
        || fail "edgeloop-agent was installed but does not start (message above)"
    say "done: $TARGET/bin/edgeloop-agent --help"
else
    say "installing EdgeLoop $VERSION and its dependencies"
    pip_install "edgeloop==$VERSION" \
        || fail "pip could not install edgeloop $VERSION from $WHEELHOUSE (pip's message above)"
    "$VPY" -m pip check || fail "the installed packages do not fit together (pip check above)"
    "$TARGET/bin/edgeloop" --help >/dev/null \
        || fail "edgeloop was installed but does not start (message above)"
    say "done: $TARGET/bin/edgeloop --help"
fi
