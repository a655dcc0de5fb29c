"""Small reusable widgets the pages are built from (tables with their own painting, ...)."""
