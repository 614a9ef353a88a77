"""Leaderboard output formats: rich (terminal), Markdown, LaTeX (booktabs), CSV and JSON."""

from __future__ import annotations

import csv
import io
import json

from rich.table import Table

from fasbench.errors import UnknownNameError
from fasbench.results.leaderboard import AVERAGE, Cell, Leaderboard

FORMATS = ("rich", "markdown", "latex", "csv", "json")


def column_title(column: str) -> str:
    """``ICM_O`` -> ``ICM→O``: sources, arrow, target."""
    return column.replace("_", "→") if column != AVERAGE else column


def metric_title(board: Leaderboard, metric: str) -> str:
    arrow = "↑" if board.higher_is_better.get(metric, False) else "↓"
    return f"{metric}{arrow}"


TIED = "†"  # not significantly worse than the best (the caption says how that was tested)


def format_cell(cell: Cell | None) -> str:
    """Percent with two decimals; the spread only when there is more than one seed; † when the cell is not
    significantly worse than its column's best."""
    if cell is None:
        return "–"
    text = f"{100 * cell.mean:.2f}"
    text = text if cell.n < 2 else f"{text} ± {100 * cell.std:.2f}"
    return f"{text} {TIED}" if cell.tied else text


def format_extra(kind: str, value: float | None) -> str:
    """A reported number (percent) or a gap (signed points)."""
    if value is None:
        return "–"
    return f"{100 * value:+.2f}" if kind.startswith("gap") else f"{100 * value:.2f}"


def _extra_rows(board: Leaderboard, learner: str) -> list[tuple[str, list[str]]]:
    """(label, texts in column order) of the reported and gap rows under ``learner``."""
    return [
        (f"  {kind}", [format_extra(kind, values.get(key)) for key in _columns(board)])
        for kind, values in board.reported_rows(learner)
    ]


def _columns(board: Leaderboard) -> list[tuple[str, str]]:
    return [(column, metric) for column in board.columns for metric in board.metrics]


def to_rich(board: Leaderboard) -> Table:
    table = Table(caption=board.caption, caption_justify="left")
    table.add_column("Learner", style="bold")
    for column, metric in _columns(board):
        table.add_column(f"{column_title(column)}\n{metric_title(board, metric)}", justify="right")
    for learner in board.learners:
        row = [learner]
        for column, metric in _columns(board):
            cell = board.cells.get((learner, column, metric))
            text = format_cell(cell)
            row.append(f"[bold]{text}[/bold]" if cell is not None and cell.best else text)
        table.add_row(*row)
        for label, texts in _extra_rows(board, learner):
            table.add_row(f"[dim]{label}[/dim]", *(f"[dim]{text}[/dim]" for text in texts))
    return table


def to_markdown(board: Leaderboard) -> str:
    header = ["Learner"] + [f"{column_title(c)} {metric_title(board, m)}" for c, m in _columns(board)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for learner in board.learners:
        row = [learner]
        for column, metric in _columns(board):
            cell = board.cells.get((learner, column, metric))
            text = format_cell(cell)
            row.append(f"**{text}**" if cell is not None and cell.best else text)
        lines.append("| " + " | ".join(row) + " |")
        for label, texts in _extra_rows(board, learner):
            lines.append("| " + " | ".join([f"_{label.strip()}_", *texts]) + " |")
    return "\n".join(lines) + f"\n\n{board.caption}\n"


def _latex_escape(text: str) -> str:
    """Escape LaTeX specials; also typeset the arrow and the plus-minus sign in math mode."""
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text.replace("→", r"$\to$").replace("±", r"$\pm$").replace(TIED, r"$^\dagger$")


def to_latex(board: Leaderboard) -> str:
    n_metrics = len(board.metrics)
    spec = "l" + "".join("|" + "r" * n_metrics for _ in board.columns)
    group = " & ".join(rf"\multicolumn{{{n_metrics}}}{{c}}{{{_latex_escape(column_title(c))}}}" for c in board.columns)
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    metrics = " & ".join(
        f"{_latex_escape(m)} {arrows[board.higher_is_better.get(m, False)]}"
        for _ in board.columns
        for m in board.metrics
    )
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        rf"Learner & {group} \\",
        rf" & {metrics} \\",
        r"\midrule",
    ]
    for learner in board.learners:
        row = [_latex_escape(learner)]
        for column, metric in _columns(board):
            cell = board.cells.get((learner, column, metric))
            text = _latex_escape(format_cell(cell))
            row.append(rf"\textbf{{{text}}}" if cell is not None and cell.best else text)
        lines.append(" & ".join(row) + r" \\")
        for label, texts in _extra_rows(board, learner):
            lines.append(" & ".join([rf"\quad\textit{{{label.strip()}}}", *texts]) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{_latex_escape(board.caption)}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(board: Leaderboard) -> str:
    """Long format, one line per (learner, column, metric); values as fractions, not percent."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["learner", "protocol", "metric", "mean", "std", "n", "best"]
    marks = bool(board.significance)
    writer.writerow(header + (["tied"] if marks else []))
    for learner in board.learners:
        for column, metric in _columns(board):
            cell = board.cells.get((learner, column, metric))
            if cell is not None:
                mean, std = f"{cell.mean:.6f}", f"{cell.std:.6f}"
                tied = [int(cell.tied)] if marks else []
                writer.writerow([learner, column, metric, mean, std, cell.n, int(cell.best), *tied])
        for kind, values in board.reported_rows(learner):
            for (column, metric), value in values.items():
                tied = [""] if marks else []
                writer.writerow([f"{learner} ({kind})", column, metric, f"{value:.6f}", "", "", "", *tied])
    return buffer.getvalue()


def to_json(board: Leaderboard) -> str:
    cells = [
        {
            "learner": lrn, "protocol": col, "metric": m, "mean": c.mean, "std": c.std, "n": c.n, "best": c.best,
            "config_id": board.config_ids.get((lrn, col)), **({"tied": c.tied} if board.significance else {}),
        }
        for lrn in board.learners
        for col, m in _columns(board)
        if (c := board.cells.get((lrn, col, m))) is not None
    ]  # fmt: skip
    meta = {k: getattr(board, k) for k in ("suite", "threshold_policy", "selection", "level")}
    document = {**meta, "caption": board.caption, "cells": cells}
    if board.reported:
        document["reported"] = [
            {"learner": lrn, "protocol": col, "metric": m, "value": value, "source": board.reported_sources[lrn],
             "gap": board.cells[(lrn, col, m)].mean - value if (lrn, col, m) in board.cells else None,
             "paper_evaluation_mean": board.paper_cells.get((lrn, col, m))}
            for (lrn, col, m), value in board.reported.items()
        ]  # fmt: skip
    return json.dumps(document, indent=2) + "\n"


def render(board: Leaderboard, fmt: str) -> str | Table:
    """The board in ``fmt`` (one of FORMATS): a rich Table for "rich", text otherwise."""
    renderers = {"rich": to_rich, "markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
    if fmt not in renderers:
        raise UnknownNameError("format", fmt, FORMATS)
    return renderers[fmt](board)
