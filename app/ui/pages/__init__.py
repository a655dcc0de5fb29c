"""The pages of the main window's sidebar, one module each, in the order the sidebar shows.

The order follows the loop: devices and their data first, then what is made of the data
(datasets, training, models), then shipping it (deploy) and watching it (monitoring), and
the audit trail last. The labeling pane and the review queue (app.annotate.widgets) come
right after Data: they are where captures become labels.
"""

from __future__ import annotations

from app.ui.pages.base import Page


def default_pages() -> list[type[Page]]:
    """Every page, in sidebar order."""
    from app.annotate.widgets.labeling_pane import LabelingPage
    from app.annotate.widgets.review_page import ReviewPage
    from app.ui.pages.audit import AuditPage
    from app.ui.pages.data import DataPage
    from app.ui.pages.datasets import DatasetsPage
    from app.ui.pages.deploy import DeployPage
    from app.ui.pages.fleet import FleetPage
    from app.ui.pages.models import ModelsPage
    from app.ui.pages.monitoring import MonitoringPage
    from app.ui.pages.training import TrainingPage

    return [FleetPage, DataPage, LabelingPage, ReviewPage, DatasetsPage, TrainingPage,
            ModelsPage, DeployPage, MonitoringPage, AuditPage]
