"""Finding edge devices on the network: mDNS browsing of ``_edgeloop._tcp.local.``.

The workstation side of the agent's advertisement (app/fleet/agent/advertise.py). A
:class:`Discovery` owns one AsyncZeroconf on the interfaces the user picked and one browser
for the EdgeLoop service type; every record it resolves is validated into a
:class:`Sighting` and handed to a callback as a :class:`DiscoveryEvent` (seen or gone), so the
GUI (through qasync) and the CLI share the same code. Discovery only proposes: a sighting is
what a device *says*, checked for shape, never trusted (DESIGN.md); enrollment pins the SSH
host key. A malformed record is logged and dropped, never raised, so one broken or hostile
advertiser cannot stop the others from being found.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from zeroconf import DNSQuestionType, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from app.core.errors import InvalidInput
from app.core.progress import CancelToken, Progress, ProgressFn
from app.core.models import utcnow
from app.fleet.agent.advertise import SERVICE_TYPE

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
RESOLVE_TIMEOUT_MS = 3000
_CANCEL_POLL_S = 0.2  # how quickly a browse notices it was cancelled
# Multicast answers only. A first query asking for a unicast answer (zeroconf's default) is
# answered to port 5353 of this host, where every mDNS stack (Avahi, another EdgeLoop, the
# simulator's agents) has a socket bound with SO_REUSEPORT: the kernel hands the answer to
# one of them, often not us, and the device then shows up only a second later.
_QUESTIONS = DNSQuestionType.QM

_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Plain ASCII digits only: int() would also take " 22", "+22", "2_2" and other scripts' digits.
_PORT = re.compile(r"[0-9]{1,5}")
# TXT key -> longest value we accept; "id" and "ssh_port" have their own stricter checks.
_TEXT_LIMITS = {"name": 128, "agent": 64, "model": 64, "hw": 64}


@dataclass(frozen=True)
class Sighting:
    """One validated advertisement: who a device says it is and where it says to reach it."""

    uid: str
    name: str
    address: str
    ssh_port: int
    agent_version: str
    model_version: str
    hardware: str
    seen_at: datetime

    @property
    def advertised(self) -> dict[str, str]:
        """The validated TXT record, with the agent's own key names (stored as advertised)."""
        return {"id": self.uid, "name": self.name, "agent": self.agent_version,
                "model": self.model_version, "ssh_port": str(self.ssh_port),
                "hw": self.hardware}


class EventKind(str, enum.Enum):
    """A device appeared or changed its advertisement (SEEN), or withdrew it (GONE)."""

    SEEN = "seen"
    GONE = "gone"


@dataclass(frozen=True)
class DiscoveryEvent:
    """What :class:`Discovery` reports: a sighting when seen, only the uid when gone."""

    kind: EventKind
    uid: str
    sighting: Sighting | None = None

    @classmethod
    def seen(cls, sighting: Sighting) -> DiscoveryEvent:
        return cls(EventKind.SEEN, sighting.uid, sighting)

    @classmethod
    def gone(cls, uid: str) -> DiscoveryEvent:
        return cls(EventKind.GONE, uid)


class _BadRecord(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key!r} {reason}")
        self.key = key


def _instance_of(service_name: str) -> str:
    suffix = "." + SERVICE_TYPE
    return service_name[: -len(suffix)] if service_name.endswith(suffix) else service_name


def _text(properties: Mapping[bytes, bytes | None], key: str) -> str:
    raw = properties.get(key.encode("ascii"))
    if raw is None:  # absent, or present without "=" (a boolean attribute in DNS-SD)
        raise _BadRecord(key, "is missing")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _BadRecord(key, "is not valid UTF-8") from None


def _bounded_text(properties: Mapping[bytes, bytes | None], key: str, limit: int) -> str:
    value = _text(properties, key)
    if len(value) > limit:
        raise _BadRecord(key, f"is longer than {limit} characters")
    # isprintable() also refuses control and bidi-override characters, which could make a
    # name shown in the GUI or a log read as something it is not.
    if not value.isprintable():
        raise _BadRecord(key, "holds unprintable characters")
    return value


