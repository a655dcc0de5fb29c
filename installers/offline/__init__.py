"""The parts of the offline bundle (installers/offline_bundle.py builds it): the wheelhouse
builder, and the templates of the installer script and of the README written beside it."""
