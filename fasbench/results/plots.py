"""Plots from the recorded scores, with the table's numbers: ROC curves per protocol and score histograms.

Every curve is computed with fasbench's own ROC (``fasbench.evaluation``) at the table's score level (video
or frame), per run: a learner's curve is the mean TPR over its seeds on a common FPR grid with a band of
one standard deviation, and its legend gives the mean ± std AUC over seeds, the numbers of the table's
AUC column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasbench.evaluation import ScoreSample, roc_auc
from fasbench.results.store import ResultRow
from fasbench.runs.scoring import read_target

FPR_GRID = np.linspace(0.0, 1.0, 201)


def _sample(row: ResultRow) -> ScoreSample:
    """The scored target of one run at the row's level (video level: the mean of each video's frames), at the
    evaluation the row's selection chose (the last of them for a rule that averages several)."""
    rows = read_target(row.run_dir, row.selected_steps[-1], row.level)
    return ScoreSample(rows.score, rows.label, rows.attack_type)


def mean_roc(samples: Sequence[ScoreSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean TPR, its std, AUC per sample) over ``FPR_GRID``; each TPR the highest at or under that FPR's
    interpolation on the sample's exact ROC (the curve fasbench's AUC and TPR@FPR are computed from)."""
    curves = []
    aucs = []
    for sample in samples:
        roc = sample.curves
        curves.append(np.interp(FPR_GRID, roc.fpr[0], roc.tpr[0]))
        aucs.append(float(roc_auc(roc)[0]))
    stacked = np.vstack(curves)
    return stacked.mean(axis=0), stacked.std(axis=0), np.asarray(aucs)


def slug(name: str) -> str:
    """A learner label as a file-name part (a tuned row's label has spaces and colons)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, writing reproducible SVG (no date, fixed element ids)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "fasbench"
    import matplotlib.pyplot as plt

    return plt


def save(figure: Any, path: Path) -> None:
    """Write a figure (PNG at 120 dpi or reproducible SVG, by the suffix) and close it."""
    figure.tight_layout()
    if path.suffix == ".svg":
        figure.savefig(path, metadata={"Date": None})
    else:
        figure.savefig(path, dpi=120)
    figure.clear()
    pyplot().close(figure)


def write_plots(
    rows: Sequence[ResultRow], protocols: Sequence[str], learners: Sequence[str], out: Path, fmt: str = "png"
) -> list[Path]:
    """One ROC figure per protocol and one histogram figure per (learner, protocol); returns the paths.
    ``fmt``: png or svg. A learner keeps its colour in every figure (its place in ``learners``)."""
    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for protocol in protocols:
        figure, axes = plt.subplots(figsize=(4.5, 4.5))
        level = ""
        for index, learner in enumerate(learners):
            chosen = [r for r in rows if r.protocol == protocol and r.learner == learner]
            if not chosen:
                continue
            level = chosen[0].level
            samples = [_sample(row) for row in {r.run_dir: r for r in chosen}.values()]
            tpr, spread, aucs = mean_roc(samples)
            spread_text = f" ± {100 * aucs.std(ddof=1):.1f}" if len(aucs) > 1 else ""
            colour = f"C{index % 10}"
            label = f"{learner} (AUC {100 * aucs.mean():.1f}{spread_text})"
            axes.plot(FPR_GRID, tpr, label=label, color=colour)
            if len(samples) > 1:
                axes.fill_between(FPR_GRID, tpr - spread, tpr + spread, color=colour, alpha=0.15)
            path = _histogram(plt, samples, learner, protocol, level, out / f"hist_{protocol}_{slug(learner)}.{fmt}")
            written.append(path)
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        title = f"{protocol.replace('_', '→')}, {level} level, mean over seeds"
        axes.set(xlabel="false live rate (FPR)", ylabel="true live rate (TPR)", title=title)
        axes.legend(loc="lower right", fontsize=8)
        path = out / f"roc_{protocol}.{fmt}"
        save(figure, path)
        written.append(path)
    return written


def _histogram(plt, samples: Sequence[ScoreSample], learner: str, protocol: str, level: str, path: Path) -> Path:  # noqa: ANN001
    scores = np.concatenate([s.score for s in samples])
    labels = np.concatenate([s.label for s in samples])
    figure, axes = plt.subplots(figsize=(5, 3))
    bins = np.linspace(0, 1, 41)
    axes.hist(scores[labels == 1], bins=bins, alpha=0.6, label="live", density=True)
    axes.hist(scores[labels == 0], bins=bins, alpha=0.6, label="spoof", density=True)
    title = f"{learner} on {protocol.replace('_', '→')} ({level} level, {len(samples)} seeds pooled)"
    axes.set(xlabel="P(live)", ylabel="density", title=title)
    axes.legend()
    save(figure, path)
    return path
