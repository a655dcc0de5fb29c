"""The Fleet page driven as a user would (offscreen): discovery of a real simulated fleet on
loopback mDNS, enrollment with the fingerprint dialog, forget, install status, roles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QAbstractButton, QWidget
from sqlalchemy import select

from app.core.models import (
    AuditEvent, DeploymentState, Device, DeviceHealth, EnrollmentState, Role, utcnow,
)
from app.core.dataset_import import import_generated
from app.core.project import Project
from app.core.roles import Actor
from app.core.users import actor_named, add_user
from app.fleet.deploy import start_rollout
from app.fleet.discovery import Sighting
from app.fleet.health import poll_fleet
from app.fleet.registry import DeviceRegistry
from app.fleet.releases import register_release
from app.fleet.signing import load_or_create_signing_key
from app.fleet.simulator import SimDevice
from app.fleet.summaries import DeviceRow
from app.ui.enroll_dialog import EnrollDialog
from app.ui.main_window import MainWindow
from app.ui.pages.base import PageContext
from app.ui.pages.fleet import (
    COLUMNS, HEALTH_COLOURS, HEALTH_COLUMN, DeviceTableModel, FleetPage,
)
from app.ui.tasks import TaskRunner
from tests.fleet.fleet_env import FleetEnv, fleet_env
from tests.support.net import free_port
from tests.support.releases import make_release

LEFT = Qt.MouseButton.LeftButton
Errors = list[tuple[str, str]]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[FleetEnv]:
    with fleet_env(tmp_path, count=1, fps=2.0) as built:
        yield built


@pytest.fixture
def env2(tmp_path: Path) -> Iterator[FleetEnv]:
    with fleet_env(tmp_path, count=2, fps=2.0) as built:
        yield built


def _window(qtbot, project: Project, actor: Actor, runner: TaskRunner,  # type: ignore[no-untyped-def]
            settings: QSettings, errors: Errors) -> tuple[MainWindow, FleetPage]:
    window = MainWindow(PageContext(project, actor, runner), [FleetPage], settings=settings,
                        show_error=lambda title, message: errors.append((title, message)))
    qtbot.addWidget(window)
    window.show()
    page = window.page("Fleet")
    assert isinstance(page, FleetPage)
    return window, page


def _cell(page: FleetPage, uid: str, column: str) -> str | None:
    """What the table shows for ``uid`` in ``column`` (None while the device is not listed)."""
    for position, row in enumerate(page.model.rows):
        if row.uid == uid:
            return page.model.data(page.model.index(position, COLUMNS.index(column)))
    return None


def _health_colour(page: FleetPage, uid: str) -> str | None:
    position = next(i for i, row in enumerate(page.model.rows) if row.uid == uid)
    brush = page.model.data(page.model.index(position, HEALTH_COLUMN),
                            Qt.ItemDataRole.BackgroundRole)
    return None if brush is None else brush.color().name()


def _click(qtbot, widget: QWidget, pos: QPoint | None = None) -> None:  # type: ignore[no-untyped-def]
    assert widget.isVisible() and widget.isEnabled(), widget
    qtbot.mouseClick(widget, LEFT, pos=pos or widget.rect().center())


def _select(qtbot, page: FleetPage, uid: str) -> None:  # type: ignore[no-untyped-def]
    position = next(i for i, row in enumerate(page.model.rows) if row.uid == uid)
    index = page.model.index(position, 0)
    page.table.scrollTo(index)
    _click(qtbot, page.table.viewport(), page.table.visualRect(index).center())
    selected = page.selected()
    assert selected is not None and selected.uid == uid


def _tick(qtbot, box: QAbstractButton) -> None:  # type: ignore[no-untyped-def]
    # On the indicator, at the box's left end: the middle of a stretched check box is empty.
    _click(qtbot, box, QPoint(box.height() // 2, box.height() // 2))


def _open_enroll_dialog(qtbot, page: FleetPage) -> EnrollDialog:  # type: ignore[no-untyped-def]
    _click(qtbot, page.enroll_button)
    qtbot.waitUntil(lambda: page.enroll_dialog is not None and page.enroll_dialog.isVisible(),
                    timeout=15000)
    assert page.enroll_dialog is not None
    return page.enroll_dialog


def _device(project: Project, uid: str) -> Device | None:
    with project.db.read() as session:
        device = session.scalar(select(Device).where(Device.uid == uid))
        if device is not None:
            session.expunge(device)
        return device


def _actions(project: Project, uid: str) -> list[tuple[str, str]]:
    with project.db.read() as session:
        return [(e.actor, e.action) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.object_id == uid).order_by(AuditEvent.seq))]


def _sighting(device: SimDevice, port: int | None = None) -> Sighting:
    """What the device's advertisement says, as discovery would record it."""
    return Sighting(uid=device.spec.device_id, name=f"Station {device.spec.device_id}",
                    address=device.endpoint.host, ssh_port=port or device.endpoint.port,
                    agent_version="0.1", model_version="edge-1", hardware="sim",
                    seen_at=utcnow())


