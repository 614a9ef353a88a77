"""``fasbench metrics SCORES.h5``: the metrics of a scores file, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from fasbench.console import out, warn_broken
from fasbench.errors import FasbenchError
from fasbench.evaluation import LEVELS, REDUCTIONS

SCORE_KINDS = ("probabilities", "logits", "distances")

PERCENT_NOTE = "values in %; JSON gives fractions"
SEED_LAYOUT_NOTE = "\nseed layout (score and label only): no video ids, so every frame counts as its own video"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="compute HTER, AUC, EER, TPR@FPR, APCER/BPCER/ACER from a scores file",
        description="Metrics of a scores file (fasbench's HDF5 layout, or the RF-Meta seed's score/label layout), "
        "under a named threshold policy, at video or frame level, optionally with bootstrap intervals.",
    )
    parser.add_argument("scores", metavar="SCORES.h5", help="scores file to evaluate (the target domain)")
    parser.add_argument(
        "--threshold-policy",
        default="test_eer",
        metavar="POLICY",
        help="test_eer (the target's own EER threshold, as papers report), source_val (EER threshold of "
        "--source-val scores), or fixed:<t> such as fixed:0.5 (default: test_eer)",
    )
    parser.add_argument("--source-val", metavar="PATH", help="held-out source-domain scores file (for source_val)")
    parser.add_argument("--level", default="video", choices=LEVELS, help="score level (default: video)")
    parser.add_argument(
        "--reduce",
        default="mean",
        choices=REDUCTIONS,
        help="how a video's frame scores make its score (default: mean)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        help="metric names (default: every registered metric; see `fasbench list metrics`)",
    )
    parser.add_argument("--bootstrap", type=int, default=0, metavar="B", help="resamples for 95%% intervals (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument(
        "--scores-are",
        default="probabilities",
        choices=SCORE_KINDS,
        help="what the file's scores are: probabilities (P(live) in [0, 1], the default; anything outside is "
        "refused), logits (P(live) = sigmoid(score)) or distances (>= 0, smaller = more live; P(live) = exp(-d))",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.set_defaults(handler=run_metrics)


def run_metrics(args: argparse.Namespace) -> int:
    from fasbench.evaluation import evaluate, read_scores
    from fasbench.plugins import installed_plugins

    plugins = installed_plugins()
    warn_broken(plugins)
    table, attrs = read_scores(args.scores)
    table = as_probabilities(table, args.scores_are, args.scores)
    source_val = None
    if args.source_val:
        source_val = as_probabilities(read_scores(args.source_val)[0], args.scores_are, args.source_val)
    result = evaluate(
        table,
        policy=args.threshold_policy,
        source_val=source_val,
        level=args.level,
        metrics=args.metrics,
        bootstrap=args.bootstrap,
        seed=args.seed,
        plugins=plugins,
        reduce=args.reduce,
    )
    result["file"] = {"path": args.scores, "layout": attrs.get("layout"), "scores_are": args.scores_are}
    if args.json:
        out().out(json.dumps(result, indent=2, allow_nan=False), highlight=False)
    else:
        out().print(_metrics_table(result, plugins))
    return 0


def as_probabilities(table: Any, kind: str, path: str) -> Any:
    """The table with its scores as P(live): checked to lie in [0, 1], or mapped from logits or distances."""
    import dataclasses

    import numpy as np

    score = table.score
    if kind == "logits":
        return dataclasses.replace(table, score=1.0 / (1.0 + np.exp(-score)))
    if kind == "distances":
        if (score < 0).any():
            raise FasbenchError(f"{path}: --scores-are distances, but {int((score < 0).sum())} scores are negative")
        return dataclasses.replace(table, score=np.exp(-score))
    outside = (score < 0) | (score > 1)
    if outside.any():
        raise FasbenchError(
            f"{path}: {int(outside.sum())} of {len(score)} scores lie outside [0, 1] (min {score.min():.4g}, max "
            f"{score.max():.4g}); fasbench reads a score as P(live). Say what they are: --scores-are logits "
            "(P(live) = sigmoid(score)) or --scores-are distances (smaller = more live; P(live) = exp(-d))"
        )
    return table


def _metrics_table(result: dict[str, Any], plugins: Any) -> Table:
    level = result["level"] + (f" ({result['reduce']} of frames)" if result["reduce"] else "")
    table = Table(
        title=f"{result['file']['path']}: {level} level, threshold {result['threshold']:.4g}",
        title_justify="left",
        caption=f"threshold policy {result['policy']}: {result['policy_description']}\n"
        f"{result['n_videos']} videos, {result['n_frames']} frames; {result['n_live']} live, "
        f"{result['n_spoof']} spoof at this level; {PERCENT_NOTE}"
        + (SEED_LAYOUT_NOTE if result["file"]["layout"] == "seed" else ""),
        caption_justify="left",
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    if "ci" in result:
        table.add_column(f"95% CI ({result['bootstrap']['resamples']} resamples)", justify="right")
    for name, value in result["metrics"].items():
        arrow = "↑" if getattr(plugins.get("metrics", name).obj, "higher_is_better", True) else "↓"
        row = [f"{name} {arrow}", f"{100 * value:.2f}"]
        if "ci" in result:
            low, high = result["ci"][name]
            row.append(f"[{100 * low:.2f}, {100 * high:.2f}]")
        table.add_row(*row)
    return table
