"""``fasbench metrics SCORES.h5``: the metrics of a scores file, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from fasbench.console import out, warn_broken

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
    parser.add_argument("--level", default="video", choices=("video", "frame"), help="score level (default: video)")
    parser.add_argument(
        "--reduce",
        default="mean",
        choices=("mean", "median", "max", "min"),
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
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.set_defaults(handler=run_metrics)


def run_metrics(args: argparse.Namespace) -> int:
    from fasbench.evaluation import evaluate, read_scores
    from fasbench.registry import get_registries

    registries = get_registries()
    warn_broken(registries)
    table, attrs = read_scores(args.scores)
    source_val = read_scores(args.source_val)[0] if args.source_val else None
    result = evaluate(
        table,
        policy=args.threshold_policy,
        source_val=source_val,
        level=args.level,
        metrics=args.metrics,
        bootstrap=args.bootstrap,
        seed=args.seed,
        registries=registries,
        reduce=args.reduce,
    )
    result["file"] = {"path": args.scores, "layout": attrs.get("layout")}
    if args.json:
        out().out(json.dumps(result, indent=2, allow_nan=False), highlight=False)
    else:
        out().print(_metrics_table(result, registries))
    return 0


def _metrics_table(result: dict[str, Any], registries: Any) -> Table:
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
        arrow = "↑" if getattr(registries.get("metrics", name).obj, "higher_is_better", True) else "↓"
        row = [f"{name} {arrow}", f"{100 * value:.2f}"]
        if "ci" in result:
            low, high = result["ci"][name]
            row.append(f"[{100 * low:.2f}, {100 * high:.2f}]")
        table.add_row(*row)
    return table
