"""``edgeloop labels set|conflicts|resolve|agreement`` and ``edgeloop classes
list|add|rename|merge``: labeling and the label schema from a terminal, through the same
services as the labeling pane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DbOpt, ProjectOpt, UserOpt, acting_user, echo_table, open_from_cli
from app.core.errors import InvalidInput
from app.core.models import AnnotationSource

labels_app = typer.Typer(help="Label captures, find and resolve annotator conflicts.",
                         no_args_is_help=True)
classes_app = typer.Typer(help="The label schema: list, add, rename and merge classes.",
                          no_args_is_help=True)

BoxOpt = Annotated[list[str] | None, typer.Option(
    "--box", metavar="X,Y,W,H,CLASS",
    help="A box in pixels (x, y: top-left corner); repeat for more boxes.")]
ClassArg = Annotated[str, typer.Argument(
    metavar="CLASS", help="The capture's class; '-' for none (a boxes-only label).")]


def _draft(class_name: str, boxes: list[str] | None):  # type: ignore[no-untyped-def]
    from app.annotate.labeling import BoxDraft, LabelDraft

    parsed = []
    for text in boxes or []:
        parts = text.split(",", 4)
        if len(parts) != 5:
            raise InvalidInput(f"box {text!r} is not X,Y,W,H,CLASS (e.g. 10,12,30,20,scratch)")
        try:
            x, y, w, h = (float(v) for v in parts[:4])
        except ValueError:
            raise InvalidInput(f"box {text!r}: X, Y, W and H must be numbers") from None
        parsed.append(BoxDraft(parts[4].strip(), x, y, w, h))
    return LabelDraft(None if class_name == "-" else class_name, tuple(parsed))


@labels_app.command("set")
def set_(
    capture_id: Annotated[int, typer.Argument(help="Capture id (see the Data page).")],
    class_name: ClassArg,
    box: BoxOpt = None,
    source: Annotated[AnnotationSource, typer.Option(
        help="human, model_assisted (a confirmed pre-label) or imported.")] =
        AnnotationSource.HUMAN,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Label a capture as you (replaces your own earlier label of it, nobody else's)."""
    from app.annotate.labeling import save_label

    draft = _draft(class_name, box)
    with open_from_cli(project, db) as p:
        annotation = save_label(p.db, p.audit, acting_user(p, user), capture_id, draft,
                                source=source, clock=p.clock)
    typer.echo(f"Labelled capture {capture_id} as {draft.class_name or '(no class)'} with "
               f"{len(draft.boxes)} box(es): annotation {annotation}.")


@labels_app.command("conflicts")
def conflicts_(project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None) -> None:
    """Captures whose current labels by different people disagree."""
    from app.annotate.conflicts import find_conflicts

    with open_from_cli(project, db) as p:
        acting_user(p, user)
        found = find_conflicts(p.db)
    if not found:
        typer.echo("No conflicts: every capture's current labels agree.")
        return
    echo_table(["CAPTURE", "DEVICE", "NAME", "LABELS"],
               [[c.capture_id, c.device_uid, c.device_capture_id,
                 "; ".join(f"{l.author}: {l.label.class_name or '-'} "
                           f"[{len(l.label.boxes)} box(es)]" for l in c.labels)]
                for c in found])
    typer.echo(f"{len(found)} conflict(s); an engineer resolves one with "
               "`edgeloop labels resolve CAPTURE_ID CLASS`.")


@labels_app.command("resolve")
def resolve(
    capture_id: Annotated[int, typer.Argument(help="A capture in conflict.")],
    class_name: ClassArg,
    box: BoxOpt = None,
    project: ProjectOpt = Path("."),
    db: DbOpt = None,
    user: UserOpt = None,
) -> None:
    """Give the final label of a capture in conflict (engineers); supersedes every label."""
    from app.annotate.conflicts import resolve_conflict

    draft = _draft(class_name, box)
    with open_from_cli(project, db) as p:
        annotation = resolve_conflict(p.db, p.audit, acting_user(p, user), capture_id, draft,
                                      clock=p.clock)
    typer.echo(f"Resolved capture {capture_id} as {draft.class_name or '(no class)'}: "
               f"annotation {annotation}.")