def _device_id(properties: Mapping[bytes, bytes | None], service_name: str) -> str:
    uid = _text(properties, "id")
    if not _DEVICE_ID.fullmatch(uid):
        raise _BadRecord("id", "is not 1-64 letters, digits, '.', '_' or '-'")
    # The instance name is what a removal names: it must be the id, or "gone" could not be
    # matched to the device that was seen.
    if _instance_of(service_name) != uid:
        raise _BadRecord("id", f"does not match the service instance name {service_name!r}")
    return uid


def _ssh_port(properties: Mapping[bytes, bytes | None]) -> int:
    text = _text(properties, "ssh_port")
    if not _PORT.fullmatch(text) or not 1 <= int(text) <= 65535:
        raise _BadRecord("ssh_port", "is not a port number 1-65535")
    return int(text)


def _ipv4(addresses: Sequence[str]) -> str:
    # The first usable one: zeroconf lists the most recently announced address first.
    for text in addresses:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if not (address.is_unspecified or address.is_multicast or address.is_reserved):
            return str(address)
    raise _BadRecord("addresses", "hold no usable IPv4 address")


def _parse(
    service_name: str, properties: Mapping[bytes, bytes | None], addresses: Sequence[str],
    seen_at: datetime,
) -> Sighting:
    limited = {key: _bounded_text(properties, key, limit) for key, limit in _TEXT_LIMITS.items()}
    return Sighting(
        uid=_device_id(properties, service_name),
        name=limited["name"],
        address=_ipv4(addresses),
        ssh_port=_ssh_port(properties),
        agent_version=limited["agent"],
        model_version=limited["model"],
        hardware=limited["hw"],
        seen_at=seen_at,
    )


def sighting_from_record(
    service_name: str,
    properties: Mapping[bytes, bytes | None],
    addresses: Sequence[str],
    seen_at: datetime,
) -> Sighting | None:
    """Validate one resolved advertisement; ``None`` (and a warning in the log) if it is bad.

    Never raises for anything a device can send: the network is not ours to trust.
    """
    try:
        return _parse(service_name, properties, addresses, seen_at)
    except _BadRecord as bad:
        logger.warning("ignoring the mDNS advertisement %r: TXT key %s", service_name, bad)
        return None


def _check_interfaces(interfaces: Sequence[str]) -> list[str]:
    # No default: listening on every interface causes self-echo and storms on hosts with many
    # bridges (NOTES.md), and in tests it would be traffic on a network that is not ours.
    if isinstance(interfaces, str) or not interfaces:
        raise InvalidInput("pick the network interfaces to discover devices on (IPv4 addresses)")
    for ip in interfaces:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise InvalidInput(f"interface {ip!r} is not an IPv4 address") from None
    return list(interfaces)


