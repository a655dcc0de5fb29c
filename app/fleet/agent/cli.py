"""``edgeloop-agent``: run the agent, and the control commands the workstation calls over SSH.

    edgeloop-agent --home DIR init --id cam-1 [--trust KEY.pub] [...]
    edgeloop-agent --home DIR run --source generator:7 [--schedule "none@0,blur@600"]
    edgeloop-agent --home DIR ctl status [--drift-since HOUR] | reload | rollback | install DIR
                                  | ack ID | trust NAME | authorize | receive VERSION
    edgeloop-agent --home DIR ctl pull [--after ID] [--limit N] [--max-bytes B]
    edgeloop-agent --selfcheck

``--selfcheck`` loads every part the agent needs (ONNX Runtime, OpenVINO, OpenCV, zeroconf,
cryptography, the control commands) and exits 0 only when all work (app/fleet/agent/selfcheck.py).

``ctl`` commands print JSON on stdout, errors on stderr, and exit 1 when refused; ``pull``
streams a tar archive on stdout and prints its result on stderr (docs/device-protocol.md).
Modules that load OpenCV, the inference runtimes or cryptography are imported only by the
commands that need them, so the frequent ``ctl pull`` and ``ctl status`` start quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import app
from app.fleet.agent.errors import AgentError
from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.pull import ACK_TIMEOUT_S, DEFAULT_LIMIT, DEFAULT_MAX_BYTES, PullLimits, pull
from app.fleet.agent.spool import Spool, held_captures

CTL_LOCK_TIMEOUT_S = 30.0

if TYPE_CHECKING:
    from app.fleet.agent.activation import ReleaseManager

DEFAULT_HOME = "/var/lib/edgeloop-agent"
Handler = Callable[[AgentHome, argparse.Namespace], "dict[str, Any] | None"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeloop-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("EDGELOOP_AGENT_HOME", DEFAULT_HOME),
                        help="the agent's home folder (default: %(default)s)")
    parser.add_argument("--selfcheck", action="store_true",
                        help="check that every part the agent needs loads and works, one line "
                             "each; exit 0 only if all do")
    parser.add_argument("--selfcheck-model", type=Path, metavar="PATH", help=argparse.SUPPRESS)
    # Not required: --selfcheck alone is a complete command line; main() asks for one otherwise.
    sub = parser.add_subparsers(dest="command")

    init = sub.add_parser("init", help="create the home folder and config.json")
    init.add_argument("--id", required=True, dest="device_id")
    init.add_argument("--name", default="")
    init.add_argument("--hw", default="generic", dest="hardware")
    init.add_argument("--trust", type=Path, help="a model-signing public key file to trust")
    init.add_argument("--ssh-port", type=int, default=22)
    init.add_argument("--interfaces", default="", help="comma-separated IPs (default: all)")
    init.add_argument("--fps", type=float, default=5.0)
    init.add_argument("--quota-mb", type=float, default=256.0)
    init.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default="auto")
    init.add_argument("--no-capture", action="store_true", help="capture nothing")
    init.add_argument("--low-confidence", type=float, default=0.6)
    init.add_argument("--random-rate", type=float, default=0.0, help="opt-in random sampling")
    init.add_argument("--every-nth", type=int, default=0)

    run = sub.add_parser("run", help="run the inference and capture loop")
    run.add_argument("--source", required=True,
                     help="generator[:SEED] | folder:PATH | video:PATH | camera:INDEX")
    run.add_argument("--schedule", help="drift schedule for the generator, e.g. none@0,blur@600")
    run.add_argument("--scenario-file", type=Path, metavar="PATH",
                     help="generator only: while this file exists, its scenario (e.g. "
                          "lighting or blur:0.5) overrides the schedule; re-read when changed")
    run.add_argument("--size", type=int, default=128, help="generator image size")
    run.add_argument("--max-frames", type=int)
    run.add_argument("--no-advertise", action="store_true")

    ctl = sub.add_parser("ctl", help="control commands (the workstation calls these over SSH)")
    ctl_sub = ctl.add_subparsers(dest="action", required=True)
    status = ctl_sub.add_parser("status", help="print status, versions and spool as JSON")
    status.add_argument("--drift-since", metavar="HOUR",
                        help="add the hourly drift records after HOUR (YYYYmmddHH)")
    ctl_sub.add_parser("reload", help="ask the running agent to reload its release")
    ctl_sub.add_parser("rollback", help="switch back to the previous release")
    install = ctl_sub.add_parser("install", help="verify, activate and self-test a release")
    install.add_argument("path", type=Path)
    ack = ctl_sub.add_parser("ack", help="delete captures up to an id (committed upstream)")
    ack.add_argument("up_to")
    trust = ctl_sub.add_parser("trust", help="trust a signing public key read from stdin")
    trust.add_argument("name")
    _add_transfer_commands(ctl_sub)
    return parser


def _add_transfer_commands(ctl_sub: Any) -> None:
    """The commands that move files over the SSH channel's stdin and stdout."""
    pull = ctl_sub.add_parser("pull", help="stream new captures as a tar archive, then read "
                                           "one JSON ack line from stdin")
    pull.add_argument("--after", help="send only captures with a greater id")
    pull.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                      help="at most this many captures (default: %(default)s)")
    pull.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                      help="about this many bytes, at least one capture (default: %(default)s)")
    pull.add_argument("--ack-timeout", type=float, default=ACK_TIMEOUT_S,
                      help="seconds to wait for the ack line (default: %(default)s)")
    receive = ctl_sub.add_parser("receive", help="read a release as a tar archive from stdin "
                                                 "and install it")
    receive.add_argument("version")
    ctl_sub.add_parser("authorize", help="add the OpenSSH public key line read from stdin to "
                                         "the authorized_keys file")


