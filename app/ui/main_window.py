"""The main window: a sidebar of pages, and a status bar showing the running task.

Pages are modules of their own (app/ui/pages); this window only switches between them,
shows the progress of long work with a Cancel button, turns a task's failure into a dialog
that says what to do, and keeps its geometry, current page and theme in QSettings.

Keys: Ctrl+1..9 open the pages in sidebar order, F5 reloads the page shown, Esc cancels the
running task, Ctrl+Shift+L switches between the light and the dark theme, Ctrl+Q quits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QSettings, QSize
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication, QHBoxLayout, QLabel, QListWidget, QMainWindow, QMessageBox, QProgressBar,
    QPushButton, QStackedWidget, QWidget,
)

from app.core.progress import Progress
from app.ui.pages.base import Page, PageContext
from app.ui.resources import app_icon, icon
from app.ui.tasks import Task
from app.ui.theme import Theme, apply_theme, text_colour

ErrorSink = Callable[[str, str], None]


def error_dialog(parent: QWidget) -> ErrorSink:
    """Show a failure as a warning dialog (title, message)."""
    return lambda title, message: QMessageBox.warning(parent, title, message)


class MainWindow(QMainWindow):
    """EdgeLoop's window over one open project, for one signed-in user."""

    def __init__(self, context: PageContext, pages: Sequence[type[Page]], *,
                 settings: QSettings | None = None, show_error: ErrorSink | None = None) -> None:
        super().__init__()
        self.context = context
        self.settings = settings or QSettings("EdgeLoop", "EdgeLoop")
        self.show_error = show_error or error_dialog(self)
        self.setWindowTitle(f"EdgeLoop - {context.project.name} - {context.actor.name} "
                            f"({context.actor.role.value})")
        self.setWindowIcon(app_icon())
        self.sidebar = QListWidget()
        self.sidebar.setFixedWidth(170)
        self.sidebar.setIconSize(QSize(20, 20))
        self.stack = QStackedWidget()
        self.pages: list[Page] = []
        for page_type in pages:
            page = page_type(context)
            self.pages.append(page)
            self.sidebar.addItem(page.title)
            self.stack.addWidget(page)
        self.sidebar.currentRowChanged.connect(self._show_page)
        body = QWidget()
        layout = QHBoxLayout(body)
        layout.addWidget(self.sidebar)
        layout.addWidget(self.stack, 1)
        self.setCentralWidget(body)
        self._build_status_bar()
        context.tasks.started.connect(self._watch)
        self._build_menus()
        self._restore()

    # -- pages ------------------------------------------------------------------------------
    def page(self, title: str) -> Page:
        return next(p for p in self.pages if p.title == title)

    def show_page(self, title: str) -> None:
        self.sidebar.setCurrentRow([p.title for p in self.pages].index(title))

    def current_page(self) -> Page:
        return self.pages[self.stack.currentIndex()]

    def _show_page(self, row: int) -> None:
        if 0 <= row < len(self.pages):
            self.stack.setCurrentIndex(row)
            self.pages[row].refresh()

    # -- long work --------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        self.task_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._cancel_current)
        for widget in (self.task_label, self.progress, self.cancel_button):
            self.statusBar().addPermanentWidget(widget)
        self._set_idle()

    def _watch(self, task: Task) -> None:
        """Connect to a task that just started: its failure is a dialog, and unless it is a
        background watcher the status bar follows it."""
        task.failed.connect(lambda message: self.show_error(task.title, message))
        if task.background:
            return
        task.progressed.connect(lambda step: self._on_progress(task, step))
        task.cancelled.connect(lambda: self.statusBar().showMessage(
            f"{task.title}: cancelled", 5000))
        task.finished.connect(self._on_finished)
        self._show_task(task)

    def _show_task(self, task: Task) -> None:
        self._current = task
        self.task_label.setText(task.title)
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.show()
        self.cancel_button.show()

    def _on_progress(self, task: Task, step: Progress) -> None:
        if task is not self._current:
            return
        if step.total > 0:
            self.progress.setRange(0, int(step.total))
            self.progress.setValue(int(min(step.done, step.total)))
        if step.message:
            self.task_label.setText(f"{task.title}: {step.message}")

    def _on_finished(self) -> None:
        running = self.context.tasks.running_in_front()
        if running:
            self._show_task(running[-1])
        else:
            self._set_idle()

    def _set_idle(self) -> None:
        self._current: Task | None = None
        self.task_label.setText("")
        self.progress.hide()
        self.cancel_button.hide()

    def _cancel_current(self) -> None:
        if self._current is not None:
            self._current.cancel()
            self.task_label.setText(f"{self._current.title}: stopping...")

    # -- menus, keys and themes ------------------------------------------------------------
    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        quit_app = QAction("Quit", self)
        quit_app.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        if quit_app.shortcut().isEmpty():  # platforms without a standard Quit key
            quit_app.setShortcut(QKeySequence("Ctrl+Q"))
        quit_app.triggered.connect(self.close)
        file.addAction(quit_app)
        self.addAction(quit_app)
        view = self.menuBar().addMenu("&View")
        for row, page in enumerate(self.pages[:9]):
            action = QAction(page.title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{row + 1}"))
            action.triggered.connect(lambda _=False, r=row: self.sidebar.setCurrentRow(r))
            view.addAction(action)
        view.addSeparator()
        reload_page = QAction("Reload page", self)
        reload_page.setShortcut(QKeySequence(QKeySequence.StandardKey.Refresh))
        reload_page.triggered.connect(lambda: self.current_page().refresh())
        view.addAction(reload_page)
        view.addSeparator()
        self.theme_actions: dict[Theme, QAction] = {}
        group = QActionGroup(self)
        for theme in Theme:
            action = QAction(f"{theme.value.capitalize()} theme", self, checkable=True)
            action.triggered.connect(lambda _=False, t=theme: self.set_theme(t))
            group.addAction(action)
            view.addAction(action)
            self.theme_actions[theme] = action
        # Shortcuts of actions that live only in a menu do not fire where the menu bar is
        # native or hidden; actions of the window itself always do.
        self.addActions(view.actions())
        toggle = QShortcut(QKeySequence("Ctrl+Shift+L"), self)
        toggle.activated.connect(lambda: self.set_theme(
            Theme.LIGHT if self.theme is Theme.DARK else Theme.DARK))
        cancel = QShortcut(QKeySequence("Esc"), self)
        cancel.activated.connect(self._cancel_current)

    def set_theme(self, theme: Theme) -> None:
        """Apply ``theme`` to the app, redraw the sidebar icons in it, and remember it."""
        self.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        colour = text_colour(theme)
        for row, page in enumerate(self.pages):
            self.sidebar.item(row).setIcon(icon(page.icon_name or page.title.lower(), colour))
        self.theme_actions[theme].setChecked(True)
        self.settings.setValue("ui/theme", theme.value)

    # -- state ------------------------------------------------------------------------------
    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 760)
        self.set_theme(Theme.parse(self.settings.value("ui/theme", Theme.LIGHT.value)))
        page = self.settings.value("window/page", 0, type=int)
        self.sidebar.setCurrentRow(page if 0 <= page < len(self.pages) else 0)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/page", self.sidebar.currentRow())
        for page in self.pages:
            page.before_close()
        self.context.tasks.shutdown()
        super().closeEvent(event)