class Discovery:
    """Browses for EdgeLoop devices on chosen interfaces and reports them to ``on_event``.

    ``on_event`` runs on the event loop that called :meth:`start` (the Qt main thread under
    qasync). ``sightings`` holds the devices currently advertised. Use ``async with`` or
    pair :meth:`start` with :meth:`stop`, which closes the Zeroconf sockets.
    """

    def __init__(
        self,
        interfaces: Sequence[str],
        on_event: Callable[[DiscoveryEvent], None],
        *,
        clock: Clock = utcnow,
        resolve_timeout_ms: int = RESOLVE_TIMEOUT_MS,
    ) -> None:
        self.interfaces = _check_interfaces(interfaces)
        self.on_event = on_event
        self.clock = clock
        self.resolve_timeout_ms = resolve_timeout_ms
        self.sightings: dict[str, Sighting] = {}
        self._uid_of: dict[str, str] = {}  # service name -> uid of its last valid sighting
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._aiozc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None

    async def start(self) -> None:
        """Open the sockets and start browsing; events follow as devices answer."""
        if self._aiozc is not None:
            return
        self._aiozc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(
            self._aiozc.zeroconf, SERVICE_TYPE, handlers=[self._on_change],
            question_type=_QUESTIONS,
        )

    async def stop(self) -> None:
        """Stop browsing, drop pending resolutions and close the sockets. Safe to repeat."""
        if self._browser is not None:  # first, so that no new resolution starts
            await self._browser.async_cancel()
            self._browser = None
        tasks = list(self._resolving.values())
        self._resolving.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._aiozc is not None:
            await self._aiozc.async_close()
            self._aiozc = None

    async def __aenter__(self) -> Discovery:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        # Called by the browser on the event loop; resolution is async (never the blocking
        # get_service_info on the loop), one task per service name.
        previous = self._resolving.pop(name, None)
        if previous is not None:
            previous.cancel()  # a newer change supersedes it (or the device left)
        if state_change is ServiceStateChange.Removed:
            self._forget(name)
            return
        task = asyncio.get_running_loop().create_task(self._resolve(name))
        self._resolving[name] = task
        task.add_done_callback(lambda done: self._finished(name, done))

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]

    async def _resolve(self, name: str) -> None:
        assert self._aiozc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        resolved = await info.async_request(
            self._aiozc.zeroconf, self.resolve_timeout_ms, question_type=_QUESTIONS
        )
        if not resolved:
            logger.info("the mDNS advertisement %r did not resolve in time", name)
            return
        sighting = sighting_from_record(
            name, info.properties, info.parsed_addresses(IPVersion.V4Only), self.clock()
        )
        if sighting is not None:
            self._uid_of[name] = sighting.uid
            self.sightings[sighting.uid] = sighting
            self._emit(DiscoveryEvent.seen(sighting))

    def _forget(self, name: str) -> None:
        uid = self._uid_of.pop(name, None)
        if uid is None:
            return  # never validly seen (bad record or unresolved): nothing to report
        self.sightings.pop(uid, None)
        self._emit(DiscoveryEvent.gone(uid))

    def _emit(self, event: DiscoveryEvent) -> None:
        try:
            self.on_event(event)
        except Exception:
            # The consumer's bug must not stop discovery; it is logged loudly, not swallowed.
            logger.exception("the discovery event handler failed on %s", event)


async def discover(
    interfaces: Sequence[str], seconds: float, clock: Clock = utcnow
) -> list[Sighting]:
    """Browse for ``seconds`` and return the devices still advertised at the end, by uid."""
    discovery = Discovery(interfaces, lambda _event: None, clock=clock)
    async with discovery:
        await asyncio.sleep(seconds)
        found = dict(discovery.sightings)
    return [found[uid] for uid in sorted(found)]


def discover_sync(
    interfaces: Sequence[str], seconds: float, clock: Clock = utcnow
) -> list[Sighting]:
    """:func:`discover` for callers without an event loop (the CLI)."""
    return asyncio.run(discover(interfaces, seconds, clock))


def browse_until_cancelled(interfaces: Sequence[str], on_sighting: Callable[[Sighting], None],
                           progress: ProgressFn, cancel: CancelToken) -> None:
    """Run mDNS discovery on ``interfaces`` until ``cancel``; hand each valid sighting to
    ``on_sighting`` (on the calling worker thread). Ends by raising ``Cancelled``.

    What the desktop app's Discover toggle runs on a worker of its own."""

    async def browse() -> None:
        def on_event(event: DiscoveryEvent) -> None:
            if event.sighting is not None:
                on_sighting(event.sighting)
            count = len(discovery.sightings)
            progress(Progress("discovery", count, 0, f"{count} device(s) advertised"))

        discovery = Discovery(interfaces, on_event)
        async with discovery:
            while not cancel.cancelled:
                await asyncio.sleep(_CANCEL_POLL_S)

    asyncio.run(browse())
    cancel.check()
