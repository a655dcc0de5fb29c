"""What an SSH exec channel may run on a simulated device, and how it runs.

A simulated device offers a fixed map of programs (:data:`CommandMap`): the command string
from the client is split with :mod:`shlex`, its first word picks the entry, and the entry
turns the remaining words into a real argv (or refuses them). The argv runs without a shell,
with cwd = the device home, its stdin/stdout/stderr streamed over the channel as bytes.

The ``tar`` entry (:class:`TarCommand`) is how the workstation pulls many small files at once
(``tar -cf - -C spool a b c``). GNU tar can do far more than that (extract over any path, run
programs with ``--to-command``, ``-I`` or ``--checkpoint-action``, talk to a remote host with
``-f host:file``), so the builder accepts a small whitelist of options and refuses the rest,
rather than trying to recognise what is dangerous. Accepted: create (``-c``/``--create``) or
list (``-t``/``--list``); ``-v``, ``-z``, ``--numeric-owner``, ``--no-recursion``,
``--sort=name``; the archive must be ``-`` (the channel); ``-C``/``--directory`` and file
names must be relative, hold no ``..`` component and resolve (symlinks followed) inside the
home. Old-style bundles (``tar cf - x``) work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path

import asyncssh

log = logging.getLogger(__name__)

#: Exit status when the program is not in the command map (as a shell says "not found").
EXIT_NOT_OFFERED = 127
#: Exit status when the entry refused the arguments (as a shell says "cannot execute").
EXIT_REFUSED = 126
#: Exit status when the server itself failed (as OpenSSH's client reports its own errors).
EXIT_SERVER_ERROR = 255

_CHUNK = 256 * 1024
#: Environment variables a device command must not inherit: TAR_OPTIONS would smuggle
#: options past the tar whitelist.
_SCRUBBED_ENV = ("TAR_OPTIONS",)


#: Out-of-band events a client may send on a channel; asyncssh raises them from read().
#: (A module constant, so a wrong name fails at import, not in the middle of a transfer.)
_OUT_OF_BAND = (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged)


class CommandRefused(Exception):
    """An exec command map entry refused its arguments; the message goes to the client's
    stderr and the channel exits with status 126."""


#: argv builder for an allowed exec program: receives the argument list after the program
#: name (already split with shlex) and returns the real argv to run, or raises CommandRefused.
CommandMap = Mapping[str, Callable[[list[str]], list[str]]]


#: Short options that take no argument.
_SHORT_FLAGS = {"c": "--create", "t": "--list", "v": "--verbose", "z": "--gzip"}
#: Short options that take one argument.
_SHORT_WITH_ARG = {"f": "--file", "C": "--directory"}
_LONG_FLAGS = {"--create", "--list", "--verbose", "--gzip", "--numeric-owner",
               "--no-recursion", "--sort=name"}
_LONG_WITH_ARG = {"--file", "--directory"}
_MODES = {"--create", "--list"}


def find_tar() -> str:
    """The real tar program: /bin/tar where it exists, else tar on PATH."""
    if os.path.exists("/bin/tar"):
        return "/bin/tar"
    found = shutil.which("tar")
    if found is None:
        raise FileNotFoundError("no tar program on this machine (apt-get install tar)")
    return found


class TarCommand:
    """The ``tar`` entry of a device's command map: whitelisted options, paths in the home.

    Call it with the arguments after ``tar`` (already shlex-split); it returns the argv to
    run (cwd = the home) or raises :class:`CommandRefused` saying which argument was refused
    and why. See the module docstring for what is accepted.
    """

    def __init__(self, home: Path, program: str | None = None) -> None:
        self.home = Path(os.path.realpath(home))
        self.program = program or find_tar()

    def __call__(self, args: list[str]) -> list[str]:
        tokens = list(args)
        if tokens and not tokens[0].startswith("-"):
            tokens[0] = "-" + tokens[0]  # old-style bundle: "tar cf - x" == "tar -cf - x"
        out: list[str] = []
        modes: set[str] = set()
        archive: str | None = None
        cwd = self.home
        only_files = False
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if only_files or token == "-" or not token.startswith("-"):
                out.append(self._checked_path(cwd, token, "file name"))
                continue
            if token == "--":
                only_files = True
                out.append(token)
                continue
            options: list[tuple[str, str | None]] = []
            if token.startswith("--"):
                name, eq, value = token.partition("=")
                if name in _LONG_WITH_ARG:
                    if not eq:
                        if i >= len(tokens):
                            raise CommandRefused(f"tar: {name} needs a value")
                        value = tokens[i]
                        i += 1
                    options.append((name, value))
                elif token in _LONG_FLAGS:
                    options.append((token, None))
                else:
                    raise CommandRefused(f"tar: option {token} is not offered on this device")
            else:
                bundle = token[1:]
                for pos, letter in enumerate(bundle):
                    if letter in _SHORT_FLAGS:
                        options.append((_SHORT_FLAGS[letter], None))
                    elif letter in _SHORT_WITH_ARG:
                        value = bundle[pos + 1:]
                        if not value:
                            if i >= len(tokens):
                                raise CommandRefused(f"tar: -{letter} needs a value")
                            value = tokens[i]
                            i += 1
                        options.append((_SHORT_WITH_ARG[letter], value))
                        break
                    else:
                        raise CommandRefused(f"tar: option -{letter} is not offered on this device")
            for name, value in options:
                if name in _MODES:
                    modes.add(name)
                if name == "--file":
                    if value != "-":
                        raise CommandRefused(
                            "tar: the archive must be '-' (it travels over the SSH channel)")
                    archive = value
                    out.extend(["--file", "-"])
                elif name == "--directory":
                    assert value is not None
                    checked = self._checked_path(cwd, value, "directory")
                    cwd = Path(os.path.realpath(cwd / checked))
                    out.extend(["--directory", checked])
                else:
                    out.append(name)
        if len(modes) != 1:
            raise CommandRefused("tar: give exactly one of -c (create) or -t (list); "
                                 "other modes are not offered on this device")
        if archive is None:
            out[:0] = ["--file", "-"]
        return [self.program, *out]

    def _checked_path(self, cwd: Path, value: str, what: str) -> str:
        if not value:
            raise CommandRefused(f"tar: empty {what}")
        if os.path.isabs(value):
            raise CommandRefused(f"tar: absolute {what} {value!r} refused: paths are relative "
                                 "to the device home")
        if ".." in Path(value).parts:
            raise CommandRefused(f"tar: {what} {value!r} refused: '..' is not allowed")
        resolved = os.path.realpath(cwd / value)
        home = str(self.home)
        if resolved != home and not resolved.startswith(home + os.sep):
            raise CommandRefused(f"tar: {what} {value!r} refused: it leads outside the "
                                 "device home")
        return value


def default_commands(home: Path) -> dict[str, Callable[[list[str]], list[str]]]:
    """The command map every simulated device offers: ``tar`` (read-only, in the home)."""
    return {"tar": TarCommand(home)}


def command_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a device command: ours, HOME = the device home, minus TAR_OPTIONS."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["HOME"] = str(home)
    env.update(extra or {})
    return env


async def serve_exec(process: asyncssh.SSHServerProcess, home: Path, commands: CommandMap,
                     env: Mapping[str, str],
                     running: set[asyncio.subprocess.Process]) -> None:
    """Serve one exec channel: pick the map entry, run its argv, stream, report the status.

    ``running`` holds the subprocess while it runs, so the server can kill it on close; if
    this coroutine is cancelled or the client goes away, the subprocess (and its process
    group) is killed and reaped before this returns.
    """
    try:
        status = await _run_command(process, home, commands, env, running)
    except Exception:  # a bug here must not leave the client waiting on an open channel
        log.exception("device command %r failed inside the SSH server", process.command)
        with contextlib.suppress(OSError, asyncssh.Error):
            process.stderr.write(b"edgeloop device: internal error in the SSH server\n")
        status = EXIT_SERVER_ERROR
    with contextlib.suppress(OSError, asyncssh.Error):
        # exit() sends the status at once, possibly ahead of buffered output: flush first.
        process.channel.set_write_buffer_limits(0, 0)
        await process.stdout.drain()
        await process.stderr.drain()
        process.channel.write_eof()  # as OpenSSH does: EOF, exit status, close
    process.exit(status)


async def _run_command(process: asyncssh.SSHServerProcess, home: Path, commands: CommandMap,
                       env: Mapping[str, str],
                       running: set[asyncio.subprocess.Process]) -> int:
    def tell(message: str) -> None:
        with contextlib.suppress(OSError, asyncssh.Error):
            process.stderr.write(f"edgeloop device: {message}\n".encode())

    try:
        words = shlex.split(process.command or "")
    except ValueError as exc:
        tell(f"cannot parse the command ({exc})")
        return EXIT_REFUSED
    if not words or words[0] not in commands:
        offered = ", ".join(sorted(commands)) or "none"
        tell(f"{words[0] if words else '(empty)'!r} is not a command this device offers "
             f"(offered: {offered}); nothing was run")
        return EXIT_NOT_OFFERED
    try:
        argv = commands[words[0]](words[1:])
    except CommandRefused as exc:
        tell(str(exc))
        return EXIT_REFUSED
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, cwd=home, env=dict(env), start_new_session=True)
    except OSError as exc:
        tell(f"cannot start {argv[0]}: {exc.strerror or exc}")
        return EXIT_NOT_OFFERED if isinstance(exc, FileNotFoundError) else EXIT_REFUSED
    running.add(proc)
    try:
        return await _stream(process, proc)
    finally:
        running.discard(proc)
        if proc.returncode is None:
            kill_process_group(proc)
            await proc.wait()


def kill_process_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a device command and whatever it started (it leads its own session)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _stream(process: asyncssh.SSHServerProcess, proc: asyncio.subprocess.Process) -> int:
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

    def client_gone(_: object = None) -> None:
        kill_process_group(proc)

    feeder = asyncio.ensure_future(_feed(process.stdin, proc.stdin))
    closed = asyncio.ensure_future(process.channel.wait_closed())
    closed.add_done_callback(client_gone)
    try:
        await asyncio.gather(_forward(proc.stdout, process.stdout, client_gone),
                             _forward(proc.stderr, process.stderr, client_gone))
        returncode = await proc.wait()
    finally:
        closed.remove_done_callback(client_gone)
        for task in (feeder, closed):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return returncode if returncode >= 0 else 128 - returncode


async def _feed(src: asyncssh.SSHReader, dst: asyncio.StreamWriter) -> None:
    """Client -> program stdin, until the client sends EOF or the program stops reading."""
    try:
        while True:
            try:
                chunk = await src.read(_CHUNK)
            except _OUT_OF_BAND:
                continue
            if not chunk:
                break
            dst.write(chunk)
            await dst.drain()
    except (OSError, asyncssh.Error):
        pass  # the program closed its stdin or the client went away: stop feeding
    finally:
        dst.close()


async def _forward(src: asyncio.StreamReader, dst: asyncssh.SSHWriter,
                   client_gone: Callable[[], None]) -> None:
    """Program stdout/stderr -> client, with the channel's flow control as back-pressure."""
    while chunk := await src.read(_CHUNK):
        try:
            dst.write(chunk)
            await dst.drain()
        except (OSError, asyncssh.Error):
            client_gone()
            return
