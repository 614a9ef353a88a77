"""``fasbench attack``: the adversarial stress test of finished runs (white-box L-infinity PGD / FGSM)."""

from __future__ import annotations

import argparse

from fasbench.console import err, out
from fasbench.evaluation import LEVELS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from fasbench.attack import DIRECTIONS

    parser = subparsers.add_parser(
        "attack",
        help="adversarial stress test of finished runs: L-infinity PGD on P(live)",
        description="White-box L-infinity PGD (FGSM with --steps 1) on each run's final checkpoint, over its target "
        "frames; metrics at the clean run's threshold, written to RUN_DIR/attack.json and shown by `fasbench "
        "report`. A stress test: digital perturbations are outside the ISO/IEC 30107 presentation-attack threat "
        "model.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="finished run directories")
    parser.add_argument(
        "--eps",
        nargs="+",
        type=float,
        default=[1, 2, 4, 8],
        help="L-infinity budgets in units of 1/255 (default: 1 2 4 8)",
    )
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of eps/4 each; 1 = FGSM (default: 10)")
    parser.add_argument(
        "--direction",
        nargs="+",
        choices=DIRECTIONS,
        default=list(DIRECTIONS),
        help="spoof_to_live (the attacker's: spoof frames pushed towards live) and/or live_to_spoof (default: both)",
    )
    parser.add_argument("--threshold-policy", help="whose threshold the metrics use (default: registry.yaml)")
    parser.add_argument("--level", choices=LEVELS, help="score level (default: registry.yaml)")
    parser.add_argument("--cache-dir", help="the frame cache directory the runs used (default: $FASBENCH_CACHE)")
    parser.add_argument(
        "--device",
        choices=("run", "auto", "cpu", "cuda"),
        default="run",
        help="default: the device each run trained on",
    )
    parser.set_defaults(handler=run_attack)


def run_attack(args: argparse.Namespace) -> int:
    import json

    from fasbench.attack import attack_run
    from fasbench.benchmark import load_benchmark
    from fasbench.commands.run import resolve_device
    from fasbench.plugins import installed_plugins

    spec = load_benchmark(args.benchmark)
    plugins = installed_plugins()
    policy = args.threshold_policy or spec.defaults.get("threshold_policy", "test_eer")
    level = args.level or spec.defaults.get("level", "video")
    for run_dir in args.run_dirs:
        document = attack_run(
            run_dir,
            plugins,
            eps=args.eps,
            steps=args.steps,
            directions=args.direction,
            threshold_policy=policy,
            level=level,
            cache_dir=args.cache_dir,
            device=None if args.device == "run" else resolve_device(args.device),
        )
        err().print(f"wrote {run_dir}/attack.json ({document['seconds']:.1f} s)", highlight=False)
        shown = [
            {k: r[k] for k in ("direction", "attack", "eps", "mean_score_before", "mean_score_after")}
            | {m: r["metrics"][m] for m in ("HTER", "AUC", "APCER") if m in r["metrics"]}
            for r in document["results"]
            if r["steps"] == args.steps and (r["threshold_policy"], r["level"]) == (policy, level)
        ]
        out().print_json(json.dumps({"run": run_dir, "clean": document["clean"], "attacked": shown}))
    return 0
