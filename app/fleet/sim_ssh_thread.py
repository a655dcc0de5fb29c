"""Running a simulated device's SSH server from synchronous code: its own loop on a thread."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from app.fleet.sim_ssh import DeviceSSHServer, SSHEndpoint


class DeviceSSHServerThread:
    """Runs one :class:`DeviceSSHServer` on a private event loop in a background thread.

    ``start()`` returns once the server listens (or raises what its start raised);
    ``stop()`` closes the server (connections, running commands) and joins the thread, so
    nothing is left running. Usable as a context manager.
    """

    def __init__(self, server: DeviceSSHServer) -> None:
        self.server = server
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._endpoint: SSHEndpoint | None = None

    def start(self, timeout: float = 30.0) -> SSHEndpoint:
        if self._thread is not None:
            raise RuntimeError("the device SSH server thread is already started")
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), daemon=True,
            name=f"device-ssh:{self.server.home.name}")
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the device SSH server did not start within {timeout} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        assert self._endpoint is not None
        return self._endpoint

    def stop(self, timeout: float = 30.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:
                pass  # the loop has already finished
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the device SSH server did not stop within {timeout} s")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self._endpoint = await self.server.start()
        except BaseException as exc:  # handed to start()'s caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.close()

    def __enter__(self) -> SSHEndpoint:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
