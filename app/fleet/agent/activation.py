"""Installing, activating and rolling back releases so a device always has a loadable model.

Activation steps, each recoverable::

    1 verify   signature and every sha256 of the uploaded release
    2 stage    copy into releases/.staging-*, verify the copy, rename to releases/<version>
    3 journal  state/activation.json: {candidate, previous}
    4 switch   previous -> old current; current -> candidate (atomic symlink renames)
    5 test     self-test the candidate as the loop will run it
    6 commit   remove the journal (or, on failure, switch back and remove it)

A process killed anywhere leaves either no journal (current untouched or fully activated)
or a journal, which ``recover`` at the next start resolves by switching back to the version
that was running before. All of this holds a file lock, so ``edgeloop-agent ctl`` and the
running agent never activate at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.fleet.agent.errors import NoLoadableModel, ReleaseRejected, SelfTestFailed
from app.fleet.agent.fsutil import fsync_dir, read_json, switch_symlink, write_json_atomic
from app.fleet.agent.home import AgentHome
from app.fleet.agent.manifest import MANIFEST, SIGNATURE, Manifest, verify_release

SelfTest = Callable[[Path, Manifest], object]
JOURNAL = "activation.json"
KEEP_RELEASES = 2


@dataclass(frozen=True)
class ActivationResult:
    """What an install, rollback or recovery did."""

    active: str | None
    previous: str | None
    changed: bool
    message: str


class ReleaseManager:
    """The release folders of one agent home and the moves between them."""

    def __init__(self, home: AgentHome, self_test: SelfTest) -> None:
        self.home = home
        self.self_test = self_test

    # -- reading -------------------------------------------------------------------------
    def _linked(self, link: Path) -> str | None:
        try:
            return Path(os.readlink(link)).name
        except (FileNotFoundError, OSError):
            return None

    def current_version(self) -> str | None:
        return self._linked(self.home.current)

    def previous_version(self) -> str | None:
        return self._linked(self.home.previous)

    def release_dir(self, version: str) -> Path:
        return self.home.releases / version

    def manifest_of(self, version: str) -> Manifest:
        return verify_release(self.release_dir(version), self.home.trusted_keys())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.state.mkdir(parents=True, exist_ok=True)
        with open(self.home.state / "activation.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- install -------------------------------------------------------------------------
    def install(self, source: Path) -> ActivationResult:
        """Verify, stage, switch to and self-test the release in ``source``."""
        with self._locked():
            manifest = verify_release(Path(source), self.home.trusted_keys())
            running = self.current_version()
            if manifest.version == running:
                return ActivationResult(running, self.previous_version(), False,
                                        f"{running} is already active")
            self._stage(Path(source), manifest)
            return self._activate(manifest.version, running)

    def _stage(self, source: Path, manifest: Manifest) -> None:
        final = self.release_dir(manifest.version)
        if final.is_dir():
            try:
                verify_release(final, self.home.trusted_keys())
                return  # the same release was staged before, intact
            except ReleaseRejected:
                shutil.rmtree(final)
        staging = self.home.releases / f".staging-{manifest.version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            for name in [MANIFEST, SIGNATURE, *manifest.files]:
                shutil.copyfile(source / name, staging / name)
                with open(staging / name, "rb") as fh:
                    os.fsync(fh.fileno())
            verify_release(staging, self.home.trusted_keys())  # the copy, not just the source
            fsync_dir(staging)
            os.replace(staging, final)
            fsync_dir(self.home.releases)
        finally:
            if staging.exists():
                shutil.rmtree(staging)

    def _activate(self, candidate: str, running: str | None) -> ActivationResult:
        journal = self.home.state / JOURNAL
        write_json_atomic(journal, {"candidate": candidate, "previous": running})
        if running is not None:
            switch_symlink(self.home.previous, f"releases/{running}")
        switch_symlink(self.home.current, f"releases/{candidate}")
        try:
            self.self_test(self.release_dir(candidate), self.manifest_of(candidate))
        except (SelfTestFailed, ReleaseRejected) as exc:
            self._switch_back(running)
            journal.unlink()
            fsync_dir(self.home.state)
            raise SelfTestFailed(f"{exc}; rolled back to {running or 'no model'}") from exc
        journal.unlink()
        fsync_dir(self.home.state)
        self._prune()
        return ActivationResult(candidate, running, True, f"activated {candidate}")

    def _switch_back(self, version: str | None) -> None:
        if version is None:
            self.home.current.unlink(missing_ok=True)
            return
        switch_symlink(self.home.current, f"releases/{version}")

    # -- rollback and recovery -------------------------------------------------------------
    def rollback(self) -> ActivationResult:
        """Go back to the previous release (when told), if it passes its self-test."""
        with self._locked():
            running, previous = self.current_version(), self.previous_version()
            if previous is None or previous == running:
                raise NoLoadableModel("there is no previous release to roll back to")
            self.self_test(self.release_dir(previous), self.manifest_of(previous))
            switch_symlink(self.home.current, f"releases/{previous}")
            if running is not None:
                switch_symlink(self.home.previous, f"releases/{running}")
            return ActivationResult(previous, running, True, f"rolled back to {previous}")

    def recover(self) -> ActivationResult:
        """At start: finish an interrupted activation by switching back, then make sure the
        current release loads, falling back to the previous one if it does not."""
        with self._locked():
            message = ""
            journal = read_json(self.home.state / JOURNAL)
            if journal is not None:
                back_to = journal.get("previous")
                self._switch_back(back_to)
                (self.home.state / JOURNAL).unlink()
                fsync_dir(self.home.state)
                message = (f"activation of {journal.get('candidate')} was interrupted; "
                           f"back on {back_to or 'no model'}. ")
            for leftover in self.home.releases.glob(".staging-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            running = self.current_version()
            if running is None:
                return ActivationResult(None, None, bool(journal), message + "no release installed")
            try:
                self.self_test(self.release_dir(running), self.manifest_of(running))
                return ActivationResult(running, self.previous_version(), bool(journal),
                                        message + f"{running} loads")
            except (SelfTestFailed, ReleaseRejected) as exc:
                previous = self.previous_version()
                if previous is None or previous == running:
                    raise NoLoadableModel(f"{running} does not load ({exc}) and there is no "
                                          "previous release") from exc
                self.self_test(self.release_dir(previous), self.manifest_of(previous))
                switch_symlink(self.home.current, f"releases/{previous}")
                return ActivationResult(previous, None, True,
                                        message + f"{running} does not load ({exc}); back on {previous}")

    def _prune(self) -> None:
        """Keep the current and previous releases; delete older ones."""
        keep = {self.current_version(), self.previous_version()}
        releases = sorted(
            (p for p in self.home.releases.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for path in releases:
            if path.name not in keep and len(keep) >= KEEP_RELEASES:
                shutil.rmtree(path, ignore_errors=True)
