"""The device's mDNS advertisement: ``_edgeloop._tcp.local.`` with the TXT keys of DESIGN.md.

Updated when the model changes, withdrawn on shutdown. Interfaces are the config's: every
interface on a real device; loopback in the simulator and the tests (NOTES.md: multicast on
a LAN interface from a test is traffic to an address that is not ours).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import ifaddr
from zeroconf import IPVersion, NonUniqueNameException, ServiceInfo, Zeroconf

import app
from app.fleet.agent.errors import ConfigError

SERVICE_TYPE = "_edgeloop._tcp.local."


@dataclass(frozen=True)
class Advertised:
    """What a device says about itself on the network (only proposals: nothing is trusted)."""

    device_id: str
    name: str
    model: str
    ssh_port: int
    hardware: str

    def properties(self) -> dict[str, str]:
        return {"id": self.device_id, "name": self.name, "agent": app.__version__,
                "model": self.model, "ssh_port": str(self.ssh_port), "hw": self.hardware}


def _addresses(interfaces: list[str] | None) -> list[bytes]:
    if interfaces:
        return [socket.inet_aton(ip) for ip in interfaces]
    found = [ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips
             if isinstance(ip.ip, str) and not ip.ip.startswith("127.")]
    return [socket.inet_aton(ip) for ip in found] or [socket.inet_aton("127.0.0.1")]


class Advertiser:
    """Owns one Zeroconf instance for the agent process and its single service record."""

    def __init__(self, interfaces: list[str] | None) -> None:
        self.interfaces = interfaces
        self.zeroconf = Zeroconf(
            interfaces=interfaces if interfaces else "all", ip_version=IPVersion.V4Only
        )
        self.info: ServiceInfo | None = None

    def _info(self, facts: Advertised) -> ServiceInfo:
        return ServiceInfo(
            SERVICE_TYPE,
            f"{facts.device_id}.{SERVICE_TYPE}",
            addresses=_addresses(self.interfaces),
            port=facts.ssh_port,
            properties=facts.properties(),
            server=f"{facts.device_id}.local.",
        )

    def publish(self, facts: Advertised) -> None:
        """Announce the device, or update the announcement if it changed."""
        info = self._info(facts)
        if self.info is None:
            try:
                self.zeroconf.register_service(info, allow_name_change=False)
            except NonUniqueNameException:
                raise ConfigError(
                    f"another device on this network already advertises {facts.device_id!r}; "
                    "give this device a unique device_id in its config.json"
                ) from None
        elif info.properties != self.info.properties:
            self.zeroconf.update_service(info)
        self.info = info

    def close(self) -> None:
        """Withdraw the announcement (goodbye packets) and stop the Zeroconf threads."""
        if self.info is not None:
            self.zeroconf.unregister_service(self.info)
            self.info = None
        self.zeroconf.close()
