"""The program that runs on an edge device. Light dependencies only (see DESIGN.md)."""
