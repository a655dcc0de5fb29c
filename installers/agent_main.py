"""The agent bundle's entry script: PyInstaller freezes this into ``edgeloop-agent``."""

import sys

from app.fleet.agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
