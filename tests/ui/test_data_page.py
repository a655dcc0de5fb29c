"""The Data page driven as a user would: filter, scroll, see thumbnails, open a capture."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import cv2
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from sqlalchemy import insert, select

from app.core.models import (
    Annotation, AnnotationSource, Blob, Capture, CaptureReason, Device, LabelClass, ReviewStatus,
)
from app.core.project import Project
from app.core.scene import CLASSES, SceneGenerator
from app.core.users import actor_named
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from app.ui.pages.data import DataPage
from app.ui.widgets.capture_grid import DETAIL_SIDE, ThumbnailStateRole
from app.ui.thumbnails import THUMBNAIL_SIDE, ThumbnailState

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
COUNT = 30
STATUSES = (ReviewStatus.UNREVIEWED, ReviewStatus.QUEUED, ReviewStatus.REVIEWED)


def _fill(project: Project) -> dict[str, int]:
    """30 captures of generated scenes over two cameras, plus one whose blob is not an image
    (the newest) and one whose blob file is gone; returns the ids of those two."""
    images = [cv2.imencode(".png", s.image)[1].tobytes()
              for s in SceneGenerator(seed=2, size=128).batch(0, COUNT)]
    labels = [s.label for s in SceneGenerator(seed=2, size=128).batch(0, COUNT)]
    corrupt = images[0][:60] + b"\x00" * 200  # a PNG cut short and padded: does not decode
    shas = project.blobs.put_many(images + [corrupt, b"gone"])
    project.blobs.delete(shas[-1])
    with project.db.write() as s:
        s.execute(insert(Blob), [{"sha256": sha, "size": 1, "media_type": "image/png"}
                                 for sha in dict.fromkeys(shas)])
        s.execute(insert(Device), [{"uid": "line-1-cam"}, {"uid": "line-2-cam"}])
        s.execute(insert(LabelClass), [{"name": c, "position": i} for i, c in enumerate(CLASSES)])
        s.execute(insert(Capture), [{
            "device_id": 1 + i % 2, "device_capture_id": f"c{i}", "blob_sha256": shas[i],
            "captured_at": T0 + timedelta(minutes=i), "reason": CaptureReason.RANDOM_SAMPLE,
            "model_version": "edge-2", "edge_class_id": CLASSES.index(labels[i]) + 1,
            "edge_confidence": 0.5 + i / 100, "observer_class_id": 1 if i % 2 == 0 else None,
            "observer_confidence": 0.9 if i % 2 == 0 else None,
            "review_status": STATUSES[i % 3]} for i in range(COUNT)] + [
            {"device_id": 1, "device_capture_id": "corrupt", "blob_sha256": shas[COUNT],
             "captured_at": T0 + timedelta(hours=2), "reason": CaptureReason.MANUAL},
            {"device_id": 2, "device_capture_id": "gone", "blob_sha256": shas[COUNT + 1],
             "captured_at": T0 - timedelta(hours=2), "reason": CaptureReason.MANUAL}])
        reviewed = s.scalars(select(Capture.id).where(
            Capture.review_status == ReviewStatus.REVIEWED)).all()
        s.execute(insert(Annotation), [{
            "capture_id": capture_id, "class_id": 2, "author_id": 1,
            "source": AnnotationSource.HUMAN} for capture_id in reviewed])
        return dict(s.execute(select(Capture.device_capture_id, Capture.id).where(
            Capture.device_capture_id.in_(["corrupt", "gone"]))).all())


def _ids(project: Project, *conditions) -> list[int]:  # type: ignore[no-untyped-def]
    """What the database says the grid should show, newest first."""
    with project.db.read() as s:
        return list(s.scalars(select(Capture.id).where(*conditions)
                              .order_by(Capture.captured_at.desc(), Capture.id.desc())))


def _open(qtbot, project: Project, runner, page_type: type[DataPage] = DataPage,  # type: ignore[no-untyped-def]
          size: tuple[int, int] = (1100, 700)) -> DataPage:
    page = page_type(PageContext(project, actor_named(project.db, "admin"), runner))
    qtbot.addWidget(page)
    page.resize(*size)
    page.show()
    page.refresh()  # what the main window does when it shows the page
    return page


def _shown(page: DataPage) -> list[int]:
    return [row.id for row in page.model.rows]


def _choose(combo, text: str) -> None:  # type: ignore[no-untyped-def]
    index = combo.findText(text)
    assert index >= 0, f"{text!r} is not offered"
    combo.setCurrentIndex(index)


@pytest.fixture
def filled(sqlite_project: Project) -> tuple[Project, dict[str, int]]:
    return sqlite_project, _fill(sqlite_project)


def test_filters_show_exactly_the_matching_captures(qtbot, filled, runner) -> None:  # type: ignore[no-untyped-def]
    project, _ = filled
    page = _open(qtbot, project, runner)
    everything = _ids(project)
    qtbot.waitUntil(lambda: _shown(page) == everything, timeout=10000)
    qtbot.waitUntil(lambda: page.count_label.text() == "32 of 32 captures", timeout=5000)
    assert page.grid.model().rowCount() == 32
    first = page.model.index(1)  # the newest real capture, c29: a class and a confidence
    assert page.model.data(first) == f"{page.model.rows[1].edge_class} 0.79"

    qtbot.waitUntil(lambda: page.device_combo.count() == 3, timeout=5000)
    _choose(page.device_combo, "line-2-cam")
    line_2 = _ids(project, Capture.device_id == 2)
    qtbot.waitUntil(lambda: _shown(page) == line_2, timeout=5000)
    assert {row.device_uid for row in page.model.rows} == {"line-2-cam"}

    _choose(page.status_combo, "Labeled")
    labeled = _ids(project, Capture.device_id == 2, Capture.review_status == ReviewStatus.REVIEWED)
    qtbot.waitUntil(lambda: _shown(page) == labeled, timeout=5000)
    assert labeled and all(row.label == "scratch" for row in page.model.rows)

    _choose(page.status_combo, "In review queue")
    queued = _ids(project, Capture.device_id == 2, Capture.review_status == ReviewStatus.QUEUED)
    qtbot.waitUntil(lambda: _shown(page) == queued, timeout=5000)
    qtbot.waitUntil(lambda: page.count_label.text() == f"{len(queued)} of {len(queued)} captures",
                    timeout=5000)

    _choose(page.status_combo, "Any review status")
    _choose(page.class_combo, "ok")
    ok_id = 1 + CLASSES.index("ok")
    ok_on_line_2 = _ids(project, Capture.device_id == 2, Capture.edge_class_id == ok_id)
    qtbot.waitUntil(lambda: _shown(page) == ok_on_line_2, timeout=5000)
    assert ok_on_line_2 and all(page.model.data(page.model.index(i)).startswith("ok ")
                                for i in range(len(ok_on_line_2)))

    qtbot.mouseClick(page.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _shown(page) == everything, timeout=5000)


def test_an_empty_confidence_range_is_explained_not_queried(qtbot, filled, runner) -> None:  # type: ignore[no-untyped-def]
    project, _ = filled
    page = _open(qtbot, project, runner)
    qtbot.waitUntil(lambda: len(page.model.rows) == 32, timeout=10000)
    page.min_confidence.setValue(0.7)
    confident = _ids(project, Capture.edge_confidence >= 0.7)
    qtbot.waitUntil(lambda: _shown(page) == confident, timeout=5000)
    page.max_confidence.setValue(0.6)
    qtbot.waitUntil(lambda: "confidence range is empty" in page.count_label.text(), timeout=5000)
    assert _shown(page) == confident  # the grid keeps the last valid filter


class SmallPages(DataPage):
    page_size = 8


def test_scrolling_fetches_more_and_their_thumbnails_arrive(  # type: ignore[no-untyped-def]
        qtbot, filled, runner) -> None:
    project, _ = filled
    page = _open(qtbot, project, runner, SmallPages, size=(520, 420))
    everything = _ids(project)
    qtbot.waitUntil(lambda: len(page.model.rows) >= 8, timeout=10000)
    assert _shown(page)[:8] == everything[:8]
    bar = page.grid.verticalScrollBar()
    while len(page.model.rows) < len(everything):
        loaded = len(page.model.rows)
        qtbot.waitUntil(lambda: bar.maximum() > 0 and not page.model.loading, timeout=5000)
        bar.setValue(bar.maximum())  # the user drags the scroll bar to the end
        qtbot.waitUntil(lambda: len(page.model.rows) > loaded, timeout=5000)
    assert _shown(page) == everything  # every capture once, newest first
    assert not page.model.canFetchMore()

    # The oldest real capture (the very last is the one whose blob is gone), in view now.
    last = page.model.index(len(everything) - 2)
    qtbot.waitUntil(lambda: page.model.data(last, ThumbnailStateRole) is ThumbnailState.READY,
                    timeout=10000)
    picture = page.model.data(last, Qt.ItemDataRole.DecorationRole)
    assert isinstance(picture, QPixmap) and picture.width() == THUMBNAIL_SIDE
    assert picture.cacheKey() != page.thumbnails.placeholder().cacheKey()
    assert len({picture.toImage().pixel(x, 60) for x in range(0, 96, 4)}) > 3  # a scene


def test_only_the_cells_in_view_are_decoded(qtbot, filled, runner) -> None:  # type: ignore[no-untyped-def]
    project, _ = filled
    page = _open(qtbot, project, runner, size=(520, 420))
    qtbot.waitUntil(lambda: len(page.model.rows) == 32, timeout=10000)
    viewport = page.grid.viewport().rect()
    in_view = [i for i in range(32)
               if viewport.intersects(page.grid.visualRect(page.model.index(i)))]
    out_of_view = sorted(set(range(32)) - set(in_view))
    assert len(in_view) > 1 and len(out_of_view) >= 8
    qtbot.waitUntil(lambda: all(page.model.data(page.model.index(i), ThumbnailStateRole)
                                is not ThumbnailState.PENDING for i in in_view), timeout=10000)
    assert all(page.model.data(page.model.index(i), ThumbnailStateRole) is ThumbnailState.PENDING
               for i in out_of_view)


def test_a_corrupt_or_missing_image_shows_the_broken_placeholder(qtbot, filled, runner) -> None:  # type: ignore[no-untyped-def]
    project, broken = filled
    page = _open(qtbot, project, runner)
    qtbot.waitUntil(lambda: len(page.model.rows) == 32, timeout=10000)
    rows = {row.id: i for i, row in enumerate(page.model.rows)}
    for capture_id in broken.values():
        index = page.model.index(rows[capture_id])
        page.grid.scrollTo(index)
        qtbot.waitUntil(lambda: page.model.data(index, ThumbnailStateRole)
                        is ThumbnailState.BROKEN, timeout=10000)
        shown = page.model.data(index, Qt.ItemDataRole.DecorationRole)
        assert shown.cacheKey() == page.thumbnails.placeholder(broken=True).cacheKey()
        assert "cannot be read" in page.model.data(index, Qt.ItemDataRole.ToolTipRole)
    # The good ones beside them still arrive.
    good = page.model.index(1)
    qtbot.waitUntil(lambda: page.model.data(good, ThumbnailStateRole) is ThumbnailState.READY,
                    timeout=10000)
    # Opened larger, the corrupt capture says so too.
    corrupt = page.model.index(rows[broken["corrupt"]])
    page.grid.scrollTo(corrupt)
    where = page.grid.visualRect(corrupt).center()
    qtbot.mouseClick(page.grid.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.mouseDClick(page.grid.viewport(), Qt.MouseButton.LeftButton, pos=where)
    assert page.details.fields["Capture"].text() == f"#{broken['corrupt']}, corrupt on the device"
    qtbot.waitUntil(lambda: "cannot be read" in page.details.image.toolTip(), timeout=10000)


def test_double_click_shows_the_capture_larger_with_its_metadata(qtbot, filled, runner) -> None:  # type: ignore[no-untyped-def]
    project, _ = filled
    page = _open(qtbot, project, runner)
    qtbot.waitUntil(lambda: len(page.model.rows) == 32, timeout=10000)
    row = next(i for i, r in enumerate(page.model.rows) if r.review_status is ReviewStatus.REVIEWED
               and r.observer_class is not None)
    capture = page.model.rows[row]
    index = page.model.index(row)
    page.grid.scrollTo(index)
    where = page.grid.visualRect(index).center()
    # A double click is a click and then Qt's double-click event (QTest sends only the latter).
    qtbot.mouseClick(page.grid.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.mouseDClick(page.grid.viewport(), Qt.MouseButton.LeftButton, pos=where)
    fields = {name: label.text() for name, label in page.details.fields.items()}
    assert fields["Device"] == capture.device_uid
    assert fields["Captured (UTC)"] == capture.captured_at.strftime("%Y-%m-%d %H:%M:%S")
    assert fields["Edge model"] == f"{capture.edge_class} ({capture.edge_confidence:.2f}), edge-2"
    assert fields["Observer"] == "ok (0.90)"
    assert fields["Label"] == "scratch"
    assert fields["Review"] == "Labeled"
    with project.db.read() as s:
        assert s.get(Capture, capture.id).device_capture_id in fields["Capture"]
    qtbot.waitUntil(lambda: page.thumbnails.state(capture.blob_sha256, DETAIL_SIDE)
                    is ThumbnailState.READY, timeout=10000)
    large = page.details.image.pixmap().toImage()
    assert large.width() == DETAIL_SIDE  # the 128 px capture, enlarged
    assert len({large.pixel(x, DETAIL_SIDE // 2) for x in range(0, DETAIL_SIDE, 8)}) > 3


def test_the_thumbnail_workers_stop_when_the_window_goes(qtbot, filled, runner, settings) -> None:  # type: ignore[no-untyped-def]
    project, _ = filled
    errors: list[tuple[str, str]] = []
    window = MainWindow(PageContext(project, actor_named(project.db, "admin"), runner), [DataPage],
                        settings=settings, show_error=lambda *error: errors.append(error))
    window.show()  # shows the first page, which loads its captures
    page = window.page("Data")
    assert isinstance(page, DataPage)
    qtbot.waitUntil(lambda: len(page.model.rows) == 32, timeout=10000)
    qtbot.waitUntil(lambda: page.model.data(page.model.index(1), ThumbnailStateRole)
                    is ThumbnailState.READY, timeout=10000)
    assert any(t.name.startswith("ui-thumbs") for t in threading.enumerate())
    window.close()
    with qtbot.waitSignal(page.destroyed, timeout=5000):
        window.deleteLater()
    assert not any(t.name.startswith("ui-thumbs") for t in threading.enumerate())
    assert errors == []
