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


def test_the_train_command_defaults_are_the_services() -> None:
    # The CLI cannot import training (torch) at start, so it repeats the numbers.
    import inspect

    from app.cli.dataset_cmds import train
    from app.core.augment import AugmentConfig
    from app.core.training import TrainConfig

    options = {name: p.default for name, p in inspect.signature(train).parameters.items()}
    config = TrainConfig()
    for name in ("epochs", "batch_size", "lr", "patience", "seed"):
        assert options[name] == getattr(config, name), name
    assert AugmentConfig.preset(options["augment"]) == config.augment
