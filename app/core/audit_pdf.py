"""The audit report as a PDF an admin hands to an auditor (rendered with fpdf2).

Page one opens with what the report covers (project, period, who prepared it, whether the
audit trail's hash chain is intact); then the model lineage, one block per model version;
then the audit events of the period as a table whose heading repeats on every page. Every
page after the first carries the project and period at the top, and every page its number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TableCellFillMode, XPos, YPos
from fpdf.fonts import FontFace

import app
from app.core.audit_report import AuditReportDocument, ModelLineage
from app.core.fsutil import atomic_write_bytes

FONT = "Helvetica"
INK, MUTED, ALARM = (25, 30, 40), (105, 112, 125), (170, 25, 25)
HEADING_FILL, BAND_FILL, STRIPE_FILL = (38, 62, 99), (228, 234, 243), (246, 247, 249)
HEADINGS = FontFace(emphasis="BOLD", color=(255, 255, 255), fill_color=HEADING_FILL)
KEYS = FontFace(emphasis="BOLD", color=INK)
EVENT_WIDTHS = (9, 30, 17, 32, 28, 64)  # mm of A4's 180 between the margins
DEPLOYMENT_WIDTHS = (17, 38, 24, 33, 68)
# What one table cell may hold: a row taller than a page cannot be laid out at all.
CELL_LIMIT = 700
NAME_LIMIT = 80  # of the project's name in the title and the running heading
# fpdf2's built-in fonts (Helvetica) encode text as latin-1 only, and any other character
# raises. Common typography is spelled out in ASCII; everything else becomes "?".
_TYPOGRAPHY = str.maketrans({
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"',
    "\u201d": '"', "\u2026": "...", "\u2192": "->", "\u2190": "<-", "\u2264": "<=",
    "\u2265": ">=", "\u2022": "*", "\t": " ", "\r": " ",
})


def latin1_safe(text: object) -> str:
    """``text`` as the PDF's latin-1 fonts can draw it (see ``_TYPOGRAPHY``)."""
    spelled = str(text).translate(_TYPOGRAPHY)
    printable = "".join(ch if ch == "\n" or ch.isprintable() else " " for ch in spelled)
    return printable.encode("latin-1", "replace").decode("latin-1")


