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
from app.fleet.agent.sources import open_source
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
