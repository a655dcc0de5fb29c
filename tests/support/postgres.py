"""A private PostgreSQL server for the test session, on a free loopback port.

Found through ``pg_config``/Debian's /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as
root, so when the tests run as root (CI) the server runs as the ``postgres`` system user.
The server is stopped by PID and its data folder removed when the session ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port


def find_bin_dir() -> Path | None:
    """The folder holding initdb and postgres, or None if PostgreSQL is not installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, str(Path(os.path.realpath(on_path)).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


@dataclass
class PostgresServer:
    """A running server: where it listens and how to stop it."""

    port: int
    data_dir: Path
    process: subprocess.Popen

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_postgres(bin_dir: Path) -> PostgresServer:
    """initdb a fresh cluster in a temp folder and start it on a free loopback port."""
    base = Path(tempfile.mkdtemp(prefix="edgeloop-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    # Run the server itself as postgres (not through runuser), so the PID we hold and
    # signal at the end is the postmaster's own.
    as_user: dict = {}
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, pg.pw_uid, pg.pw_gid)
        as_user = {"user": pg.pw_uid, "group": pg.pw_gid, "extra_groups": []}
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "--encoding=UTF8", "--no-sync"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=base, **as_user,
    )
    port = free_port()
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
         "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
         "-c", "fsync=off", "-c", "max_connections=50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base, **as_user,
    )
    server = PostgresServer(port, base, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.stop()
            raise RuntimeError(f"postgres exited with {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            import psycopg

            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres").close()
            return server
        except OSError:
            time.sleep(0.1)
        except Exception:  # the server accepts TCP before it accepts logins
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("postgres did not accept connections within 30 s")
