"""``python -m app.fleet.agent``: the same as the ``edgeloop-agent`` command."""

import sys

from app.fleet.agent.cli import main

sys.exit(main())
