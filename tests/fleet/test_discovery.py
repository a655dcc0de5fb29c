"""Discovery over real mDNS on loopback, the TXT validator, and recording sightings.

Advertisements come from the agent's own Advertiser (and raw zeroconf records for the bad
ones), all on 127.0.0.1. Device ids carry a per-test tag, since other tests or a demo on this
machine may advertise on loopback too; events for other ids are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

import app
from app.core.errors import InvalidInput
from app.core.models import AuditEvent, Device, EnrollmentState
from app.core.project import Project
from app.fleet.agent.advertise import SERVICE_TYPE, Advertised, Advertiser
from app.fleet.discovery import (
    Discovery, DiscoveryEvent, EventKind, Sighting, discover, discover_sync,
    sighting_from_record,
)
from app.fleet.registry import DeviceRegistry
from tests.conftest import FakeClock

LOOPBACK = ["127.0.0.1"]
WAIT_S = 5.0
AT = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def _tag() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


class Events:
    """Collects the events of one test's devices (ids starting with its tag)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.received: list[DiscoveryEvent] = []

    def __call__(self, event: DiscoveryEvent) -> None:
        if event.uid.startswith(self.tag):
            self.received.append(event)

    def seen(self) -> dict[str, Sighting]:
        return {e.uid: e.sighting for e in self.received if e.kind is EventKind.SEEN and e.sighting}

    def gone(self) -> list[str]:
        return [e.uid for e in self.received if e.kind is EventKind.GONE]


async def _until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _fleet(tag: str) -> list[Advertised]:
    return [Advertised(f"{tag}-1", "Line 1", "edge-1", 2201, "sim-x86"),
            Advertised(f"{tag}-2", "Line 2 (east)", "edge-3", 2202, "sim-arm")]


@contextmanager
def advertising(facts: list[Advertised]) -> Iterator[None]:
    """Advertise devices on loopback from background threads; withdraw them on exit.

    Publishing blocks ~1.6 s while probing, so it runs beside the discovery under test, which
    sees each device from its first announcement. (Publishing first and browsing after would
    cost another second: a responder multicasts a record at most once a second, RFC 6762 s.6.)
    """
    advertisers = [Advertiser(LOOPBACK) for _ in facts]
    try:
        with ThreadPoolExecutor(len(facts)) as pool:
            published = [pool.submit(a.publish, f) for a, f in zip(advertisers, facts)]
            yield
            for future in published:
                future.result()
    finally:
        with ThreadPoolExecutor(len(facts)) as pool:
            list(pool.map(Advertiser.close, advertisers))


# --- discovery over mDNS on loopback ---------------------------------------------------------

def test_advertised_devices_are_seen_with_their_fields(clock: FakeClock) -> None:
    tag = _tag()
    fleet, events = _fleet(tag), Events(tag)

    async def browse() -> dict[str, Sighting]:
        async with Discovery(LOOPBACK, events, clock=clock) as discovery:
            await _until(lambda: len(events.seen()) == len(fleet), "both devices")
            return {uid: s for uid, s in discovery.sightings.items() if uid.startswith(tag)}

    with advertising(fleet):
        current = asyncio.run(browse())
    seen = events.seen()
    assert current == seen
    for facts in fleet:
        sighting = seen[facts.device_id]
        assert sighting == Sighting(
            uid=facts.device_id, name=facts.name, address="127.0.0.1", ssh_port=facts.ssh_port,
            agent_version=app.__version__, model_version=facts.model, hardware=facts.hardware,
            seen_at=sighting.seen_at,
        )
        assert sighting.advertised == facts.properties()
        assert datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc) < sighting.seen_at <= clock.now


def test_discover_sync_returns_the_devices_advertised(clock: FakeClock) -> None:
    tag = _tag()
    fleet = _fleet(tag)
    with advertising(fleet):
        # Long enough for the first announcement, which follows ~1 s of probing.
        found = [s for s in discover_sync(LOOPBACK, 1.8, clock) if s.uid.startswith(tag)]
    assert [(s.uid, s.ssh_port, s.model_version) for s in found] == [
        (f.device_id, f.ssh_port, f.model) for f in fleet
    ]


