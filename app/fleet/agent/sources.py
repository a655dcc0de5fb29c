"""Where frames come from: the factory-scene generator, a folder, a video file, a camera.

A source spec on the command line is ``generator[:SEED]``, ``folder:PATH``, ``video:PATH`` or
``camera:INDEX``. Every source yields ``Frame`` objects; the generator's frames carry their
ground truth, which the simulator writes into the sidecar (the demo's "annotator").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.fleet.agent.errors import ConfigError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class Frame:
    """One image to infer on, with where it came from and (simulated sources) the truth."""

    image: np.ndarray
    source: str
    truth: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def generator_frames(seed: int, schedule_text: str | None, size: int,
                     clock: Callable[[], float] = time.time) -> Iterator[Frame]:
    """Endless frames of the factory scene; the schedule switches drift scenarios over time."""
    from app.core.scene import SceneGenerator, Schedule

    generator = SceneGenerator(seed=seed, size=size)
    schedule = Schedule.parse(schedule_text) if schedule_text else Schedule([(0, "none")])
    started = clock()
    index = 0
    while True:
        scenario = schedule.at(clock() - started)
        sample = generator.sample(index, scenario)
        truth = {"label": sample.label, "scenario": sample.scenario,
                 "boxes": [{"label": b.label, "x": b.x, "y": b.y, "w": b.w, "h": b.h}
                           for b in sample.boxes]}
        yield Frame(sample.image, f"generator:{seed}", truth, {"index": index})
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


def open_source(spec: str, *, schedule: str | None = None, size: int = 128) -> Iterator[Frame]:
    """Frames for a source spec (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind == "generator":
        try:
            seed = int(arg) if arg else 0
        except ValueError:
            raise ConfigError(f"generator seed {arg!r} is not a number") from None
        return generator_frames(seed, schedule, size)
    if kind == "folder":
        return folder_frames(Path(arg))
    if kind == "video":
        return capture_frames(arg, "video", loop=True)
    if kind == "camera":
        return capture_frames(int(arg or 0), "camera", loop=False)
    raise ConfigError(f"unknown source {spec!r}; use generator[:SEED], folder:PATH, video:PATH "
                      "or camera:INDEX")