def clip(text: str, limit: int = CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def stamp(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def period_text(since: datetime | None, until: datetime | None) -> str:
    """The report's period, unambiguous about its open end."""
    start = "the start of the trail" if since is None else f"{stamp(since)} UTC"
    end = "the time of the report" if until is None else f"{stamp(until)} UTC (excluded)"
    return f"{start} to {end}"


class _ReportPdf(FPDF):
    """A4 pages with the running heading and the page numbers of this report."""

    def __init__(self, report: AuditReportDocument) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report = report
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.set_title(latin1_safe(f"Audit report: {report.project_name}"))
        self.set_author(latin1_safe(report.prepared_by or "EdgeLoop"))
        self.set_creator(f"EdgeLoop {app.__version__}")

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        heading = latin1_safe(f"EdgeLoop audit report - "
                              f"{clip(self.report.project_name, NAME_LIMIT)} - "
                              f"{period_text(self.report.since, self.report.until)}")
        self.cell(0, 5, self.fit(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*MUTED)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"Generated {stamp(self.report.generated_at)} UTC by EdgeLoop "
                        f"{app.__version__}", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="R")

    def fit(self, text: str) -> str:
        """``text`` cut to one line of the current font between the margins."""
        text = clip(text, 300)
        while len(text) > 3 and self.get_string_width(text) > self.epw - 4:
            text = text[:-4] + "..."
        return text

    def text_line(self, text: str, size: float = 10, style: str = "",
                  color: tuple[int, int, int] = INK, height: float = 5.5) -> None:
        self.set_font(FONT, style, size)
        self.set_text_color(*color)
        self.multi_cell(0, height, latin1_safe(text), align="L", new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT)

    def section(self, title: str) -> None:
        self.ln(4)
        self.text_line(title, size=14, style="B", height=8)
        self.set_draw_color(*HEADING_FILL)
        self.set_line_width(0.5)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.set_line_width(0.2)
        self.ln(3)

    def band(self, title: str) -> None:
        """A model version's heading: a shaded band."""
        self.set_font(FONT, "B", 11)
        self.set_text_color(*INK)
        self.set_fill_color(*BAND_FILL)
        self.cell(0, 7, self.fit(latin1_safe(title)), fill=True, new_x=XPos.LMARGIN,
                  new_y=YPos.NEXT)
        self.set_fill_color(255, 255, 255)  # tables below would take the band's colour
        self.ln(1.5)

    def key_values(self, rows: Sequence[tuple[str, str]]) -> None:
        self.set_font(FONT, "", 9)
        self.set_text_color(*INK)
        self.set_draw_color(205, 210, 218)
        with self.table(col_widths=(38, 142), first_row_as_headings=False, text_align="LEFT",
                        borders_layout="HORIZONTAL_LINES", line_height=4.6,
                        padding=(1.2, 1.5)) as table:
            for key, value in rows:
                row = table.row()
                row.cell(latin1_safe(key), style=KEYS)
                row.cell(latin1_safe(clip(value)))

    def grid(self, headings: Sequence[str], widths: Sequence[int],
             rows: Sequence[Sequence[str]], size: float = 8) -> None:
        self.set_font(FONT, "", size)
        self.set_text_color(*INK)
        self.set_draw_color(205, 210, 218)
        with self.table(col_widths=widths, text_align="LEFT", headings_style=HEADINGS,
                        cell_fill_color=STRIPE_FILL, cell_fill_mode=TableCellFillMode.ROWS,
                        borders_layout="HORIZONTAL_LINES", line_height=size * 0.5,
                        padding=(1, 1.2), repeat_headings=1, v_align="TOP") as table:
            table.row([latin1_safe(h) for h in headings])
            for values in rows:
                table.row([latin1_safe(clip(v)) for v in values])


def render_audit_pdf(report: AuditReportDocument) -> bytes:
    """The report as PDF bytes."""
    pdf = _ReportPdf(report)
    pdf.add_page()
    _cover(pdf, report)
    pdf.section("1. Model lineage")
    if not report.lineage:
        pdf.text_line("The project has no model versions yet.", color=MUTED)
    for model in report.lineage:
        # A model's block starts on a new page rather than break, unless it fills one itself.
        with pdf.offset_rendering() as trial:
            _model_block(trial, model)
        if trial.page_break_triggered and pdf.get_y() > pdf.t_margin + 30:
            pdf.add_page()
        _model_block(pdf, model)
    pdf.section("2. Audit events")
    pdf.text_line(f"{len(report.events)} event(s) from {period_text(report.since, report.until)}"
                  ", oldest first. Details summarise what changed; the CSV or JSON export "
                  "holds every field and hash.", size=9, color=MUTED, height=4.8)
    pdf.ln(2)
    if report.events:
        pdf.grid(("#", "Time (UTC)", "Actor", "Action", "Object", "Details"), EVENT_WIDTHS,
                 [(str(e.seq), stamp(e.at), e.actor, e.action, clip(e.object, 120), e.details)
                  for e in report.events], size=7.5)
    else:
        pdf.text_line("No events were recorded in this period.", color=MUTED)
    return bytes(pdf.output())


def write_audit_pdf(report: AuditReportDocument, path: Path) -> None:
    """Render ``report`` to ``path`` atomically: a reader sees the old file or the new one."""
    atomic_write_bytes(Path(path), render_audit_pdf(report))


def _cover(pdf: _ReportPdf, report: AuditReportDocument) -> None:
    pdf.text_line("Audit report", size=24, style="B", height=12)
    pdf.text_line(clip(report.project_name, NAME_LIMIT) or "EdgeLoop project", size=14,
                  color=MUTED, height=8)
    pdf.ln(4)
    integrity = (f"intact: {report.chain_events:,} event(s), hash chain verified"
                 if report.chain_intact else
                 f"BROKEN: {len(report.chain_problems)} problem(s) in "
                 f"{report.chain_events:,} event(s), listed below")
    pdf.key_values([
        ("Project", clip(report.project_name, 3 * NAME_LIMIT)),
        ("Period", period_text(report.since, report.until)),
        ("Generated", f"{stamp(report.generated_at)} UTC"),
        ("Prepared by", report.prepared_by or "-"),
        ("Audit trail", integrity),
        ("Model versions", str(len(report.lineage))),
        ("Events in period", str(len(report.events))),
    ])
    for problem in report.chain_problems[:50]:
        pdf.text_line(f"- {problem}", size=9, color=ALARM, height=4.8)
    pdf.ln(3)
    pdf.text_line(
        "The model lineage shows, for every model version, the frozen dataset version it was "
        "trained on, its training run, its gate verdict, who approved it and where it was "
        "deployed. The events are the project's append-only audit trail; each is chained to "
        "the one before by a hash, so an edited or deleted event shows. All times are UTC.",
        size=9, color=MUTED, height=4.8)


def _model_block(pdf: _ReportPdf, model: ModelLineage) -> None:
    pdf.band(f"{model.version}  ({model.kind} model, {model.status})")
    rows = [("Created", f"{stamp(model.created_at)} UTC")]
    if model.dataset is None:
        rows.append(("Dataset version", "none recorded (imported or registered, not trained "
                                        "here)"))
    else:
        data = model.dataset
        sizes = ", ".join(f"{split} {count:,}" for split, count in data.split_sizes)
        content = f", content sha256 {data.content_hash[:16]}..." if data.content_hash else ""
        rows.append(("Dataset version", f"{data.ref}, frozen {stamp(data.frozen_at)}{content}"))
        rows.append(("Split sizes", sizes))
    if model.training is None:
        rows.append(("Training run", "none recorded"))
    else:
        run = model.training
        rows.append(("Training run", f"#{run.run_id} {run.status}, started "
                                     f"{stamp(run.started_at)} by {run.started_by or 'unknown'}, "
                                     f"finished {stamp(run.finished_at)}"))
        rows.append(("Hyper-parameters", ", ".join(f"{k} {v}" for k, v in run.hyperparameters)
                     or "-"))
        rows.append(("Fine-tuned from", run.parent_model or "- (trained from scratch)"))
        rows.append(("Trained on", f"{run.device}, EdgeLoop {run.code_version or '?'}"))
    rows.append(("Test accuracy", "-" if model.test_accuracy is None
                 else f"{model.test_accuracy:.3f}"))
    rows.append(("Gate", model.gate))
    rows.append(("Approvals", "\n".join(
        f"{a.by}, {stamp(a.at)}" + (f": {a.note}" if a.note else "") for a in model.approvals)
        or "not approved"))
    pdf.key_values(rows)
    pdf.ln(1.5)
    if model.deployments:
        pdf.grid(("Rollout", "Device", "State", "When (UTC)", "Detail"), DEPLOYMENT_WIDTHS,
                 [("-" if d.rollout_id is None else f"#{d.rollout_id}", d.device_uid, d.state,
                   stamp(d.at), d.detail) for d in model.deployments])
    else:
        pdf.text_line("Deployments: none.", size=9, color=MUTED, height=4.8)
    pdf.ln(5)
