"""Plots from the recorded scores: ROC curves per protocol (learners overlaid) and score histograms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fasbench.results.store import ResultRow
from fasbench.runs.scoring import scores_path


def _pooled_scores(rows: Sequence[ResultRow]) -> tuple[np.ndarray, np.ndarray]:
    """Frame scores and labels of the rows' runs (seeds pooled), from each run's selected target scores."""
    from fasbench.evaluation import read_scores

    scores, labels = [], []
    for row in {(r.run_dir, r.selection): r for r in rows}.values():
        table, _ = read_scores(scores_path(Path(row.run_dir), row.selection, "target"))
        scores.append(table.score)
        labels.append(table.label)
    return np.concatenate(scores), np.concatenate(labels)


def write_plots(rows: Sequence[ResultRow], protocols: Sequence[str], learners: Sequence[str], out: Path) -> list[Path]:
    """One ROC figure per protocol and one histogram figure per (learner, protocol); returns the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for protocol in protocols:
        figure, axes = plt.subplots(figsize=(4.5, 4.5))
        for learner in learners:
            chosen = [r for r in rows if r.protocol == protocol and r.learner == learner]
            if not chosen:
                continue
            scores, labels = _pooled_scores(chosen)
            fpr, tpr, _ = roc_curve(labels, scores)
            axes.plot(fpr, tpr, label=f"{learner} (AUC {100 * roc_auc_score(labels, scores):.1f})")
            hist_figure, hist_axes = plt.subplots(figsize=(5, 3))
            bins = np.linspace(0, 1, 41)
            hist_axes.hist(scores[labels == 1], bins=bins, alpha=0.6, label="live", density=True)
            hist_axes.hist(scores[labels == 0], bins=bins, alpha=0.6, label="spoof", density=True)
            hist_axes.set(xlabel="P(live)", ylabel="density", title=f"{learner} on {protocol.replace('_', '→')}")
            hist_axes.legend()
            path = out / f"hist_{protocol}_{learner}.png"
            hist_figure.tight_layout()
            hist_figure.savefig(path, dpi=120)
            plt.close(hist_figure)
            written.append(path)
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        axes.set(xlabel="false live rate (FPR)", ylabel="true live rate (TPR)", title=protocol.replace("_", "→"))
        axes.legend(loc="lower right", fontsize=8)
        path = out / f"roc_{protocol}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
        written.append(path)
    return written