def test_a_withdrawn_device_is_reported_gone() -> None:
    tag = _tag()
    events = Events(tag)
    advertiser = Advertiser(LOOPBACK)
    facts = Advertised(f"{tag}-9", "Line 9", "edge-1", 2209, "sim")

    async def scenario() -> Discovery:
        async with Discovery(LOOPBACK, events) as discovery:
            await asyncio.to_thread(advertiser.publish, facts)
            await _until(lambda: facts.device_id in events.seen(), "the device")
            await asyncio.to_thread(advertiser.close)
            await _until(lambda: bool(events.gone()), "the goodbye")
            return discovery

    try:
        discovery = asyncio.run(scenario())
    finally:
        advertiser.close()
    assert events.gone() == [facts.device_id]
    assert [e.kind for e in events.received][-1] is EventKind.GONE
    assert facts.device_id not in discovery.sightings


def _raw_info(instance: str, **overrides: bytes) -> ServiceInfo:
    properties: dict[str, bytes] = {"id": instance.encode(), "name": b"Bad", "agent": b"0.1.0",
                                    "model": b"edge-1", "ssh_port": b"2222", "hw": b"sim"}
    properties.update(overrides)
    return ServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}",
                       addresses=[bytes([127, 0, 0, 1])], port=2222, properties=properties,
                       server=f"{instance}.local.")


def test_bad_records_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    tag = _tag()
    fleet, events = _fleet(tag), Events(tag)
    bad = {f"{tag}-port": ("ssh_port", _raw_info(f"{tag}-port", ssh_port=b"99999")),
           f"{tag}-path": ("id", _raw_info(f"{tag}-path", id=b"../x")),
           f"{tag}-utf8": ("name", _raw_info(f"{tag}-utf8", name=b"\xff\xfe line"))}

    def warned() -> dict[str, str]:
        found = {}
        for record in caplog.records:
            match = re.search(r"'([^']+)\._edgeloop\._tcp\.local\.': TXT key '(\w+)'",
                              record.getMessage())
            if record.levelno == logging.WARNING and match and match.group(1) in bad:
                found[match.group(1)] = match.group(2)
        return found

    async def scenario() -> None:
        async with Discovery(LOOPBACK, events):
            # Raw records, since the Advertiser would never send these.
            aiozc = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
            try:
                await asyncio.gather(*(aiozc.async_register_service(info)
                                       for _, info in bad.values()))
                await _until(lambda: len(warned()) == len(bad) and len(events.seen()) == 2,
                             "the warnings and the good devices")
            finally:
                await aiozc.async_close()

    with caplog.at_level(logging.WARNING, logger="app.fleet.discovery"), advertising(fleet):
        asyncio.run(scenario())
    assert warned() == {instance: key for instance, (key, _) in bad.items()}
    assert set(events.seen()) == {f.device_id for f in fleet}
    assert not events.gone()


def test_discovery_needs_chosen_interfaces() -> None:
    for interfaces in ([], "127.0.0.1", ["eth0"]):
        with pytest.raises(InvalidInput):
            Discovery(interfaces, lambda _e: None)


def test_a_failing_event_handler_is_logged_and_discovery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tag = _tag()
    fleet, calls = _fleet(tag), []

    def handler(event: DiscoveryEvent) -> None:
        if event.uid.startswith(tag):
            calls.append(event.uid)
            raise RuntimeError("handler bug")

    async def scenario() -> None:
        async with Discovery(LOOPBACK, handler):
            await _until(lambda: len(set(calls)) == len(fleet), "both devices")

    with caplog.at_level(logging.ERROR, logger="app.fleet.discovery"), advertising(fleet):
        asyncio.run(scenario())
    assert any("event handler failed" in r.getMessage() for r in caplog.records)


def test_discover_is_empty_when_nothing_answers() -> None:
    tag = _tag()
    assert [s for s in asyncio.run(discover(LOOPBACK, 0.05)) if s.uid.startswith(tag)] == []


# --- the TXT validator ------------------------------------------------------------------------

GOOD = {b"id": b"cam-1", b"name": b"Line 1", b"agent": b"0.1.0", b"model": b"edge-1",
        b"ssh_port": b"2201", b"hw": b"sim-x86"}
NAME = f"cam-1.{SERVICE_TYPE}"


def test_a_good_record_becomes_a_sighting() -> None:
    sighting = sighting_from_record(NAME, {**GOOD, b"extra": None}, ["10.0.0.7", "127.0.0.1"], AT)
    assert sighting == Sighting("cam-1", "Line 1", "10.0.0.7", 2201, "0.1.0", "edge-1",
                                "sim-x86", AT)


