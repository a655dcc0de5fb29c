"""Where frames come from: the factory-scene generator, a folder, a video file, a camera.

A source spec on the command line is ``generator[:SEED]``, ``folder:PATH``, ``video:PATH`` or
``camera:INDEX``. Every source yields ``Frame`` objects; the generator's frames carry their
ground truth, which the simulator writes into the sidecar (the demo's "annotator").

The generator's drift follows its schedule, unless a *scenario file* is given and exists:
its text (one scenario such as ``lighting`` or ``blur:0.5``) then overrides the schedule
for every following frame, and removing the file hands control back to the schedule. The
file is stat'ed at most every ``SCENARIO_POLL_S`` seconds and re-read only when it changed.
A malformed file keeps the scenario in force; the error is logged as a warning (the
simulator sends the agent's stderr to its ``agent.log``) and put once on the next frame's
``meta["scenario_error"]``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from app.fleet.agent.errors import ConfigError

if TYPE_CHECKING:
    from app.core.scene import Scenario

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
SCENARIO_POLL_S = 0.2  # how often (of the source's clock) the scenario file is stat'ed

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One image to infer on, with where it came from and (simulated sources) the truth."""

    image: np.ndarray
    source: str
    truth: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class ScenarioFile:
    """The scenario a file overrides the schedule with: ``None`` while there is no file.

    ``poll(now)`` stats the file at most every ``interval`` seconds of ``now`` and re-reads
    it only when its inode, mtime_ns or size changed. A file that cannot be read or parsed
    keeps the override in force (or none, if there was none) and sets ``error``, once per
    change of the file, until the caller ``take_error``s it.
    """

    def __init__(self, path: Path, interval: float = SCENARIO_POLL_S) -> None:
        self.path = Path(path)
        self.interval = interval
        self.scenario: Scenario | None = None
        self.error: str | None = None
        self._checked_at: float | None = None
        self._signature: tuple[int, int, int] | None = None
        self._failure: str | None = None  # the last failure reported, not to repeat it

    def poll(self, now: float) -> Scenario | None:
        # (A clock that went back counts as due, so a stepped wall clock cannot stall polling.)
        if self._checked_at is not None and 0 <= now - self._checked_at < self.interval:
            return self.scenario
        self._checked_at = now
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._signature, self.scenario, self._failure = None, None, None  # the schedule
            return None
        except OSError as exc:
            self._fail(f"cannot stat scenario file {self.path}: {exc}")
            return self.scenario
        signature = (st.st_ino, st.st_mtime_ns, st.st_size)
        if signature == self._signature:
            return self.scenario
        self._signature = signature
        self._read()
        return self.scenario

    def _read(self) -> None:
        from app.core.scene import Scenario

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:  # removed between the stat and the read
            self._signature, self.scenario, self._failure = None, None, None
            return
        except (OSError, UnicodeDecodeError) as exc:
            self._fail(f"cannot read scenario file {self.path}: {exc}")
            return
        try:
            self.scenario = Scenario.parse(text.strip())
        except ValueError as exc:
            self._fail(f"bad scenario file {self.path} ({text.strip()[:80]!r}): {exc}")
            return
        self.error = self._failure = None

    def _fail(self, message: str) -> None:
        if message == self._failure:
            return
        self._failure = message
        kept = "the schedule" if self.scenario is None else repr(str(self.scenario))
        self.error = f"{message}; keeping {kept}"
        log.warning("%s", self.error)

    def take_error(self) -> str | None:
        error, self.error = self.error, None
        return error


def generator_frames(seed: int, schedule_text: str | None, size: int,
                     clock: Callable[[], float] = time.time,
                     scenario_file: Path | None = None) -> Iterator[Frame]:
    """Endless frames of the factory scene; the schedule switches drift scenarios over time,
    and ``scenario_file``, while it exists, overrides it (see the module docstring)."""
    from app.core.scene import SceneGenerator, Schedule

    generator = SceneGenerator(seed=seed, size=size)
    schedule = Schedule.parse(schedule_text) if schedule_text else Schedule([(0, "none")])
    override = ScenarioFile(scenario_file) if scenario_file is not None else None
    started = clock()
    index = 0
    while True:
        now = clock()
        meta: dict[str, Any] = {"index": index}
        scenario = override.poll(now) if override is not None else None
        if override is not None and (error := override.take_error()) is not None:
            meta["scenario_error"] = error
        if scenario is None:
            scenario = schedule.at(now - started)
        sample = generator.sample(index, scenario)
        truth = {"label": sample.label, "scenario": sample.scenario,
                 "boxes": [{"label": b.label, "x": b.x, "y": b.y, "w": b.w, "h": b.h}
                           for b in sample.boxes]}
        yield Frame(sample.image, f"generator:{seed}", truth, meta)
        index += 1


def folder_frames(folder: Path, loop: bool = True) -> Iterator[Frame]:
    """Images of a folder in name order (again from the start when ``loop``); bad files skipped."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    while True:
        for path in paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                yield Frame(image, f"folder:{path.name}")
        if not loop:
            return


def capture_frames(target: str | int, label: str, loop: bool) -> Iterator[Frame]:
    """Frames of a video file or camera through OpenCV."""
    capture = cv2.VideoCapture(target)
    if not capture.isOpened():
        raise ConfigError(f"cannot open {label} {target!r}")
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                if loop and isinstance(target, str):
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                return
            yield Frame(image, f"{label}:{target}")
    finally:
        capture.release()


def open_source(spec: str, *, schedule: str | None = None, size: int = 128,
                scenario_file: Path | None = None) -> Iterator[Frame]:
    """Frames for a source spec (see the module docstring); ``scenario_file`` only for the
    generator (ConfigError otherwise)."""
    kind, _, arg = spec.partition(":")
    if kind == "generator":
        try:
            seed = int(arg) if arg else 0
        except ValueError:
            raise ConfigError(f"generator seed {arg!r} is not a number") from None
        return generator_frames(seed, schedule, size,
                                scenario_file=None if scenario_file is None else Path(scenario_file))
    if kind in ("folder", "video", "camera") and scenario_file is not None:
        raise ConfigError(f"a scenario file drives only the generator source, not {spec!r}")
    if kind == "folder":
        return folder_frames(Path(arg))
    if kind == "video":
        return capture_frames(arg, "video", loop=True)
    if kind == "camera":
        return capture_frames(int(arg or 0), "camera", loop=False)
    raise ConfigError(f"unknown source {spec!r}; use generator[:SEED], folder:PATH, video:PATH "
                      "or camera:INDEX")