def test_enroll_a_simulated_device(  # type: ignore[no-untyped-def]
        qtbot, env: FleetEnv, runner, settings) -> None:
    device = env.device(0)
    uid, fingerprint = device.spec.device_id, device.endpoint.host_key_fingerprint
    errors: Errors = []
    _, page = _window(qtbot, env.project, env.admin, runner, settings, errors)
    assert page.interfaces.text() == "127.0.0.1"  # loopback: never the LAN in tests
    assert not page.enroll_button.isEnabled()  # nothing selected yet

    # The engineer switches discovery on; the device appears as discovered, in the DB too.
    _click(qtbot, page.discover_button)
    assert page.discover_button.isChecked() and page.discovery is not None
    qtbot.waitUntil(lambda: _cell(page, uid, "Enrollment") == "discovered", timeout=30000)
    found = _device(env.project, uid)
    assert found is not None and found.enrollment is EnrollmentState.DISCOVERED
    assert _cell(page, uid, "Address") == f"127.0.0.1:{device.endpoint.port}"

    _select(qtbot, page, uid)
    assert page.enroll_button.isEnabled()

    # The dialog shows the fingerprint the device presents; Cancel enrolls nothing.
    dialog = _open_enroll_dialog(qtbot, page)
    assert dialog.fingerprint.text() == fingerprint and fingerprint.startswith("SHA256:")
    assert uid in dialog.windowTitle()
    assert not dialog.enroll_button.isEnabled()  # not before the engineer confirms
    _click(qtbot, dialog.cancel_button)
    qtbot.waitUntil(lambda: page.enroll_dialog is None and page.enroll_button.isEnabled(),
                    timeout=5000)
    assert "Nothing was enrolled" in page.status.text()
    assert _device(env.project, uid).enrollment is EnrollmentState.DISCOVERED
    assert ("admin", "device.enroll") not in _actions(env.project, uid)

    # Again, this time comparing, ticking and giving the device's bootstrap key.
    dialog = _open_enroll_dialog(qtbot, page)
    assert dialog.fingerprint.text() == fingerprint
    qtbot.keyClicks(dialog.key_file, str(env.workdir / "id_ed25519"))
    _tick(qtbot, dialog.matches)
    assert dialog.enroll_button.isEnabled()
    _click(qtbot, dialog.enroll_button)
    qtbot.waitUntil(lambda: _cell(page, uid, "Enrollment") == "enrolled", timeout=30000)
    assert errors == []
    assert page.status.text().startswith(f"Enrolled {uid}") and fingerprint in page.status.text()
    enrolled = _device(env.project, uid)
    assert enrolled.enrollment is EnrollmentState.ENROLLED
    assert enrolled.host_key_fingerprint == fingerprint
    assert ("admin", "device.enroll") in _actions(env.project, uid)
    # Selected still (the table refreshed under it), and enrolled: Enroll is off, Forget on.
    assert page.selected().uid == uid
    assert not page.enroll_button.isEnabled() and page.forget_button.isEnabled()

    # Switching discovery off ends its task.
    _click(qtbot, page.discover_button)
    qtbot.waitUntil(lambda: page.discovery is None, timeout=10000)
    assert not page.discover_button.isChecked() and page.interfaces.isEnabled()
    assert errors == []


