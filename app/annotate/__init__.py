"""Labeling and review: annotation formats (Qt-free) and the labeling widgets."""