@labels_app.command("agreement")
def agreement(project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None) -> None:
    """How often each annotator agreed with the others on captures several people labelled."""
    from app.annotate.conflicts import agreement_by_annotator

    with open_from_cli(project, db) as p:
        acting_user(p, user)
        report = agreement_by_annotator(p.db)
    if not report.annotators:
        typer.echo("No capture was labelled by two or more people yet.")
        return
    echo_table(["ANNOTATOR", "SHARED", "AGREED", "SHARE"],
               [[a.annotator, a.captures, a.agreed, f"{a.share:.0%}"] for a in report.annotators])
    typer.echo("")
    echo_table(["PAIR", "SHARED", "AGREED", "SHARE", "KAPPA (CLASS)"],
               [[f"{r.first} / {r.second}", r.captures, r.agreed, f"{r.share:.0%}",
                 "-" if r.kappa is None else f"{r.kappa:.2f}"] for r in report.pairs])


@classes_app.command("list")
def list_(
    retired: Annotated[bool, typer.Option("--retired/--active-only",
                                          help="Show retired classes too.")] = True,
    project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None,
) -> None:
    """The label schema in order, with old names and current label counts."""
    from app.annotate.schema import list_classes

    with open_from_cli(project, db) as p:
        acting_user(p, user)
        classes = list_classes(p.db, include_retired=retired)
    if not classes:
        typer.echo("No classes yet; `edgeloop classes add NAME` adds one.")
        return
    echo_table(["#", "CLASS", "STATE", "LABELS", "ALSO CALLED"],
               [[i if not c.retired else "-", c.name, "retired" if c.retired else "active",
                 c.labels, ", ".join(c.aliases) or "-"]
                for i, c in enumerate(classes, start=1)])


@classes_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The new class's name.")],
    color: Annotated[str | None, typer.Option(help="Display colour, #RRGGBB.")] = None,
    project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None,
) -> None:
    """Add a class at the end of the schema (engineers)."""
    from app.annotate.schema import add_class

    with open_from_cli(project, db) as p:
        add_class(p.db, p.audit, acting_user(p, user), name, color=color, clock=p.clock)
    typer.echo(f"Added class {name}.")


@classes_app.command("rename")
def rename(
    old: Annotated[str, typer.Argument(help="The class's name now.")],
    new: Annotated[str, typer.Argument(help="Its new name.")],
    project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None,
) -> None:
    """Rename a class; its labels follow, old dataset versions keep the old name (engineers)."""
    from app.annotate.schema import rename_class

    with open_from_cli(project, db) as p:
        rename_class(p.db, p.audit, acting_user(p, user), old, new, clock=p.clock)
    typer.echo(f"Renamed class {old} to {new}; devices reporting {old!r} land on {new}.")


@classes_app.command("merge")
def merge(
    merged: Annotated[str, typer.Argument(metavar="CLASS", help="The class that goes away.")],
    into: Annotated[str, typer.Argument(metavar="INTO", help="The class it becomes.")],
    project: ProjectOpt = Path("."), db: DbOpt = None, user: UserOpt = None,
) -> None:
    """Merge a class into another: its current labels are restated, it is retired (engineers)."""
    from app.annotate.schema import merge_classes

    with open_from_cli(project, db) as p:
        outcome = merge_classes(p.db, p.audit, acting_user(p, user), merged, into,
                                clock=p.clock)
    typer.echo(f"Merged {merged} into {into}: {outcome.annotations_restated} label(s) "
               f"restated, {outcome.edge_predictions} edge and {outcome.observer_predictions} "
               f"observer prediction(s) re-pointed; {merged} is retired.")
