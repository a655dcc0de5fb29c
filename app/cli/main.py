"""The ``edgeloop`` command: assembles the command groups and reports errors plainly."""

from __future__ import annotations

import sys

import typer

from app.cli.audit_cmds import audit_app
from app.cli.data_cmds import blobs_app, retention_app
from app.cli.dataset_cmds import dataset_app, train
from app.cli.devices_cmds import devices_app
from app.cli.fleet_cmds import deploy, pull, releases_app, rollout_app
from app.cli.gui_cmd import gui
from app.cli.labels_cmds import classes_app, labels_app
from app.cli.labels_io_cmds import export_labels_cmd, import_labels_cmd
from app.cli.loop_cmds import demo, drift_app, loop_app, observe, observer_app
from app.cli.models_cmds import compress, evaluate, models_app, prune
from app.cli.project_cmds import info, init
from app.cli.simulate_cmd import simulate
from app.cli.users_cmds import users_app
from app.core.errors import EdgeLoopError

cli = typer.Typer(
    name="edgeloop",
    help="EdgeLoop: the on-prem ML loop for fleets of edge devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _selfcheck(value: bool) -> None:
    if value:
        # Imported here: the check loads torch, Qt and the runtimes, which other commands
        # may never need.
        from app.cli.selfcheck import selfcheck

        raise typer.Exit(selfcheck())


@cli.callback()
def _root(
    selfcheck: bool = typer.Option(
        False, "--selfcheck", is_eager=True, callback=_selfcheck,
        help="Check that every part EdgeLoop needs (Qt, ONNX Runtime, OpenVINO, OpenCV, "
             "zeroconf, SSH, torch, the project database) loads and works, one line each; "
             "exit 0 only if all do."),
) -> None:
    # Only the root options live here; the commands are registered below.
    del selfcheck


cli.command()(init)
cli.command()(info)
cli.command()(simulate)
cli.command()(pull)
cli.command()(deploy)
cli.add_typer(devices_app, name="devices")
cli.add_typer(dataset_app, name="dataset")
labels_app.command("export")(export_labels_cmd)
labels_app.command("import")(import_labels_cmd)
cli.add_typer(labels_app, name="labels")
cli.add_typer(classes_app, name="classes")
cli.command()(train)
cli.command()(compress)
cli.command()(prune)
cli.command()(evaluate)
cli.add_typer(models_app, name="models")
cli.command()(observe)
cli.add_typer(observer_app, name="observer")
cli.add_typer(drift_app, name="drift")
cli.add_typer(loop_app, name="loop")
cli.command()(demo)
cli.command()(gui)
cli.add_typer(releases_app, name="releases")
cli.add_typer(rollout_app, name="rollout")
cli.add_typer(users_app, name="users")
cli.add_typer(audit_app, name="audit")
cli.add_typer(retention_app, name="retention")
cli.add_typer(blobs_app, name="blobs")


def run() -> None:
    """Console entry point: EdgeLoop errors become one line on stderr and exit status 2."""
    from typer.exceptions import TyperException

    try:
        # Without standalone mode the parser returns (rather than exits with) the code that a
        # command's typer.Exit carried.
        code = cli(standalone_mode=False)
    except EdgeLoopError as exc:
        typer.echo(f"edgeloop: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except TyperException as exc:  # usage errors: unknown option, bad value (typer's click)
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            typer.echo(f"edgeloop: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
