"""The agent's main loop: frames in, predictions, captures, health and drift statistics out.

It starts by recovering any interrupted activation, loads the current release, and then for
each frame: infers, updates health and drift statistics, and keeps the frame if the capture
policy says so. It hot-reloads when ``current`` points at another release or when
``edgeloop-agent ctl reload`` asks (state/reload-request), without stopping; a release that
fails to load leaves the old engine running and the error in the status.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

import app
from app.fleet.agent.activation import ReleaseManager
from app.fleet.agent.advertise import Advertised, Advertiser
from app.fleet.agent.drift_stats import DriftStatistics
from app.fleet.agent.errors import AgentError
from app.fleet.agent.health import HealthMonitor
from app.fleet.agent.home import AgentConfig, AgentHome
from app.fleet.agent.manifest import Manifest
from app.fleet.agent.policy import CapturePolicy
from app.fleet.agent.runtime import Engine, self_test
from app.fleet.agent.sources import Frame

class Agent:
    """One device's agent, run until ``stop`` is set or the source ends."""

    def __init__(
        self,
        home: AgentHome,
        frames: Iterator[Frame],
        *,
        advertise: bool = True,
        clock: Callable[[], float] = time.time,
        max_frames: int | None = None,
    ) -> None:
        self.home = home
        self.frames = frames
        self.advertise = advertise
        self.clock = clock
        self.max_frames = max_frames
        self.config: AgentConfig = home.load_config()
        self.releases = ReleaseManager(
            home, lambda folder, manifest: self_test(folder, manifest, self.config.runtime)
        )
        self.health = HealthMonitor(clock)
        self.spool = home.open_spool(self.config)
        self.policy = CapturePolicy(self.config.capture, seed=hash(self.config.device_id) & 0xFFFF)
        self.drift = DriftStatistics(home.drift, clock=clock)
        self.engine: Engine | None = None
        self.manifest: Manifest | None = None
        self.version: str | None = None
        self._reload_mark = self._reload_request_mtime()
        self.advertiser: Advertiser | None = None

    # -- model -------------------------------------------------------------------------------
    def _reload_request_mtime(self) -> float:
        try:
            return os.stat(self.home.reload_request).st_mtime
        except FileNotFoundError:
            return 0.0

    def _load_current(self) -> None:
        """Load whatever ``current`` names; keep the running engine if that fails."""
        version = self.releases.current_version()
        if version is None:
            self.health.error("no release installed: not inferring until one is deployed")
            return
        try:
            manifest = self.releases.manifest_of(version)
            engine = self_test(self.releases.release_dir(version), manifest, self.config.runtime)
        except AgentError as exc:
            self.health.error(f"release {version} not loaded, still running "
                              f"{self.version or 'no model'}: {exc}")
            return
        self.engine, self.manifest, self.version = engine, manifest, version
        self._publish()

    def _maybe_reload(self) -> None:
        mark = self._reload_request_mtime()
        if self.releases.current_version() != self.version or mark != self._reload_mark:
            self._reload_mark = mark
            self._load_current()

    def _publish(self) -> None:
        if self.advertiser is None:
            return
        try:
            self.advertiser.publish(Advertised(
                self.config.device_id, self.config.name or self.config.device_id,
                self.version or "", self.config.ssh_port, self.config.hardware,
            ))
        except AgentError as exc:
            # Not discoverable is not broken: keep inferring, say why in the status.
            self.health.error(f"not advertised: {exc}")

    # -- frames ------------------------------------------------------------------------------
    def _capture(self, frame: Frame, probs: np.ndarray, label: str, confidence: float,
                 reason: str) -> None:
        fmt = self.config.capture.image_format
        params = [cv2.IMWRITE_JPEG_QUALITY, self.config.capture.jpeg_quality] if fmt == "jpg" else []
        ok, encoded = cv2.imencode(f".{fmt}", frame.image, params)
        if not ok:
            self.health.error("a frame could not be encoded; not captured")
            return
        assert self.manifest is not None
        sidecar: dict[str, Any] = {
            "device_id": self.config.device_id,
            "captured_at": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(),
            "reason": reason,
            "prediction": label,
            "confidence": round(confidence, 6),
            "probs": {name: round(float(p), 6) for name, p in zip(self.manifest.labels, probs)},
            "model_version": self.version,
            "source": frame.source,
            "width": int(frame.image.shape[1]),
            "height": int(frame.image.shape[0]),
        }
        if frame.truth is not None:
            sidecar["truth"] = frame.truth
        self.spool.add(encoded.tobytes(), fmt, sidecar)
        self.health.captures += 1

    def _process(self, frame: Frame) -> None:
        assert self.engine is not None and self.manifest is not None
        started = time.perf_counter()
        probs = self.engine.predict([frame.image])[0]
        self.health.frame((time.perf_counter() - started) * 1000)
        top = int(np.argmax(probs))
        label, confidence = self.manifest.labels[top], float(probs[top])
        self.drift.add(frame.image, confidence, label, self.version or "")
        reason = self.policy.reason(confidence)
        if reason is not None:
            self._capture(frame, probs, label, confidence, reason)

    def write_status(self, state: str) -> dict[str, Any]:
        spool = self.spool.stats()
        return self.health.write(self.home.status_path, self.home.root, {
            "state": state,
            "device_id": self.config.device_id,
            "agent_version": app.__version__,
            "model_version": self.version,
            "previous_version": self.releases.previous_version(),
            "runtime": self.engine.runtime if self.engine else None,
            "spool": {"captures": spool.captures, "bytes": spool.bytes,
                      "quota_bytes": spool.quota_bytes, "evicted": spool.evicted,
                      "acked": spool.acked, "next_id": spool.next_seq},
            "capture_enabled": self.config.capture.enabled,
        })

    # -- run ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        try:
            recovery = self.releases.recover()
            if recovery.changed:
                self.health.error(recovery.message)
        except AgentError as exc:
            self.health.error(str(exc))
        if self.advertise:
            self.advertiser = Advertiser(self.config.interfaces)
        try:
            self._load_current()
            if self.version is None:
                self._publish()  # findable without a model, so one can be deployed to it
            self._loop(stop)
        finally:
            self.drift.flush()
            self.write_status("stopped")
            if self.advertiser is not None:
                self.advertiser.close()

    def _loop(self, stop: threading.Event) -> None:
        period = 1.0 / self.config.fps
        next_frame = time.monotonic()
        next_status = next_drift = 0.0
        processed = 0
        self.write_status("running")
        while not stop.is_set():
            self._maybe_reload()
            try:
                frame = next(self.frames)
            except StopIteration:
                break
            if self.engine is not None:
                try:
                    self._process(frame)
                except Exception as exc:  # one bad frame must not stop the device
                    self.health.error(f"inference failed on a frame: {exc}")
            processed += 1
            now = time.monotonic()
            if now >= next_status:
                self.write_status("running")
                next_status = now + self.config.status_interval_s
            if now >= next_drift:
                self.drift.flush()
                next_drift = now + self.config.drift_flush_interval_s
            if self.max_frames is not None and processed >= self.max_frames:
                break
            next_frame += period
            delay = next_frame - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            elif delay < -period:
                # More than a frame behind: count the frames we could not process in time.
                missed = int(-delay / period)
                self.health.drops += missed
                next_frame += missed * period
