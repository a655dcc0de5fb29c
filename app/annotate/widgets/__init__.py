"""The Qt side of annotation: the canvas, the labeling pane and the review page."""
