"""The audit report, from a real lineage to the PDF's text: the data, run, model, gate,
approval and deployments of each version; only the period's events; hostile text that
latin-1 fonts cannot draw; the export refused to a role without the permission and audited
otherwise.

The lineage is built once per module with the real services (tests/support/lineage.py):
generated captures, a frozen dataset version, a one-epoch training run and a fine-tune of it,
ONNX compression, the gate, approval, and a rollout started to two enrolled devices whose
deployment outcomes are then written onto the rows (running it needs devices over SSH).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from app.core.audit_export import ExportFormat, export_audit
from app.core.audit_pdf import latin1_safe, write_audit_pdf
from app.core.audit_report import (
    Approval, AuditReportDocument, DeploymentLine, ModelLineage, build_audit_report,
)
from app.core.errors import InvalidInput, PermissionDenied
from app.core.models import AuditEvent
from app.core.project import Project, init_project
from app.core.roles import Role
from app.core.triggers import request_run
from app.core.users import actor_named, add_user
from tests.conftest import FakeClock
from tests.support.lineage import DEVICES, Lineage, build_lineage

SINCE = datetime(2026, 11, 2, tzinfo=timezone.utc)
UNTIL = datetime(2026, 11, 10, tzinfo=timezone.utc)


@dataclasses.dataclass
class Built:
    project: Project
    lineage: Lineage


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """Before the period: a user added. In it: the lineage. After it: a loop run requested."""
    clock = FakeClock()  # 2026-11-01 08:00 UTC
    project = init_project(tmp_path_factory.mktemp("report") / "p", admin="admin",
                           clock=clock, name="Line 3 inspection")
    admin = actor_named(project.db, "admin")
    add_user(project.db, project.audit, admin, "early-bird", Role.ANNOTATOR)
    clock.advance(days=3)
    lineage = build_lineage(project)
    clock.advance(days=10)
    request_run(project.db, project.audit, admin, "late-request", clock=clock)
    yield Built(project, lineage)
    project.close()


def report_of(built: Built) -> AuditReportDocument:
    p = built.project
    return build_audit_report(p.db, p.audit, SINCE, UNTIL, p.clock, project_name=p.name,
                              prepared_by="admin")


def pdf_text(path: Path) -> tuple[str, int]:
    reader = PdfReader(path)
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def test_the_report_holds_each_versions_lineage(built: Built) -> None:
    report = report_of(built)
    trained, tuned = built.lineage.trained, built.lineage.fine_tuned
    assert [m.version for m in report.lineage] == [trained.version, tuned.version]
    first, second = report.lineage
    assert first.dataset is not None
    assert first.dataset.ref == built.lineage.dataset == "inspection@1"
    sizes = dict(first.dataset.split_sizes)
    assert set(sizes) == {"train", "val", "test"} and sum(sizes.values()) == 120
    assert all(sizes.values())
    run = first.training
    assert run is not None and run.run_id == trained.run_id and run.status == "succeeded"
    assert run.started_by == "admin" and run.parent_model is None
    assert run.started_at is not None and run.finished_at is not None
    assert ("epochs", "1") in run.hyperparameters and ("augment", "none") in run.hyperparameters
    assert first.test_accuracy == trained.metrics["test_accuracy"]
    assert first.gate.startswith("passed on inspection@1") and first.status == "deployed"
    assert [(a.by, a.note) for a in first.approvals] == [("admin", "first release for line 1")]
    assert {(d.rollout_id, d.device_uid, d.state) for d in first.deployments} == {
        (built.lineage.rollout_id, DEVICES[0], "healthy"),
        (built.lineage.rollout_id, DEVICES[1], "failed")}
    assert second.training is not None and second.training.parent_model == trained.version
    assert second.gate == "not run" and second.approvals == () and second.deployments == ()
    assert report.chain_intact and report.chain_events > len(report.events)


def test_only_the_periods_events_are_in_the_report(built: Built) -> None:
    report = report_of(built)
    assert all(SINCE <= e.at < UNTIL for e in report.events)
    actions = [e.action for e in report.events]
    assert "model.approve" in actions and "rollout.start" in actions
    assert "user_added" not in actions and "settings.change" not in actions
    approve = next(e for e in report.events if e.action == "model.approve")
    assert approve.object == f"model_version {built.lineage.trained.version}"
    assert "status: gate_passed -> approved" in approve.details


def test_the_pdf_shows_the_lineage_and_the_periods_events(built: Built, tmp_path: Path) -> None:
    p = built.project
    out = tmp_path / "audit.pdf"
    count = export_audit(p.db, p.audit, actor_named(p.db, "admin"), ExportFormat.PDF, out,
                         since=SINCE, until=UNTIL, project_name=p.name, clock=p.clock)
    report = report_of(built)
    assert count == len(report.events)
    text, pages = pdf_text(out)
    first = report.lineage[0]
    sizes = dict(first.dataset.split_sizes)  # type: ignore[union-attr]
    approval = first.approvals[0].at.strftime("%Y-%m-%d %H:%M:%S")
    for line in ("Audit report", "Line 3 inspection",
                 "Period 2026-11-02 00:00:00 UTC to 2026-11-10 00:00:00 UTC (excluded)",
                 "Audit trail intact", "edge-1  (edge model, deployed)",
                 "Dataset version inspection@1, frozen",
                 f"Split sizes train {sizes['train']}, val {sizes['val']}, test {sizes['test']}",
                 f"Training run #{first.training.run_id} succeeded",  # type: ignore[union-attr]
                 "by admin", "Fine-tuned from edge-1", f"Test accuracy {first.test_accuracy:.3f}",
                 "Gate passed on inspection@1",
                 f"Approvals admin, {approval}: first release for line 1",
                 f"#{built.lineage.rollout_id} cam-line-1 healthy",
                 f"#{built.lineage.rollout_id} cam-line-2 failed",
                 "edge-2  (edge model, candidate)", "model.approve", "rollout.start",
                 f"Page {pages} of {pages}"):
        assert line in text, line
    # Outside the period: the user added before it and the run requested after it.
    assert "early-bird" not in text and "late-request" not in text
    assert "settings.change" not in text
    with p.db.read() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert (last.action, last.object_id) == ("audit_exported", str(out))
    assert last.after["format"] == "pdf" and last.after["events"] == count
    assert last.after["since"] == SINCE.isoformat()


def test_a_pdf_goes_to_a_file_and_only_for_roles_that_may_export(built: Built,
                                                                  tmp_path: Path) -> None:
    p = built.project
    admin = actor_named(p.db, "admin")
    with pytest.raises(InvalidInput, match="give a file"):
        export_audit(p.db, p.audit, admin, ExportFormat.PDF, io.StringIO(),
                     project_name=p.name, clock=p.clock)
    with pytest.raises(PermissionDenied):
        export_audit(p.db, p.audit, actor_named(p.db, "early-bird"), ExportFormat.PDF,
                     tmp_path / "no.pdf", project_name=p.name, clock=p.clock)
    assert not (tmp_path / "no.pdf").exists()


def test_hostile_text_is_drawn_safely(sqlite_project: Project, tmp_path: Path) -> None:
    p = sqlite_project
    hostile = "caf\u00e9 \u2014 \u2713 \u65e5\u672c\u8a9e \U0001f525 \x00\x07 " + "A" * 3000
    request_run(p.db, p.audit, actor_named(p.db, "admin"), hostile)
    report = build_audit_report(p.db, p.audit, None, None, p.clock,
                                project_name=f"Proj \u0394 {hostile}", prepared_by="admin")
    long_word = "\u00fc" + "z" * 5000
    model = ModelLineage(
        version=f"edge-\u03b1-{long_word}", kind="edge", status="approved",
        created_at=p.clock(), test_accuracy=None, gate=f"FAILED: {hostile} {hostile}",
        dataset=None, training=None,
        approvals=(Approval(f"\u6771\u4eac-{long_word}", p.clock(), hostile),),
        deployments=(DeploymentLine(None, f"cam-\u2603-{long_word}", "failed", p.clock(),
                                    hostile),))
    out = tmp_path / "hostile.pdf"
    write_audit_pdf(dataclasses.replace(report, lineage=(model,) * 3), out)
    text, pages = pdf_text(out)
    assert "caf\u00e9 - ? ??? ?" in text  # latin-1 kept, typography spelled, the rest "?"
    assert "settings.change" in text and "edge-?-\u00fczzz" in text
    assert "\u2713" not in text and "\u65e5" not in text
    assert pages >= 3 and f"Page {pages} of {pages}" in text


def test_latin1_safe_spells_typography_and_replaces_the_rest() -> None:
    assert latin1_safe("a\u2014b \u201cq\u201d \u2026 \u2265 \u00e9\u00df \u2713\x00\tz") == \
        "a-b \"q\" ... >= \u00e9\u00df ?  z"
