"""Installing the agent on a device with ``install_agent``: how long each step takes.

The device is tests/support/install_device.py's: a real OpenSSH sshd on a loopback port of
this machine (so it is workstation and device at once, and both share its CPU), with the
one stand-in, ``systemctl``, which starts the unit's ``ExecStart`` in the background. The
bundle is the real agent bundle: ``--bundle`` (its ``.tar.gz`` or its folder), by default
build/installers/dist/edgeloop-agent.tar.gz, built with tests/support/agent_bundle.py under
bench/out/agent-bundle when missing.

Each repeat installs on a fresh device (a fresh project, a fresh home: ``init`` runs), then
installs the same bundle again on it (the version folder is reused, the agent restarted).
A step's time runs from its first progress report to the next step's; "connecting" is from
the call to the first report (host-key probe; for a folder also nothing else). The table
gives medians.

    .venv/bin/python -m bench.agent_install                    # 3 repeats, the .tar.gz
    .venv/bin/python -m bench.agent_install --folder --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app.core.progress import Progress
from app.core.project import init_project
from app.core.users import actor_named
from app.fleet.agent_install import install_agent
from app.fleet.context import FleetContext
from app.fleet.enrollment import Bootstrap
from bench.common import machine
from tests.support.install_device import install_device

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "build" / "installers" / "dist" / "edgeloop-agent.tar.gz"


class StageClock:
    """Times each stage from its first progress report to the next stage's first."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[tuple[str, float]] = [("connecting", self.start)]
        self.upload_s = 0.0

    def __call__(self, step: Progress) -> None:
        if step.stage != self.marks[-1][0]:
            self.marks.append((step.stage, time.perf_counter()))
        if step.stage == "uploading":
            self.upload_s = float(step.metrics.get("seconds", 0.0))

    def durations(self, end: float) -> dict[str, float]:
        times = [t for _, t in self.marks] + [end]
        out: dict[str, float] = {}
        for (stage, began), finished in zip(self.marks, times[1:]):
            out[stage] = out.get(stage, 0.0) + finished - began
        out["total"] = end - self.start
        return out


def _bundle(given: Path | None, folder: bool) -> Path:
    path = given or DEFAULT_BUNDLE
    if given is None and not path.exists():
        from tests.support.agent_bundle import agent_bundle

        built = agent_bundle(ROOT / "bench" / "out" / "agent-bundle")
        path = built.with_name(built.name + ".tar.gz")
    if folder and path.name.endswith(".tar.gz"):
        path = path.with_name(path.name[: -len(".tar.gz")])
    return path


def one_repeat(bundle: Path) -> tuple[dict[str, float], dict[str, float], int, float]:
    """(first install's stage times, reinstall's, archive bytes, upload seconds)."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        folder = Path(tmp)
        project = init_project(folder / "project", admin="admin")
        try:
            ctx, admin = FleetContext.of(project), actor_named(project.db, "admin")
            with install_device(folder) as device:
                runs = []
                for _ in range(2):
                    clock = StageClock()
                    result = install_agent(ctx, admin, device.target(), bundle,
                                           device.options(),
                                           bootstrap=Bootstrap(key_file=device.key_file),
                                           progress=clock)
                    runs.append((clock.durations(time.perf_counter()), clock.upload_s))
                return runs[0][0], runs[1][0], result.uploaded_bytes, runs[0][1]
        finally:
            project.close()


def _table(title: str, samples: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    stages = list(dict.fromkeys(s for sample in samples for s in sample))
    for stage in stages:
        values = [sample.get(stage, 0.0) for sample in samples]
        print(f"  {stage:<28} {statistics.median(values):7.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent_install",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="the agent bundle (.tar.gz or folder)")
    parser.add_argument("--folder", action="store_true",
                        help="install from the bundle folder (archived on the fly)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    bundle = _bundle(args.bundle, args.folder)
    firsts, agains, uploads = [], [], []
    size = 0
    for _ in range(args.repeats):
        first, again, size, upload_s = one_repeat(bundle)
        firsts.append(first)
        agains.append(again)
        uploads.append(upload_s)
    print(f"machine: {machine()}")
    print(f"bundle: {bundle} ({size / 2**20:.1f} MiB uploaded), {args.repeats} repeats")
    rate = size / statistics.median(uploads) / 2**20 if uploads and min(uploads) > 0 else 0
    print(f"upload: {rate:.0f} MiB/s (median over the first installs)")
    _table("first install on a fresh device (medians)", firsts)
    _table("same bundle again (folder reused, agent restarted; medians)", agains)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
