"""Frame sources and the mDNS record's update when the model changes."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from zeroconf import ServiceStateChange

from app.fleet.agent.advertise import SERVICE_TYPE, Advertised, Advertiser
from app.fleet.agent.errors import ConfigError
from app.fleet.agent.sources import SCENARIO_POLL_S, generator_frames, open_source
from tests.fleet.test_agent_process import Watcher


def test_video_source_reads_and_loops(tmp_path: Path) -> None:
    path = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, dtype=np.uint8))
    writer.release()
    frames = list(itertools.islice(open_source(f"video:{path}"), 12))
    assert len(frames) == 12 and frames[0].image.shape == (48, 64, 3)
    assert abs(int(frames[5].image.mean()) - int(frames[0].image.mean())) <= 3  # looped


def test_generator_source_carries_truth_and_follows_the_schedule() -> None:
    frames = open_source("generator:3", schedule="blur@0", size=96)
    frame = next(frames)
    assert frame.image.shape == (96, 96, 3)
    assert frame.truth["scenario"].startswith("blur") and frame.truth["label"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_scenario_file_overrides_the_schedule_while_it_exists(tmp_path: Path) -> None:
    clock, path = FakeClock(), tmp_path / "scenario"
    frames = generator_frames(3, "none@0,blur@10", 64, clock=clock, scenario_file=path)

    def scenario() -> str:
        return next(frames).truth["scenario"]

    assert scenario() == "none"  # no file: the schedule
    path.write_text("lighting\n")
    assert scenario() == "none"  # not stat'ed again before the interval has passed
    clock.now += SCENARIO_POLL_S
    assert scenario() == "lighting"
    clock.now += 20  # the schedule has moved on to blur, the file still wins
    assert scenario() == "lighting"

    path.write_text("  colour_cast:0.5  ")
    clock.now += SCENARIO_POLL_S
    assert scenario() == "colour_cast"

    path.unlink()
    clock.now += SCENARIO_POLL_S
    assert scenario() == "blur"  # back to the schedule


def test_a_malformed_scenario_file_keeps_the_scenario_and_says_why(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, path = FakeClock(), tmp_path / "scenario"
    path.write_text("noise")
    frames = generator_frames(3, None, 64, clock=clock, scenario_file=path)
    assert next(frames).truth["scenario"] == "noise"

    path.write_text("fog:2.0")  # a size unlike the last: the mtime may not have ticked
    clock.now += SCENARIO_POLL_S
    with caplog.at_level("WARNING", logger="app.fleet.agent.sources"):
        frame = next(frames)
    assert frame.truth["scenario"] == "noise"
    error = frame.meta["scenario_error"]
    assert "fog:2.0" in error and "keeping 'noise'" in error
    assert "fog:2.0" in caplog.text
    clock.now += SCENARIO_POLL_S
    frame = next(frames)  # reported once, not on every frame
    assert frame.truth["scenario"] == "noise" and "scenario_error" not in frame.meta

    path.write_text("")  # empty is malformed too
    clock.now += SCENARIO_POLL_S
    frame = next(frames)
    assert frame.truth["scenario"] == "noise" and "scenario_error" in frame.meta

    path.write_text("blur")
    clock.now += SCENARIO_POLL_S
    assert next(frames).truth["scenario"] == "blur"


def test_a_malformed_scenario_file_from_the_start_leaves_the_schedule(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    path.write_text("nonsense")
    frame = next(generator_frames(3, "lighting@0", 64, clock=FakeClock(), scenario_file=path))
    assert frame.truth["scenario"] == "lighting"
    assert "keeping the schedule" in frame.meta["scenario_error"]


def test_open_source_passes_the_scenario_file_to_the_generator(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    path.write_text("blur:0.5")
    frame = next(open_source("generator:1", size=64, scenario_file=path))
    assert frame.truth["scenario"] == "blur"


@pytest.mark.parametrize("spec", ["folder:/nonexistent-folder", "video:/x.avi", "camera:9"])
def test_a_scenario_file_with_another_source_is_refused(spec: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scenario file"):
        open_source(spec, scenario_file=tmp_path / "scenario")


@pytest.mark.parametrize("spec, message", [
    ("camera:9", "cannot open camera"), ("folder:/nonexistent-folder", "nonexistent"),
    ("ftp://x", "unknown source"), ("generator:x", "not a number"),
])
def test_bad_sources_are_explained(spec: str, message: str) -> None:
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        next(open_source(spec))


def test_advertisement_is_updated_when_the_model_changes() -> None:
    watcher = Watcher()
    advertiser = Advertiser(["127.0.0.1"])
    name = f"cam-9.{SERVICE_TYPE}"
    try:
        advertiser.publish(Advertised("cam-9", "Line 9", "edge-1", 2209, "sim"))
        watcher.wait(name, ServiceStateChange.Added)
        advertiser.publish(Advertised("cam-9", "Line 9", "edge-2", 2209, "sim"))
        watcher.wait(name, ServiceStateChange.Updated)
        info = watcher.zc.get_service_info(SERVICE_TYPE, name, timeout=5000)
        assert info is not None and info.properties[b"model"] == b"edge-2"
    finally:
        advertiser.close()
        watcher.close()


def test_a_second_device_with_the_same_id_gets_a_clear_error() -> None:
    first, second = Advertiser(["127.0.0.1"]), Advertiser(["127.0.0.1"])
    try:
        first.publish(Advertised("dup-1", "A", "edge-1", 2201, "sim"))
        with pytest.raises(ConfigError, match="already advertises 'dup-1'"):
            second.publish(Advertised("dup-1", "B", "edge-1", 2202, "sim"))
    finally:
        second.close()
        first.close()