def test_a_changed_host_key_ends_in_an_error_and_enrolls_nothing(  # type: ignore[no-untyped-def]
        qtbot, env2: FleetEnv, runner, settings) -> None:
    env = env2
    genuine, other = env.device(0), env.device(1)
    uid = genuine.spec.device_id
    registry = DeviceRegistry(env.project.db, env.project.audit)
    registry.record(_sighting(genuine))
    errors: Errors = []
    _, page = _window(qtbot, env.project, env.admin, runner, settings, errors)
    qtbot.waitUntil(lambda: _cell(page, uid, "Enrollment") == "discovered", timeout=5000)
    _select(qtbot, page, uid)
    dialog = _open_enroll_dialog(qtbot, page)
    assert dialog.fingerprint.text() == genuine.endpoint.host_key_fingerprint

    # Before the engineer confirms, another machine advertises the device's id at its own
    # SSH server (discovery records the new address): its key is not the confirmed one.
    registry.record(_sighting(genuine, port=other.endpoint.port))
    qtbot.keyClicks(dialog.key_file, str(env.workdir / "id_ed25519"))
    _tick(qtbot, dialog.matches)
    _click(qtbot, dialog.enroll_button)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30000)
    title, message = errors[0]
    assert title == f"Enrolling {uid}"
    assert other.endpoint.host_key_fingerprint in message
    assert genuine.endpoint.host_key_fingerprint in message
    assert "nothing was enrolled" in message
    qtbot.waitUntil(lambda: page.enroll_button.isEnabled(), timeout=5000)
    assert "was not enrolled" in page.status.text()
    row = _device(env.project, uid)
    assert row.enrollment is EnrollmentState.DISCOVERED and row.host_key_fingerprint is None
    assert _cell(page, uid, "Enrollment") == "discovered"


def test_an_unreachable_device_ends_in_an_error_dialog(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings, clock) -> None:
    p = sqlite_project
    DeviceRegistry(p.db, p.audit, clock).record(Sighting(
        uid="line-9-cam", name="Line 9 camera", address="127.0.0.1", ssh_port=free_port(),
        agent_version="0.9", model_version="edge-1", hardware="sim", seen_at=clock()))
    errors: Errors = []
    _, page = _window(qtbot, p, actor_named(p.db, "admin"), runner, settings, errors)
    qtbot.waitUntil(lambda: _cell(page, "line-9-cam", "Enrollment") == "discovered",
                    timeout=5000)
    _select(qtbot, page, "line-9-cam")
    _click(qtbot, page.enroll_button)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=20000)
    title, message = errors[0]
    assert title == "Reading the host key of line-9-cam"
    assert "check that the device is on and reachable" in message
    assert page.enroll_dialog is None  # nothing to confirm
    qtbot.waitUntil(lambda: page.enroll_button.isEnabled(), timeout=5000)
    assert _device(p, "line-9-cam").enrollment is EnrollmentState.DISCOVERED


def test_discovery_on_a_wrong_interface_says_so_and_switches_off(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings) -> None:
    p = sqlite_project
    errors: Errors = []
    _, page = _window(qtbot, p, actor_named(p.db, "admin"), runner, settings, errors)
    page.interfaces.clear()
    qtbot.keyClicks(page.interfaces, "eth0")  # a name, where an address is needed
    _click(qtbot, page.discover_button)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=10000)
    title, message = errors[0]
    assert title == "Discovering devices on eth0" and "'eth0' is not an IPv4 address" in message
    qtbot.waitUntil(lambda: page.discovery is None, timeout=5000)
    assert not page.discover_button.isChecked() and page.discover_button.text() == "Discover"
    assert page.interfaces.isEnabled()


