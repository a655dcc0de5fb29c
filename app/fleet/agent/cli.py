"""``edgeloop-agent``: run the agent, and the control commands the workstation calls over SSH.

    edgeloop-agent --home DIR init --id cam-1 [--trust KEY.pub] [...]
    edgeloop-agent --home DIR run --source generator:7 [--schedule "none@0,blur@600"]
    edgeloop-agent --home DIR ctl status | reload | rollback | install DIR | ack ID | trust NAME

``ctl`` commands print JSON on stdout, errors on stderr, and exit 1 when refused.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from app.fleet.agent.activation import ReleaseManager
from app.fleet.agent.errors import AgentError
from app.fleet.agent.home import AgentConfig, AgentHome, CaptureConfig
from app.fleet.agent.runtime import self_test

DEFAULT_HOME = "/var/lib/edgeloop-agent"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeloop-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("EDGELOOP_AGENT_HOME", DEFAULT_HOME),
                        help="the agent's home folder (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

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
    run.add_argument("--size", type=int, default=128, help="generator image size")
    run.add_argument("--max-frames", type=int)
    run.add_argument("--no-advertise", action="store_true")

    ctl = sub.add_parser("ctl", help="control commands (the workstation calls these over SSH)")
    ctl_sub = ctl.add_subparsers(dest="action", required=True)
    ctl_sub.add_parser("status", help="print status, versions and spool as JSON")
    ctl_sub.add_parser("reload", help="ask the running agent to reload its release")
    ctl_sub.add_parser("rollback", help="switch back to the previous release")
    install = ctl_sub.add_parser("install", help="verify, activate and self-test a release")
    install.add_argument("path", type=Path)
    ack = ctl_sub.add_parser("ack", help="delete captures up to an id (committed upstream)")
    ack.add_argument("up_to")
    trust = ctl_sub.add_parser("trust", help="trust a signing public key read from stdin")
    trust.add_argument("name")
    return parser


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
    frames = open_source(args.source, schedule=args.schedule, size=args.size)
    agent = Agent(home, frames, advertise=not args.no_advertise, max_frames=args.max_frames)
    agent.run(stop)
    return {"stopped": True, "frames": agent.health.frames, "captures": agent.health.captures}


def _ctl(home: AgentHome, args: argparse.Namespace) -> dict[str, Any]:
    manager = ReleaseManager(
        home, lambda folder, manifest: self_test(folder, manifest, home.load_config().runtime)
    )
    if args.action == "status":
        return {"status": home.status(), "current": manager.current_version(),
                "previous": manager.previous_version(),
                "spool": home.open_spool(home.load_config()).stats().__dict__}
    if args.action == "ack":
        return {"acked": home.open_spool(home.load_config()).ack(args.up_to)}
    if args.action == "trust":
        home.add_trusted_key(args.name, sys.stdin.read())
        return {"trusted": args.name}
    if args.action == "reload":
        home.request_reload()
        return {"reload_requested": True, "current": manager.current_version()}
    # install and rollback change what `current` names; the running agent reloads it.
    result = manager.install(args.path) if args.action == "install" else manager.rollback()
    home.request_reload()
    return result.__dict__


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    home = AgentHome(Path(args.home))
    handlers = {"init": _init, "run": _run, "ctl": _ctl}
    try:
        result = handlers[args.command](home, args)
    except (AgentError, ValueError, OSError) as exc:
        print(f"edgeloop-agent: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