def _init(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    config = AgentConfig(
        device_id=args.device_id, name=args.name, hardware=args.hardware, fps=args.fps,
        runtime=args.runtime, quota_mb=args.quota_mb, ssh_port=args.ssh_port,
        interfaces=[ip for ip in args.interfaces.split(",") if ip] or None,
        capture=CaptureConfig(enabled=not args.no_capture, low_confidence=args.low_confidence,
                              random_rate=args.random_rate, every_nth=args.every_nth),
    )
    AgentConfig.from_json(config.to_json())  # the same checks a loaded config gets
    home.create(config)
    if args.trust:
        home.add_trusted_key("project", args.trust.read_text())
    return {"home": str(home.root), "device_id": args.device_id}


def _run(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    from app.fleet.agent.loop import Agent
    from app.fleet.agent.sources import open_source

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    frames = open_source(args.source, schedule=args.schedule, size=args.size,
                         scenario_file=args.scenario_file)
    agent = Agent(home, frames, advertise=not args.no_advertise, max_frames=args.max_frames)
    agent.run(stop)
    return {"stopped": True, "frames": agent.health.frames, "captures": agent.health.captures}


def _release_manager(home: AgentHome) -> ReleaseManager:
    from app.fleet.agent.activation import ReleaseManager

    def run_self_test(folder: Path, manifest: Any) -> object:
        # OpenCV and the inference runtimes load only when a model is actually tested.
        from app.fleet.agent.runtime import self_test

        return self_test(folder, manifest, home.load_config().runtime)

    return ReleaseManager(home, run_self_test)


def _status(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    manager = _release_manager(home)
    result: dict[str, Any] = {
        "status": home.status(), "current": manager.current_version(),
        "previous": manager.previous_version(),
        "spool": _spool(home).stats().__dict__,
        "agent": app.__version__, "home": str(home.root),
        "device_id": _configured_device_id(home),
        "held": held_captures(home.quarantine),
    }
    if args.drift_since is not None:
        result["drift"], unreadable = home.drift_records(args.drift_since)
        if unreadable:
            result["drift_unreadable"] = unreadable
    return result


def _spool(home: AgentHome) -> Spool:
    # A control command must answer: if the loop is stuck holding the lock, say so rather
    # than hang until the workstation's own timeout.
    return home.open_spool(home.load_config(), lock_timeout=CTL_LOCK_TIMEOUT_S)


def _configured_device_id(home: AgentHome) -> str | None:
    # The loop writes device_id into status.json only once it runs; enrollment must be able to
    # check the identity of a device whose loop has not started yet.
    try:
        return home.load_config().device_id
    except (OSError, AgentError):
        return None


def _ack(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    return {"acked": _spool(home).ack(args.up_to)}


def _trust(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    home.add_trusted_key(args.name, sys.stdin.read())
    return {"trusted": args.name}


def _reload(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    home.request_reload()
    return {"reload_requested": True, "current": _release_manager(home).current_version()}


def _install_from(home: AgentHome, folder: Path) -> dict[str, Any]:
    result = _release_manager(home).install(folder)
    home.request_reload()  # the running agent reloads what `current` now names
    return result.__dict__


def _install(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    return _install_from(home, args.path)


def _rollback(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    result = _release_manager(home).rollback()
    home.request_reload()
    return result.__dict__


def _receive(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    from app.fleet.agent.receive import receive_release

    return _install_from(home, receive_release(sys.stdin.buffer, home.inbox, args.version))


def _authorize(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    from app.fleet.agent.authorize import authorize_key, authorized_keys_path

    path = authorized_keys_path(home.load_config().authorized_keys, home.root)
    return {"authorized": authorize_key(path, sys.stdin.read(64 * 1024))}


def _pull(home: AgentHome, args: argparse.Namespace) -> None:
    """Stdout carries the archive, so the result goes to stderr and main prints nothing."""
    limits = PullLimits(args.after, args.limit, args.max_bytes)
    spool = _spool(home)
    try:
        result = pull(spool, home.quarantine, sys.stdout.buffer, sys.stdin.buffer, limits,
                      args.ack_timeout)
    except BrokenPipeError:
        # Point stdout at /dev/null so the exit-time flush does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise AgentError("pull: the workstation closed the connection during the archive; "
                         "nothing deleted") from None
    print(json.dumps(result, sort_keys=True), file=sys.stderr, flush=True)


CTL: dict[str, Handler] = {
    "status": _status, "ack": _ack, "trust": _trust, "reload": _reload, "install": _install,
    "rollback": _rollback, "receive": _receive, "authorize": _authorize, "pull": _pull,
}


def _ctl(home: AgentHome, args: argparse.Namespace) -> dict[str, Any] | None:
    return CTL[args.action](home, args)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.selfcheck:
        from app.fleet.agent.selfcheck import MODEL, selfcheck

        return selfcheck(args.selfcheck_model or MODEL)
    if args.command is None:
        parser.error("a command is required (init, run, ctl), or --selfcheck")
    home = AgentHome(Path(args.home))
    handlers: dict[str, Handler] = {"init": _init, "run": _run, "ctl": _ctl}
    try:
        result = handlers[args.command](home, args)
    except (AgentError, ValueError, OSError) as exc:
        print(f"edgeloop-agent: {exc}", file=sys.stderr)
        return 1
    if result is not None:  # None: the handler wrote its own output (ctl pull)
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