@pytest.mark.parametrize("key, value", [
    ("ssh_port", b"99999"), ("ssh_port", b"0"), ("ssh_port", b" 22"), ("ssh_port", b"+22"),
    ("ssh_port", "２２".encode()), ("ssh_port", None), ("id", b"../x"), ("id", b""),
    ("id", b"a" * 65), ("id", b"cam-2"), ("name", b"\xff\xfe"), ("name", b"x" * 129),
    ("name", b"Line\n1"), ("hw", "a\u202eb".encode()), ("model", b"m" * 65),
    ("agent", None),
])
def test_a_bad_value_is_logged_and_the_record_ignored(
    key: str, value: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    properties = {**GOOD, key.encode(): value}
    with caplog.at_level(logging.WARNING, logger="app.fleet.discovery"):
        assert sighting_from_record(NAME, properties, ["127.0.0.1"], AT) is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert NAME in caplog.text and f"TXT key '{key}'" in caplog.text


def test_a_missing_key_or_address_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    without_hw = {k: v for k, v in GOOD.items() if k != b"hw"}
    assert sighting_from_record(NAME, without_hw, ["127.0.0.1"], AT) is None
    assert sighting_from_record(NAME, GOOD, ["fe80::1", "0.0.0.0", "224.0.0.251"], AT) is None
    assert "'hw' is missing" in caplog.text and "'addresses'" in caplog.text


_values = st.one_of(
    st.none(), st.binary(max_size=80), st.text(max_size=140).map(str.encode),
    st.integers(-5, 70_000).map(lambda n: str(n).encode()),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True).map(str.encode),
)
_keys = st.one_of(st.sampled_from(list(GOOD)), st.binary(max_size=8))
_addresses = st.lists(st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
                                st.text(max_size=16)), max_size=3)


@given(properties=st.one_of(st.dictionaries(_keys, _values, max_size=8),
                            st.dictionaries(st.sampled_from(list(GOOD)), _values, min_size=6)),
       addresses=_addresses, name_from_id=st.booleans(), other_name=st.text(max_size=70))
def test_the_validator_never_raises(
    properties: dict[bytes, bytes | None], addresses: list[str], name_from_id: bool,
    other_name: str,
) -> None:
    raw_id = properties.get(b"id") or b""
    name = f"{raw_id.decode('utf-8', 'replace')}.{SERVICE_TYPE}" if name_from_id else other_name
    sighting = sighting_from_record(name, properties, addresses, AT)
    if sighting is not None:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", sighting.uid)
        assert name == f"{sighting.uid}.{SERVICE_TYPE}"
        assert 1 <= sighting.ssh_port <= 65535 and sighting.address in addresses
        assert len(sighting.name) <= 128 and sighting.name.isprintable()
        for text in (sighting.agent_version, sighting.model_version, sighting.hardware):
            assert len(text) <= 64 and text.isprintable()


# --- recording sightings in the project -------------------------------------------------------

def _sighting(uid: str = "cam-1", **changes: object) -> Sighting:
    fields: dict[str, object] = dict(uid=uid, name="Line 1", address="10.0.0.7", ssh_port=2201,
                                     agent_version="0.1.0", model_version="edge-1",
                                     hardware="sim-x86", seen_at=AT)
    fields.update(changes)
    return Sighting(**fields)  # type: ignore[arg-type]


def _registry(project: Project) -> DeviceRegistry:
    return DeviceRegistry(project.db, project.audit, project.clock)


def _device(project: Project, uid: str) -> Device:
    with project.db.read() as session:
        device = session.scalar(select(Device).where(Device.uid == uid))
    assert device is not None
    return device


def _discovered_events(project: Project) -> list[AuditEvent]:
    with project.db.read() as session:
        return list(project.audit.events(session, action="device_discovered"))


def test_a_new_device_is_recorded_as_discovered(project: Project, clock: FakeClock) -> None:
    assert _registry(project).record(_sighting()) is True
    device = _device(project, "cam-1")
    assert device.enrollment is EnrollmentState.DISCOVERED
    assert (device.name, device.address, device.ssh_port) == ("Line 1", "10.0.0.7", 2201)
    assert (device.agent_version, device.model_version, device.hardware) == (
        "0.1.0", "edge-1", "sim-x86")
    assert device.advertised == _sighting().advertised
    assert device.last_seen == device.first_seen
    assert datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc) < device.last_seen <= clock.now
    assert device.host_key_fingerprint is None