def test_forget_asks_naming_the_device_then_drops_its_enrollment(  # type: ignore[no-untyped-def]
        qtbot, env: FleetEnv, runner, settings) -> None:
    uid = env.device(0).spec.device_id
    env.enroll(0)
    qtbot.waitUntil(env.device(0).home.status_path.exists, timeout=30000)
    poll_fleet(env.ctx)  # the device answers with a fresh status: healthy
    # A release planned for it: the install status column shows its deployment.
    signing = load_or_create_signing_key(env.ctx.keys_dir)
    folder, _ = make_release(env.workdir / "new", "edge-2", signing, seed=2)
    register_release(env.ctx, env.admin, folder)
    start_rollout(env.ctx, env.admin, "edge-2")
    errors: Errors = []
    _, page = _window(qtbot, env.project, env.admin, runner, settings, errors)
    qtbot.waitUntil(lambda: _cell(page, uid, "Enrollment") == "enrolled", timeout=5000)
    assert _cell(page, uid, "Health") == "healthy"
    assert _health_colour(page, uid) == HEALTH_COLOURS[DeviceHealth.HEALTHY]  # green
    assert _cell(page, uid, "Install status") == "edge-2 pending"
    assert _cell(page, uid, "Model") == "edge-1"
    _select(qtbot, page, uid)
    assert not page.enroll_button.isEnabled()  # already enrolled

    # Cancel leaves it enrolled.
    _click(qtbot, page.forget_button)
    qtbot.waitUntil(lambda: page.forget_box is not None and page.forget_box.isVisible(),
                    timeout=5000)
    assert uid in page.forget_box.text() and uid in page.forget_box.windowTitle()
    _click(qtbot, page.forget_box.cancel_button)
    qtbot.waitUntil(lambda: page.forget_box is None and page.forget_button.isEnabled(),
                    timeout=5000)
    assert _device(env.project, uid).enrollment is EnrollmentState.ENROLLED

    _click(qtbot, page.forget_button)
    qtbot.waitUntil(lambda: page.forget_box is not None and page.forget_box.isVisible(),
                    timeout=5000)
    _click(qtbot, page.forget_box.forget_button)
    qtbot.waitUntil(lambda: _cell(page, uid, "Enrollment") == "forgotten", timeout=10000)
    row = _device(env.project, uid)
    assert row.enrollment is EnrollmentState.FORGOTTEN and row.host_key_fingerprint is None
    assert ("admin", "device.forget") in _actions(env.project, uid)
    assert "Forgot" in page.status.text()
    # Forgotten: it may be enrolled again (confirming its key afresh), not forgotten twice.
    assert page.enroll_button.isEnabled() and not page.forget_button.isEnabled()
    assert errors == []


def test_a_role_without_the_permission_finds_the_controls_disabled(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings, clock) -> None:
    p = sqlite_project
    admin = actor_named(p.db, "admin")
    add_user(p.db, p.audit, admin, "ann", Role.ANNOTATOR)
    DeviceRegistry(p.db, p.audit, clock).record(Sighting(
        uid="line-3-cam", name="Line 3 camera", address="127.0.0.1", ssh_port=2222,
        agent_version="0.9", model_version="edge-1", hardware="sim", seen_at=clock()))
    errors: Errors = []
    window, page = _window(qtbot, p, actor_named(p.db, "ann"), runner, settings, errors)
    assert "ann (annotator)" in window.windowTitle()
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    _select(qtbot, page, "line-3-cam")  # annotators may look at a device
    for button in (page.enroll_button, page.forget_button, page.discover_button,
                   page.pull_button):
        assert not button.isEnabled(), button.text()
        assert "may not" in button.toolTip()
    assert "manage devices" in page.enroll_button.toolTip()
    # The engineer role may: the same device, the controls on.
    add_user(p.db, p.audit, admin, "eng", Role.ENGINEER)
    _, engineer_page = _window(qtbot, p, actor_named(p.db, "eng"), runner, settings, errors)
    qtbot.waitUntil(lambda: engineer_page.model.rowCount() == 1, timeout=5000)
    _select(qtbot, engineer_page, "line-3-cam")
    assert engineer_page.enroll_button.isEnabled() and engineer_page.discover_button.isEnabled()


