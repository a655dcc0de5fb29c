"""The ``edgeloop`` command line: a thin layer over the services in app.core and app.fleet."""
