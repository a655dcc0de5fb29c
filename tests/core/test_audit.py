"""The audit chain verifies when intact and names the event that was edited, deleted or moved."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from app.core.audit import AuditTrail, write_csv, write_json
from app.core.project import Project


def _append_events(project: Project, n: int) -> None:
    with project.db.write() as s:
        for i in range(n):
            project.audit.append(
                s, actor="alice", action="label_set", object_type="capture", object_id=i,
                before={"class": "ok"}, after={"class": "scratch", "confidence": 0.25 + i / 100},
            )


def _verify(project: Project):  # type: ignore[no-untyped-def]
    with project.db.read() as s:
        return project.audit.verify(s)


def test_intact_chain_verifies(project: Project) -> None:
    _append_events(project, 5)
    report = _verify(project)
    assert report.ok, report.problems
    assert report.events == 6  # the first admin's creation + 5


def test_edited_event_is_named(project: Project) -> None:
    _append_events(project, 5)
    with project.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 4"))
    report = _verify(project)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "edited")]
    assert "event #4" in report.problems[0].message


def test_rewritten_event_with_recomputed_hash_is_still_caught(project: Project) -> None:
    _append_events(project, 5)
    with project.db.read() as s:
        from app.core.models import AuditEvent

        ev = s.get(AuditEvent, 3)
        from app.core.audit import event_hash

        forged = event_hash(ev.prev_hash, ev.at, "mallory", ev.action, ev.object_type,
                            ev.object_id, ev.before, ev.after)
    with project.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor='mallory', hash=:h WHERE seq=3"),
                     {"h": forged})
    report = _verify(project)
    assert not report.ok
    assert report.problems[0].seq == 3 and report.problems[0].kind == "edited"


def test_deleted_event_is_named(project: Project) -> None:
    _append_events(project, 5)
    with project.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    report = _verify(project)
    kinds = {(p.seq, p.kind) for p in report.problems}
    assert (4, "deleted") in kinds
    assert "between event #2 and event #4" in report.problems[0].message


def test_deleting_the_newest_events_is_caught_by_the_head(project: Project) -> None:
    _append_events(project, 5)
    with project.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 5"))
    report = _verify(project)
    assert [p.kind for p in report.problems] == ["deleted"]
    assert "after event #4" in report.problems[0].message


def test_reordered_events_are_named(project: Project) -> None:
    _append_events(project, 5)
    with project.db.engine.begin() as conn:  # swap events 3 and 4
        conn.execute(text("UPDATE audit_events SET seq = -1 WHERE seq = 3"))
        conn.execute(text("UPDATE audit_events SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_events SET seq = 4 WHERE seq = -1"))
    report = _verify(project)
    assert any(p.kind == "reordered" for p in report.problems)
    assert all(p.kind != "edited" for p in report.problems)
    moved = next(p for p in report.problems if p.kind == "reordered")
    assert "out of order" in moved.message


def test_exports_carry_every_event(sqlite_project: Project) -> None:
    import io

    _append_events(sqlite_project, 3)
    with sqlite_project.db.read() as s:
        csv_out, json_out = io.StringIO(), io.StringIO()
        assert write_csv(sqlite_project.audit.events(s), csv_out) == 4
        assert write_json(sqlite_project.audit.events(s), json_out) == 4
    rows = json.loads(json_out.getvalue())
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert csv_out.getvalue().splitlines()[0].startswith("seq,at,actor,action")
    assert csv_out.getvalue().count("\n") == 5


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(summary=st.dictionaries(st.text(max_size=10), json_values, max_size=5),
       actor=st.text(min_size=1, max_size=30))
def test_any_json_summary_survives_the_database_and_verifies(
    sqlite_project: Project, summary: dict, actor: str
) -> None:
    with sqlite_project.db.write() as s:
        sqlite_project.audit.append(
            s, actor=actor, action="x", object_type="t", object_id="1", after=summary
        )
    assert _verify(sqlite_project).ok


def test_audit_trail_is_usable_with_its_own_clock(sqlite_project: Project) -> None:
    from datetime import datetime, timedelta, timezone

    fixed = datetime(2030, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    trail = AuditTrail(clock=lambda: fixed)
    with sqlite_project.db.write() as s:
        event = trail.append(s, actor="a", action="b", object_type="c", object_id="d")
    assert event.at == fixed
    assert _verify(sqlite_project).ok