def test_the_fleet_page_lists_devices_and_a_failed_pull_is_a_dialog(  # type: ignore[no-untyped-def]
        qtbot, sqlite_project: Project, runner, settings, clock) -> None:
    p = sqlite_project
    DeviceRegistry(p.db, p.audit, clock).record(Sighting(
        uid="line-3-cam", name="Line 3 camera", address="127.0.0.1", ssh_port=2222,
        agent_version="0.9", model_version="edge-1", hardware="sim", seen_at=clock()))
    errors: Errors = []
    _, page = _window(qtbot, p, actor_named(p.db, "admin"), runner, settings, errors)
    qtbot.waitUntil(lambda: page.model.rowCount() == 1, timeout=5000)
    index = page.model.index(0, 0)
    assert page.model.data(index, Qt.ItemDataRole.DisplayRole) == "line-3-cam"
    assert _cell(page, "line-3-cam", "Enrollment") == "discovered"
    assert _cell(page, "line-3-cam", "Install status") == "-"  # never deployed to
    # Generated training scenes belong to a "device" of their own: shown as data, not as a
    # device waiting to be enrolled.
    import_generated(p.db, p.blobs, p.audit, actor_named(p.db, "admin"), 3, size=64,
                     device_uid="station-01")
    page.refresh()
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    assert _cell(page, "station-01", "Enrollment") == "generated data"
    assert _cell(page, "station-01", "Health") == "-"
    # No device is enrolled: the pull finishes with nothing to do, and re-enables the button.
    _click(qtbot, page.pull_button)
    qtbot.waitUntil(lambda: page.pull_button.isEnabled(), timeout=10000)
    assert errors == []


def _row(uid: str, health: DeviceHealth, install: DeploymentState | None = None) -> DeviceRow:
    return DeviceRow(uid, uid, EnrollmentState.ENROLLED, health, "127.0.0.1", 22, "edge-3",
                     "0.9", None, 0, 0, "edge-4" if install else None, install)


def test_health_is_coloured_by_state_and_install_status_reads_as_words(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = DeviceTableModel()
    model.set_rows([_row("a", DeviceHealth.HEALTHY, DeploymentState.ROLLED_BACK),
                    _row("b", DeviceHealth.DEGRADED, DeploymentState.UPLOADING),
                    _row("c", DeviceHealth.STALE), _row("d", DeviceHealth.OFFLINE),
                    _row("e", DeviceHealth.UNKNOWN)])
    backgrounds = [model.data(model.index(r, HEALTH_COLUMN), Qt.ItemDataRole.BackgroundRole)
                   for r in range(5)]
    assert [b.color().name() for b in backgrounds[:4]] == [
        HEALTH_COLOURS[h] for h in (DeviceHealth.HEALTHY, DeviceHealth.DEGRADED,
                                    DeviceHealth.STALE, DeviceHealth.OFFLINE)]
    assert len({b.color().name() for b in backgrounds[:4]}) == 4  # four states, four colours
    assert backgrounds[4] is None  # not polled yet: no colour
    assert model.data(model.index(0, 0), Qt.ItemDataRole.BackgroundRole) is None
    install = [model.data(model.index(r, 5)) for r in range(3)]
    assert install == ["edge-4 rolled back", "edge-4 uploading", "-"]
