"""``edgeloop labels`` and ``edgeloop classes`` as a user runs them: the real console script
in a subprocess, on a project with generated captures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.core.dataset_import import import_generated
from app.core.models import Role
from app.core.project import init_project
from app.core.users import actor_named, add_user
from tests.test_cli import edgeloop


def _current(root: Path, capture_id: int) -> list[tuple[str, str | None, str, int]]:
    """(author, class, source, boxes) of the capture's current annotations, by id."""
    with sqlite3.connect(root / "project.db") as conn:
        return conn.execute(
            "SELECT u.name, c.name, a.source, (SELECT count(*) FROM annotation_boxes b "
            "WHERE b.annotation_id = a.id) FROM annotations a JOIN users u ON u.id = a.author_id "
            "LEFT JOIN label_classes c ON c.id = a.class_id WHERE a.capture_id = ? "
            "AND NOT a.superseded ORDER BY a.id", (capture_id,)).fetchall()


def test_labels_conflicts_resolution_and_classes(tmp_path: Path) -> None:
    root = tmp_path / "p"
    p = ["--project", str(root)]
    # Set up in process (each command costs a Python start); what is tested runs as a user would.
    with init_project(root, admin="admin") as project:
        admin = actor_named(project.db, "admin")
        import_generated(project.db, project.blobs, project.audit, admin, 4, size=64)
        for name, role in (("ann", Role.ANNOTATOR), ("eng", Role.ENGINEER)):
            add_user(project.db, project.audit, admin, name, role)
    with sqlite3.connect(root / "project.db") as conn:
        imported = conn.execute("SELECT c.name FROM annotations a JOIN label_classes c "
                                "ON c.id = a.class_id WHERE a.capture_id = 1").fetchone()[0]
    mine = "crack" if imported != "crack" else "scratch"

    done = edgeloop("labels", "set", "1", mine, "--box", "3,4,20,10.5," + mine,
                    "--box", "0,0,8,8,ok", *p, user="ann")
    assert done.returncode == 0, done.stderr
    assert f"Labelled capture 1 as {mine} with 2 box(es)" in done.stdout
    bad = edgeloop("labels", "set", "1", mine, "--box", "3,4,-2,10," + mine, *p, user="ann")
    assert bad.returncode == 2 and "width and height must be above 0" in bad.stderr
    assert "Traceback" not in bad.stderr
    # The import's label (one box per defect, none for "ok") stays beside ann's.
    assert _current(root, 1) == [("admin", imported, "imported", int(imported != "ok")),
                                 ("ann", mine, "human", 2)]

    listed = edgeloop("labels", "conflicts", *p)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1]
    assert row.split()[0] == "1" and f"admin: {imported}" in row and f"ann: {mine} [2 box(es)]" in row
    refused = edgeloop("labels", "resolve", "1", mine, *p, user="ann")
    assert refused.returncode == 2 and "ann is an annotator and may not train" in refused.stderr
    resolved = edgeloop("labels", "resolve", "1", mine, *p, user="eng")
    assert resolved.returncode == 0, resolved.stderr
    assert _current(root, 1) == [("eng", mine, "human", 0)]

    agreement = edgeloop("labels", "agreement", *p)
    assert agreement.returncode == 0, agreement.stderr
    lines = agreement.stdout.splitlines()
    assert lines[0].split() == ["ANNOTATOR", "SHARED", "AGREED", "SHARE"]
    assert lines[1].split() == ["admin", "1", "0", "0%"]
    assert lines[2].split() == ["ann", "1", "0", "0%"]

    assert edgeloop("classes", "add", "dent", *p, user="eng").returncode == 0
    assert edgeloop("classes", "rename", "dent", "dint", *p, user="eng").returncode == 0
    merged = edgeloop("classes", "merge", "dint", "crack", *p, user="eng")
    assert merged.returncode == 0, merged.stderr
    assert "Merged dint into crack: 0 label(s) restated" in merged.stdout
    classes = edgeloop("classes", "list", *p)
    assert classes.returncode == 0, classes.stderr
    rows = {line.split()[1]: line.split() for line in classes.stdout.splitlines()[1:]}
    assert rows["dint"][2] == "retired" and rows["crack"][4:] == ["dent,", "dint"]