def test_a_known_device_is_refreshed_and_audited_once(project: Project, clock: FakeClock) -> None:
    registry = _registry(project)
    assert registry.record_many([_sighting("cam-1"), _sighting("cam-2")]) == ["cam-1", "cam-2"]
    first = _device(project, "cam-1").last_seen
    clock.advance(minutes=5)
    moved = _sighting("cam-1", name="Renamed", address="10.0.0.8", model_version="edge-2")
    assert registry.record_many([moved, _sighting("cam-2")]) == []
    device = _device(project, "cam-1")
    assert (device.name, device.address, device.model_version) == ("Renamed", "10.0.0.8", "edge-2")
    assert device.last_seen is not None and first is not None
    assert device.last_seen - first >= timedelta(minutes=5)
    events = _discovered_events(project)
    assert [(e.object_type, e.object_id, e.actor) for e in events] == [
        ("device", "cam-1", "edgeloop"), ("device", "cam-2", "edgeloop")]
    assert events[0].after is not None and events[0].after["address"] == "10.0.0.7"
    with project.db.read() as session:
        assert project.audit.verify(session).ok


def _set_state(project: Project, uid: str, state: EnrollmentState, fingerprint: str) -> None:
    with project.db.write() as session:
        device = session.scalar(select(Device).where(Device.uid == uid))
        assert device is not None
        device.enrollment, device.host_key_fingerprint = state, fingerprint


def test_an_enrolled_device_keeps_its_key_state_and_name(project: Project) -> None:
    registry = _registry(project)
    registry.record(_sighting())
    _set_state(project, "cam-1", EnrollmentState.ENROLLED, "SHA256:pinned")
    before = _device(project, "cam-1").last_seen
    registry.record(_sighting(name="Spoofed", address="10.0.0.9", ssh_port=2299,
                              model_version="edge-2", hardware="sim-arm"))
    device = _device(project, "cam-1")
    assert device.enrollment is EnrollmentState.ENROLLED
    assert device.host_key_fingerprint == "SHA256:pinned"
    assert device.name == "Line 1"
    assert (device.address, device.ssh_port) == ("10.0.0.9", 2299)
    assert (device.model_version, device.hardware) == ("edge-2", "sim-arm")
    assert device.advertised["name"] == "Spoofed"
    assert before is not None and device.last_seen is not None and device.last_seen > before
    assert len(_discovered_events(project)) == 1


def test_a_forgotten_device_stays_forgotten(project: Project) -> None:
    registry = _registry(project)
    registry.record(_sighting())
    _set_state(project, "cam-1", EnrollmentState.FORGOTTEN, "SHA256:old")
    before = _device(project, "cam-1").last_seen
    assert registry.record(_sighting(address="10.0.0.9", model_version="edge-9")) is False
    device = _device(project, "cam-1")
    assert device.enrollment is EnrollmentState.FORGOTTEN
    assert (device.model_version, device.host_key_fingerprint) == ("edge-1", "SHA256:old")
    # Followed, so that `devices enroll` reaches it again (with a fresh host-key check).
    assert device.address == "10.0.0.9"
    assert device.advertised["model"] == "edge-9"
    assert before is not None and device.last_seen is not None and device.last_seen > before
    assert len(_discovered_events(project)) == 1


def test_gone_changes_nothing(project: Project) -> None:
    registry = _registry(project)
    registry.record(_sighting())
    before = _device(project, "cam-1")
    registry.gone("cam-1")
    registry.gone("never-seen")
    after = _device(project, "cam-1")
    assert (after.last_seen, after.enrollment, after.address) == (
        before.last_seen, before.enrollment, before.address)


def test_a_batch_with_the_same_device_twice_records_it_once(project: Project) -> None:
    registry = _registry(project)
    assert registry.record_many([_sighting(model_version="edge-1"),
                                 _sighting(model_version="edge-2")]) == ["cam-1"]
    assert registry.record_many([]) == []
    assert _device(project, "cam-1").model_version == "edge-2"
    assert len(_discovered_events(project)) == 1
