"""A TCP proxy on loopback that cuts the connection after a set number of bytes.

Fault injection for the pull: the workstation connects to the proxy, the proxy to the
device's SSH server, and after ``down_limit`` bytes from the device (or ``up_limit`` bytes
to it) both sockets are closed at once, as a pulled cable or a crashed router would do.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class CutPlan:
    """Where to cut: after this many bytes in each direction (None: never)."""

    down_limit: int | None = None
    up_limit: int | None = None
    cut: threading.Event = field(default_factory=threading.Event)


class CuttingProxy:
    """Accepts one connection at a time and forwards it to ``target`` under ``plan``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.plan = CutPlan()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="cutting-proxy", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self._start_pair(client, upstream, self.plan)

    def _start_pair(self, client: socket.socket, upstream: socket.socket, plan: CutPlan) -> None:
        lock = threading.Lock()
        sent = {"down": 0, "up": 0}

        def close_both() -> None:
            plan.cut.set()
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

        def pump(src: socket.socket, dst: socket.socket, direction: str,
                 limit: int | None) -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    close_both()
                    return
                with lock:
                    if limit is not None and sent[direction] + len(data) >= limit:
                        data = data[: max(0, limit - sent[direction])]
                        cut_now = True
                    else:
                        cut_now = False
                    sent[direction] += len(data)
                try:
                    if data:
                        dst.sendall(data)
                except OSError:
                    close_both()
                    return
                if cut_now:
                    close_both()
                    return

        for args in ((upstream, client, "down", plan.down_limit),
                     (client, upstream, "up", plan.up_limit)):
            thread = threading.Thread(target=pump, args=args, daemon=True, name="proxy-pump")
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        with contextlib.suppress(OSError):
            self._listener.close()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
