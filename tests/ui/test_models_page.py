"""The Models page over real model versions: scores per format, confusion matrix, comparison.

One small project for the module (60 + 20 generated 64 px scenes): edge-1 is trained on
inspection@1, compressed to ONNX and ONNX INT8 and put through the gate with a size budget it
cannot meet (which evaluates every format and stores a failed verdict); edge-2 is fine-tuned
from edge-1 on inspection@2 and evaluated from the page's Evaluate button. What the page shows
is checked against what the services stored in the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt

from app.core.augment import AugmentConfig
from app.core.compress_service import CompressRequest, compress_model
from app.core.dataset_import import import_generated
from app.core.datasets import freeze_version
from app.core.gate import GateBudget, run_gate
from app.core.model_comparison import Outcome
from app.core.model_store import find_model
from app.core.models import ArtifactFormat, AuditEvent, Role
from app.core.project import Project, init_project
from app.core.train_service import TrainRequest, train_model
from app.core.training import TrainConfig
from app.core.users import actor_named, add_user
from app.ui.pages.base import PageContext
from app.ui.pages.models import ModelsPage
from app.ui.widgets.model_comparison import OUTCOME_COLOURS

ONE_EPOCH = TrainConfig(epochs=1, augment=AugmentConfig.preset("none"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    p = init_project(tmp_path_factory.mktemp("models-page") / "p", admin="admin")
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    import_generated(p.db, p.blobs, p.audit, admin, 60, seed=1, size=64)
    freeze_version(p.db, p.audit, admin)
    train_model(p.db, p.blobs, p.audit, admin,
                TrainRequest(size=64, width=0.5, config=ONE_EPOCH), runs_dir=p.root / "runs")
    compress_model(p.db, p.blobs, p.audit, admin, "edge-1",
                   CompressRequest(formats=(ArtifactFormat.ONNX_INT8,), calibration_images=20))
    run_gate(p.db, p.blobs, p.audit, admin, "edge-1", GateBudget(max_size_bytes=1024),
             latency_repeats=5)
    import_generated(p.db, p.blobs, p.audit, admin, 20, seed=1, size=64, start_index=60)
    freeze_version(p.db, p.audit, admin)
    train_model(p.db, p.blobs, p.audit, admin,
                TrainRequest(size=64, width=0.5, parent="edge-1", config=ONE_EPOCH),
                runs_dir=p.root / "runs")
    yield p
    p.close()


def stored(project: Project, version: str) -> dict[str, dict[str, Any]]:
    """What the evaluation service stored per format, read from the database."""
    with project.db.read() as session:
        return {a.format.value: dict(a.metrics or {}) | {"size": a.size}
                for a in find_model(session, version).artifacts}


def open_page(qtbot, project: Project, runner,  # type: ignore[no-untyped-def]
              user: str = "admin") -> ModelsPage:
    page = ModelsPage(PageContext(project, actor_named(project.db, user), runner))
    qtbot.addWidget(page)
    page.resize(1100, 700)
    page.show()
    qtbot.waitExposed(page)
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=10000)
    return page


def click_row(qtbot, page: ModelsPage, version: str,  # type: ignore[no-untyped-def]
              modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    row = [m.version for m in page.model.rows].index(version)
    rect = page.table.visualRect(page.model.index(row, 0))
    qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton, modifier,
                     QPoint(rect.center()))


def cell(model, row: int, column: int,  # type: ignore[no-untyped-def]
         role: Qt.ItemDataRole = Qt.ItemDataRole.DisplayRole):
    return model.data(model.index(row, column), role)


def outcome(difference: float, higher_is_better: bool) -> Outcome:
    """What the page should say of a (rounded) difference, worked out by hand."""
    if difference == 0:
        return Outcome.SAME
    return Outcome.BETTER if (difference > 0) == higher_is_better else Outcome.WORSE


def test_a_version_shows_its_stored_scores_per_format_and_its_confusion_matrix(  # type: ignore[no-untyped-def]
        qtbot, project: Project, runner) -> None:
    page = open_page(qtbot, project, runner)
    assert [m.version for m in page.model.rows] == ["edge-2", "edge-1"]  # newest first
    assert cell(page.model, 0, 4) == "inspection@2" and cell(page.model, 0, 5) == "edge-1"
    click_row(qtbot, page, "edge-1")

    text = page.details.toPlainText()
    assert text.startswith("edge-1 (edge): gate_failed\nTrained on inspection@1, from scratch")
    assert "Gate: FAILED on inspection@1 against no baseline" in text
    assert "edge-1 onnx_int8 is" in text and "(budget 1,024 bytes)" in text

    # One row per artifact, each with the numbers the evaluation stored.
    saved = stored(project, "edge-1")
    formats = page.formats
    assert [cell(formats, r, 0) for r in range(formats.rowCount())] == ["torch", "onnx",
                                                                         "onnx_int8"]
    for row, name in enumerate(["torch", "onnx", "onnx_int8"]):
        s = saved[name]
        assert cell(formats, row, 3) == f"{s['size'] / 1e6:.3f}"
        assert cell(formats, row, 4) == f"{s['accuracy']:.3f}"
        assert cell(formats, row, 6) == f"{s['latency_p50_ms']:.2f}"
        assert cell(formats, row, 7) == f"{s['latency_p99_ms']:.2f}"
        assert cell(formats, row, 8) == str(s["count"])
        assert cell(formats, row, 9) == "inspection@1"
    assert [cell(formats, r, 1) for r in range(3)] == ["FP32", "FP32", "INT8"]
    assert [cell(formats, r, 2) for r in range(3)] == ["PyTorch", "ONNX Runtime",
                                                       "ONNX Runtime"]
    assert cell(formats, 0, 5) == "reference"
    int8_delta = saved["onnx_int8"]["accuracy"] - saved["torch"]["accuracy"]
    assert cell(formats, 2, 5) == f"{int8_delta:+.3f}"

    # The confusion matrix of the format chosen in the formats table: the stored counts.
    page.formats_table.selectRow(2)
    page.tabs.setCurrentIndex(1)
    assert page.confusion_format.currentText() == "onnx_int8"
    matrix, labels = saved["onnx_int8"]["confusion"], saved["onnx_int8"]["labels"]
    shown = page.confusion.matrix
    assert shown.rowCount() == shown.columnCount() == len(labels)
    assert [[int(cell(shown, i, j)) for j in range(len(labels))]
            for i in range(len(labels))] == matrix
    assert [shown.headerData(i, Qt.Orientation.Vertical) for i in range(len(labels))] == labels
    row_of_most = max(range(len(labels)), key=lambda i: sum(matrix[i]))
    share = 100 * matrix[row_of_most][row_of_most] / sum(matrix[row_of_most])
    tooltip = cell(shown, row_of_most, row_of_most, Qt.ItemDataRole.ToolTipRole)
    assert (f"{matrix[row_of_most][row_of_most]} image(s), {share:.1f}% of the "
            f"{sum(matrix[row_of_most])}") in tooltip
    darkest = max((n, i, j) for i, r in enumerate(matrix) for j, n in enumerate(r))
    lightest = min((n, i, j) for i, r in enumerate(matrix) for j, n in enumerate(r))
    assert (cell(shown, darkest[1], darkest[2], Qt.ItemDataRole.BackgroundRole).lightness()
            < cell(shown, lightest[1], lightest[2], Qt.ItemDataRole.BackgroundRole).lightness())
    per_class = saved["onnx_int8"]["per_class"]
    assert [(cell(page.classes, r, 0), cell(page.classes, r, 2))
            for r in range(page.classes.rowCount())] == [
        (name, f"{c['recall']:.3f}") for name, c in per_class.items()]


def test_evaluate_from_the_page_then_compare_two_versions(  # type: ignore[no-untyped-def]
        qtbot, project: Project, runner) -> None:
    page = open_page(qtbot, project, runner)
    click_row(qtbot, page, "edge-2")
    assert cell(page.formats, 0, 4) == "not scored"
    assert page.evaluate_button.isEnabled()
    qtbot.mouseClick(page.evaluate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "scored on the test split" in page.status.text(), timeout=60000)
    assert page.status.text() == "edge-2 scored on the test split of inspection@2: torch"
    qtbot.waitUntil(lambda: cell(page.formats, 0, 4) != "not scored", timeout=10000)
    saved = stored(project, "edge-2")["torch"]
    assert cell(page.formats, 0, 4) == f"{saved['accuracy']:.3f}"
    assert page.selected().version == "edge-2"  # the refresh kept the selection
    with project.db.read() as session:
        assert session.query(AuditEvent).filter_by(action="model.evaluate",
                                                    object_id="edge-2").count() == 1

    # Click edge-1, Ctrl-click edge-2: the two are compared, edge-2 (current) against edge-1.
    click_row(qtbot, page, "edge-1")
    assert page.tabs.currentIndex() == 0
    click_row(qtbot, page, "edge-2", Qt.KeyboardModifier.ControlModifier)
    assert page.selected().version == "edge-2"
    assert page.tabs.currentWidget() is page.compare_tab
    assert page.compare_with.currentText() == "edge-1"
    comparison = page.comparison
    assert comparison is not None and (comparison.first, comparison.second) == ("edge-2",
                                                                                "edge-1")
    # The only format both have scores for.
    assert comparison.first_format is comparison.second_format is ArtifactFormat.TORCH
    assert page.compare_format.currentText() == "torch"
    theirs = stored(project, "edge-1")["torch"]
    metrics = page.comparison_view.metrics
    rows = {cell(metrics, r, 0): r for r in range(metrics.rowCount())}
    accuracy = rows["accuracy"]
    difference = round(saved["accuracy"] - theirs["accuracy"], 3) + 0.0
    assert (cell(metrics, accuracy, 1), cell(metrics, accuracy, 2), cell(metrics, accuracy, 3)) \
        == (f"{saved['accuracy']:.3f}", f"{theirs['accuracy']:.3f}", f"{difference:+.3f}")
    assert cell(metrics, accuracy, 3, Qt.ItemDataRole.BackgroundRole) == OUTCOME_COLOURS.get(
        outcome(difference, higher_is_better=True))
    p50 = rows["latency p50"]
    faster = round(saved["latency_p50_ms"] - theirs["latency_p50_ms"], 2)
    assert cell(metrics, p50, 3) == f"{faster + 0.0:+.2f} ms"
    assert cell(metrics, p50, 3, Qt.ItemDataRole.BackgroundRole) == OUTCOME_COLOURS.get(
        outcome(faster, higher_is_better=False))
    for name, score in saved["per_class"].items():
        recall = rows[f"recall: {name}"]
        change = round(score["recall"] - theirs["per_class"][name]["recall"], 3) + 0.0
        assert cell(metrics, recall, 3) == f"{change:+.3f}"
    assert "different test splits (inspection@2 and inspection@1)" in (
        page.comparison_view.caption.text())
    assert metrics.headerData(3, Qt.Orientation.Horizontal) == "edge-2 - edge-1"
    lineage = page.comparison_view.lineage
    facts = {cell(lineage, r, 0): r for r in range(lineage.rowCount())}
    values = {name: (cell(lineage, r, 1), cell(lineage, r, 2)) for name, r in facts.items()}
    assert values["trained on"] == ("inspection@2", "inspection@1")
    assert values["parent"] == ("edge-1", "-")
    assert values["status"] == ("candidate", "gate_failed")
    assert values["scores of"] == ("torch on inspection@2", "torch on inspection@1")
    assert cell(lineage, facts["kind"], 1, Qt.ItemDataRole.FontRole) is None  # the same
    assert cell(lineage, facts["trained on"], 1, Qt.ItemDataRole.FontRole).bold()

    # Choosing nobody in the combo clears the comparison.
    page.compare_with.setCurrentIndex(0)
    assert page.comparison is None and metrics.rowCount() == 0


def test_an_annotator_may_look_but_not_evaluate_or_approve(  # type: ignore[no-untyped-def]
        qtbot, project: Project, runner) -> None:
    page = open_page(qtbot, project, runner, user="ann")
    click_row(qtbot, page, "edge-1")
    assert page.formats.rowCount() == 3 and page.confusion.matrix.rowCount() > 0
    assert not page.evaluate_button.isEnabled()
    assert "may not evaluate" in page.evaluate_button.toolTip()
    assert not page.approve_button.isEnabled()
    assert "may not approve" in page.approve_button.toolTip()


def test_the_gate_reasons_and_approve_refusal_reach_the_user(  # type: ignore[no-untyped-def]
        qtbot, project: Project, runner) -> None:
    page = open_page(qtbot, project, runner)
    click_row(qtbot, page, "edge-1")
    assert page.approve_button.isEnabled()
    qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "gate_failed" in page.status.text(), timeout=10000)
    with project.db.read() as session:
        assert find_model(session, "edge-1").approved_at is None



def test_compress_then_gate_a_candidate_from_the_page(qtbot, project: Project, runner) -> None:  # type: ignore[no-untyped-def]
    # Runs last: it gives edge-2 new artifacts and a verdict, which the tests above do not
    # expect.
    page = open_page(qtbot, project, runner)
    click_row(qtbot, page, "edge-2")
    assert page.compress_button.isEnabled() and page.gate_button.isEnabled()
    qtbot.mouseClick(page.compress_button, Qt.MouseButton.LeftButton)
    assert not page.gate_button.isEnabled()  # one piece of model work at a time
    qtbot.waitUntil(lambda: "edge-2: made" in page.status.text(), timeout=300_000)
    made = set(stored(project, "edge-2"))
    assert {"onnx", "onnx_int8", "openvino", "openvino_int8"} <= made
    qtbot.waitUntil(lambda: page.formats.rowCount() == len(made), timeout=10_000)

    qtbot.waitUntil(page.gate_button.isEnabled, timeout=10_000)
    qtbot.mouseClick(page.gate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "the gate" in page.status.text(), timeout=300_000)
    with project.db.read() as session:
        status = find_model(session, "edge-2").status.value
    assert status in ("gate_passed", "gate_failed")
    assert page.status.text().startswith(f"edge-2 {status.split('_')[1]} the gate")
    qtbot.waitUntil(lambda: f"edge-2 (edge): {status}" in page.details.toPlainText(),
                    timeout=10_000)
