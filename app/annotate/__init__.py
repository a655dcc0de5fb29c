"""Annotation and review: labels and who gave them, the label schema, the import/export
formats (all Qt-free), and in ``app.annotate.widgets`` the labeling pane and review page."""
