"""The CLI starts without loading torch: fleet and project commands must not wait seconds for
a library only training, export and compression use."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_cli_loads_no_torch() -> None:
    code = ("import sys, app.cli.main; "
            "print(','.join(m for m in ('torch', 'kornia', 'openvino', 'nncf') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "", f"`import app.cli.main` loaded {loaded}; import it inside the command"
