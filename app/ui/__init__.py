"""The Qt desktop application: the main window and its pages."""
