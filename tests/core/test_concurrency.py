"""Two processes writing to one SQLite project at once lose nothing and keep the chain whole."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from sqlalchemy import func, insert, select

from app.core.models import AuditEvent, Blob, Capture, Device
from app.core.project import Project

_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from app.core.project import open_project
    from app.core.models import Blob, Capture, CaptureReason
    root, device_id, tag, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with open_project(root) as project:
        for i in range(n):
            sha = f"{tag}{i:063d}"[-64:].replace("w", "a").replace("r", "b")
            with project.db.write() as s:
                s.add(Blob(sha256=sha, size=1))
                s.add(Capture(device_id=device_id, device_capture_id=f"{tag}-{i}",
                              blob_sha256=sha, captured_at=datetime.now(timezone.utc),
                              reason=CaptureReason.EVERY_NTH, edge_confidence=i / n))
                project.audit.append(s, actor=tag, action="capture_imported",
                                     object_type="capture", object_id=f"{tag}-{i}")
    """
)


def test_two_writer_processes_lose_nothing(sqlite_project: Project) -> None:
    with sqlite_project.db.write() as s:
        s.execute(insert(Device), [{"uid": "a"}, {"uid": "b"}])
    n = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(sqlite_project.root), str(dev), tag,
                          str(n)], stderr=subprocess.PIPE, text=True)
        for dev, tag in ((1, "w"), (2, "r"))
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with sqlite_project.db.read() as s:
        per_device = dict(s.execute(select(Capture.device_id, func.count()).group_by(Capture.device_id)).all())
        assert per_device == {1: n, 2: n}
        assert s.scalar(select(func.count()).select_from(Blob)) == 2 * n
        actors = dict(s.execute(select(AuditEvent.actor, func.count()).group_by(AuditEvent.actor)).all())
        assert actors["w"] == n and actors["r"] == n
        report = sqlite_project.audit.verify(s)
    assert report.ok, report.problems
