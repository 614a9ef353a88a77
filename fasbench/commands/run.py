"""``fasbench run`` (one learner on one protocol) and ``fasbench bench`` (the matrix, shardable)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path
from typing import Any

from mmengine.config import DictAction

from fasbench.benchmark import BenchmarkSpec, ModeSpec, load_benchmark
from fasbench.console import err, out, warn_broken
from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.plugins import installed_plugins
from fasbench.runs.sweep import draw


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", help="real or synthetic (default: registry.yaml defaults.suite)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: registry.yaml)")
    parser.add_argument("--budget", type=int, help="training steps (default: registry.yaml or the preset)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--preset", help="a registry.yaml preset; 'none' for none (default on CPU: defaults.cpu_preset, announced)"
    )
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        default={},
        metavar="KEY=VALUE",
        help="override config keys, e.g. hparams.lr=1e-4 backbone.width=0.5 data.workers=2",
    )
    parser.add_argument(
        "--mode",
        help="a registry.yaml mode: data convention + selection + threshold policy in one flag (e.g. ssdg); "
        "'paper': the learner's own (registry.yaml learners.NAME.mode)",
    )
    parser.add_argument("--out", default="runs", help="runs directory; holds results.sqlite (default: runs)")
    parser.add_argument("--cache-dir", help="frame cache directory (default: $FASBENCH_CACHE or ~/.cache/fasbench)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard what the run directories hold (checkpoint, result) and train from step 0",
    )


def _launcher_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("launching (see `fasbench list launchers`)")
    group.add_argument(
        "--launcher",
        default="local",
        help="local: one run after the other in this process (default); gpus: one worker process per GPU "
        "(--gpus); slurm: a job array through submitit; or a plugin's",
    )
    group.add_argument("--gpus", help="gpus launcher: the GPU indices, one worker each, e.g. 0,1,2,3 (default: all)")
    group.add_argument("--slurm-partition", help="slurm launcher: the partition")
    group.add_argument("--slurm-time", type=int, metavar="MINUTES", help="slurm launcher: time limit of a job")
    group.add_argument("--slurm-gpus-per-job", type=int, help="slurm launcher: GPUs of each job")
    group.add_argument("--slurm-mem", type=int, metavar="GB", help="slurm launcher: memory of each job")
    group.add_argument("--slurm-array-parallelism", type=int, help="slurm launcher: jobs of the array at once")
    group.add_argument(
        "--slurm-option", nargs="+", action=KeyValueAction, default={}, metavar="KEY=VALUE",
        help="slurm launcher: any other sbatch option, e.g. account=lab qos=high",
    )  # fmt: skip
    group.add_argument(
        "--launcher-option", nargs="+", action=KeyValueAction, default={}, metavar="KEY=VALUE",
        help="options of the launcher (e.g. cluster=local: the slurm launcher's submission path on this machine)",
    )  # fmt: skip


class KeyValueAction(argparse.Action):
    """``KEY=VALUE ...`` as a dict of strings, split at the first ``=`` (``mail-type=BEGIN,END`` stays one
    string); a bare ``KEY`` is True (an sbatch flag such as ``exclusive``)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        found = dict(getattr(namespace, self.dest) or {})
        for item in values:
            key, sep, value = item.partition("=")
            if not key:
                raise argparse.ArgumentError(self, f"expected KEY=VALUE, got {item!r}")
            found[key.replace("-", "_")] = value if sep else True
        setattr(namespace, self.dest, found)


def _flag(key: str) -> str:
    if key == "slurm_options":
        return "--slurm-option"
    if key == "gpus" or key in SLURM_ARGUMENTS:
        return "--" + key.replace("_", "-")
    return f"--launcher-option {key}"


def launcher_class(args: argparse.Namespace) -> Any:
    return installed_plugins().get("launchers", getattr(args, "launcher", "local")).obj


def build_launcher(args: argparse.Namespace, device: str) -> Any:
    """The launcher ``--launcher`` names, with the command's options; an option it does not take is refused
    (a typo never falls back to a default), all before anything runs."""
    chosen = launcher_class(args)
    given = {
        "gpus": getattr(args, "gpus", None),
        **{key: getattr(args, key, None) for key in SLURM_ARGUMENTS},
        "slurm_options": dict(getattr(args, "slurm_option", {}) or {}) or None,
        **dict(getattr(args, "launcher_option", {}) or {}),
    }
    given = {key: value for key, value in given.items() if value is not None}
    unknown = [key for key in given if key not in chosen.OPTIONS]
    if unknown:
        takes = ", ".join(_flag(key) for key in chosen.OPTIONS) or "no options"
        raise FasbenchError(
            f"--launcher {chosen.name} does not take {', '.join(_flag(key) for key in unknown)}; it takes: {takes}"
        )
    return chosen({"device": device, "progress": not args.no_progress, **given})


def launch_device(args: argparse.Namespace) -> str:
    """The device runs use: this machine's (``resolve_device``), except under a launcher whose runs execute on
    other machines (slurm), where ``auto`` means cuda when jobs get GPUs (``--slurm-gpus-per-job``) and
    nothing is checked here (a login node has no GPU)."""
    if not getattr(launcher_class(args), "remote", False):
        return resolve_device(args.device)
    if args.device != "auto":
        return args.device
    return "cuda" if getattr(args, "slurm_gpus_per_job", None) else "cpu"


SLURM_ARGUMENTS = ("slurm_partition", "slurm_time", "slurm_gpus_per_job", "slurm_mem", "slurm_array_parallelism")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="train a learner on a protocol and record the result",
        description="Train LEARNER on the protocol's source domains, select a checkpoint, "
        "score the target domain, compute the metrics and record the run.",
    )
    run.add_argument("learner")
    run.add_argument("--protocol", required=True, help="e.g. ICM_O (see `fasbench list protocols`)")
    _common(run)
    run.set_defaults(handler=run_one, skip_locked=False)

    bench = subparsers.add_parser(
        "bench",
        help="run the learners x protocols x seeds matrix (resumable)",
        description="Run every (learner, protocol, seed); finished runs are skipped, "
        "interrupted ones resume. --launcher gpus|slurm spreads it over GPUs or a cluster; --shard i/n splits it "
        "by hand between processes of one host.",
    )
    bench.add_argument("--learners", nargs="+", help="default: registry.yaml leaderboard.learners")
    bench.add_argument("--protocols", nargs="+", help="default: registry.yaml leaderboard.protocols")
    bench.add_argument(
        "--shard",
        default="0/1",
        help="run only the i-th of n slices of the matrix, for processes on one host sharing --out (default 0/1)",
    )
    bench.add_argument(
        "--sweep", type=int, default=1, metavar="N", help="N hyper-parameter trials per cell (1: defaults only)"
    )
    _common(bench)
    _launcher_options(bench)
    bench.set_defaults(handler=run_bench, skip_locked=True, sweep_seed=0)

    sweep = subparsers.add_parser(
        "sweep",
        help="random search over a learner's SEARCH_SPACE (each trial an ordinary, resumable run)",
        description="Trial 0 uses the default hyper-parameters; each other trial draws every hyper-parameter "
        "from its own hash of (sweep seed, trial, name). The leaderboard then shows a tuned row: per seed, the "
        "trial and checkpoint with the best source-validation EER.",
    )
    sweep.add_argument("learner")
    sweep.add_argument("--protocol", required=True)
    sweep.add_argument("--trials", type=int, required=True, help="number of trials, the default one included")
    sweep.add_argument("--sweep-seed", type=int, default=0, help="seed of the draws (default 0)")
    _common(sweep)
    _launcher_options(sweep)
    sweep.set_defaults(handler=run_sweep, skip_locked=True)


def resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise FasbenchError("--device cuda was asked for but torch sees no CUDA device; use --device cpu or auto")
    return requested


def resolve_preset(spec: BenchmarkSpec, requested: str | None, device: str) -> str | None:
    if requested == "none":
        return None
    if requested is not None:
        spec.preset(requested)
        return requested
    preset = spec.defaults.get("cpu_preset") if device == "cpu" else None
    if preset is not None:
        err().print(
            f"[yellow]CPU run: using preset {preset!r}[/] ({spec.preset(preset)['description']}); "
            "pass --preset none for the full configuration",
            highlight=False,
        )
    return preset


def _matrix(
    args: argparse.Namespace, spec: BenchmarkSpec, learners: list[str], protocols: list[str], trials: int = 1
) -> list[dict]:
    """Every run config of learners x protocols x trials x seeds (trial 0: default hyper-parameters; a trial
    t >= 1 draws them from the learner's SEARCH_SPACE, ``fasbench.runs.sweep``)."""
    from fasbench.runs.config import resolve_run_config

    plugins = installed_plugins()
    warn_broken(plugins)
    device = launch_device(args)
    preset = resolve_preset(spec, args.preset, device)
    seeds = args.seeds or spec.defaults.get("seeds", [0])
    for protocol in protocols:
        spec.protocol(protocol)
    sweep_seed = getattr(args, "sweep_seed", 0)
    spaces = {learner: _search_space(plugins, learner) if trials > 1 else {} for learner in learners}
    mode = spec.mode_for(getattr(args, "mode", None), learners)
    if mode is not None:
        err().print(
            f"mode {mode.name}: data convention {mode.convention}, selection {mode.selection}, threshold policy "
            f"{mode.threshold_policy}",
            highlight=False,
        )
    configs = [
        resolve_run_config(
            spec,
            plugins,
            learner=learner,
            protocol=protocol,
            suite=args.suite,
            seed=seed,
            budget=args.budget,
            device=device,
            preset=preset,
            convention=mode.convention if mode else None,
            cfg_options={
                **args.cfg_options,
                **{f"hparams.{k}": v for k, v in draw(spaces[learner], trial, sweep_seed).items()},
            },
        )
        for learner in learners
        for protocol in protocols
        for trial in range(trials)
        for seed in seeds
    ]
    for config in configs:
        _check_reported(spec, config, mode)
    return configs


def _search_space(plugins: Any, learner: str) -> dict:
    """The learner's SEARCH_SPACE, checked; a learner without one is refused, naming those that have one."""
    from fasbench.runs.sweep import check_space

    learner_class = plugins.get("learners", learner).obj
    space = dict(getattr(learner_class, "SEARCH_SPACE", {}))
    if not space:
        having = [e.name for e in plugins.entries("learners") if getattr(e.obj, "SEARCH_SPACE", None)]
        raise FasbenchError(
            f"learner {learner!r} declares no SEARCH_SPACE, so it cannot be swept; "
            f"learners with one: {', '.join(having)}"
        )
    check_space(learner, space, learner_class.all_defaults())
    return space


def _write_sweeps(args: argparse.Namespace, plans: list, trials: int) -> None:
    """One manifest per swept (learner, protocol): the space, the trials and their configuration ids."""
    from fasbench.runs.config import config_id
    from fasbench.runs.sweep import write_manifest

    plugins = installed_plugins()
    groups: dict = {}
    for plan in plans:
        config = plan.config
        groups.setdefault((config["learner"], config["protocol"]), []).append(config)
    for (learner, protocol), configs in groups.items():
        space = _search_space(plugins, learner)
        per_trial = len(configs) // trials
        first = configs[0]
        description = {
            "learner": learner,
            "protocol": protocol,
            "suite": first["suite"],
            "convention": first["data"]["convention"],
            "preset": first.get("preset"),
            "search_space": {k: list(v) for k, v in space.items()},
            "sweep_seed": getattr(args, "sweep_seed", 0),
            "n_trials": trials,
        }
        listed = [
            {
                "trial": trial,
                "hparams": draw(space, trial, description["sweep_seed"]),
                "config_id": config_id(configs[trial * per_trial]),
            }
            for trial in range(trials)
        ]
        path = write_manifest(args.out, description, listed)
        err().print(f"sweep of {learner} on {protocol}: {trials} trials, listed in {path}", highlight=False)


def reported(spec: BenchmarkSpec, mode: ModeSpec | None) -> tuple[str, str]:
    """(selection, threshold policy) of the tables a run prints: the mode's, else registry.yaml's defaults."""
    if mode is not None:
        return mode.selection, mode.threshold_policy
    return spec.defaults.get("selection", "last"), spec.defaults.get("threshold_policy", "test_eer")


def _check_reported(spec: BenchmarkSpec, config: dict, mode: ModeSpec | None = None) -> None:
    """Refuse, before training, a run whose table would need source validation it cannot have."""
    if config["data"]["validation"] != "none":
        return
    where = f"mode {mode.name}" if mode else f"{spec.path} defaults"
    for key, value in zip(("selection", "threshold_policy"), reported(spec, mode), strict=True):
        if value == "source_val":
            raise FasbenchError(
                f"data convention {config['data']['convention']!r} has no source validation (every source video "
                f"trains), but {where} set(s) {key} source_val; choose a convention with validation "
                f"or another {key}"
            )


def _execute_all(
    args: argparse.Namespace, spec: BenchmarkSpec, configs: list[dict[str, Any]], trials: int = 1
) -> list[dict]:
    """Plan every run (roles resolved, data prepared) in this process, hand the runs to the launcher, and
    index each finished run directory into the store as the launcher reports it: this process is the only
    one that writes the store."""
    from fasbench import distributed
    from fasbench.launch import Job, Outcome, ingest
    from fasbench.results.store import ResultsStore
    from fasbench.runs import files
    from fasbench.runs.plan import plan_run

    device = configs[0]["device"] if configs else "cpu"
    launcher = build_launcher(args, device)  # bad launcher options are refused before any planning
    if configs and distributed.init_from_environment(device):
        if not launcher.in_process:
            raise FasbenchError(
                f"under torchrun every rank runs the matrix itself: use --launcher local, not {launcher.name}"
            )
        err().print(f"data-parallel: rank {distributed.rank()} of {distributed.world_size()}", highlight=False)
    plugins = installed_plugins()
    opened: dict = {}  # every run's roles are resolved before the first one trains
    progress = not args.no_progress
    plans = [plan_run(c, plugins, cache_dir=args.cache_dir, progress=progress, opened=opened) for c in configs]
    main = distributed.is_main()
    store = ResultsStore(Path(args.out) / "results.sqlite", runs_root=args.out) if main else None
    if trials > 1 and main:
        _write_sweeps(args, plans, trials)
    keep_plans = launcher.in_process  # open caches cannot travel to other processes: workers plan again
    jobs = [Job(p.config, str(args.out), args.cache_dir, args.restart, p if keep_plans else None) for p in plans]
    settled: list[Outcome] = []
    if distributed.world_size() == 1 and not args.restart:  # finished and running runs never reach a launcher
        pending = []
        for job in jobs:
            if (job.run_dir / files.DONE).exists():
                settled.append(Outcome(job, "skipped"))
            elif (holder := files.lock_holder(job.run_dir)) is not None:
                settled.append(Outcome(job, "locked", holder))
            else:
                pending.append(job)
        jobs = pending
    records, failed = [], []
    for outcome in itertools.chain(settled, launcher.launch(jobs)):  # each indexed as soon as it is reported
        job = outcome.job
        where = f" on {outcome.worker}" if outcome.worker else ""
        if outcome.status == "locked":
            if not args.skip_locked:
                raise files.RunLockedError(
                    f"{job.run_dir} is being run by {outcome.detail}; wait for it to finish (rerun the command then: "
                    "a finished run is skipped) or stop that process", outcome.detail,
                )  # fmt: skip
            err().print(f"{job.describe()}: running elsewhere ({outcome.detail}): skipped", highlight=False)
            continue
        if main:
            ingest(store, outcome)
        if outcome.status == "failed":
            failed.append(outcome)
            err().print(f"[red]{job.describe()}: failed{where}:[/] {outcome.detail}", highlight=False, soft_wrap=True)
            continue
        said = "already finished: skipped" if outcome.status == "skipped" else "done"
        err().print(f"{job.describe()}: {said}{where}", highlight=False, soft_wrap=True)
        if main:
            records.append(files.read_record(job.run_dir))
    if failed:
        listing = "; ".join(f"{o.job.describe()}: {o.detail}" for o in failed)
        raise FasbenchError(
            f"{len(failed)} of {len(configs)} runs failed ({listing}); each run directory holds failed.json "
            f"(`fasbench status --out {args.out} --only failed`); launching again resumes them from their checkpoints"
        )
    return records


def _summary(spec: BenchmarkSpec, records: list[dict], mode: ModeSpec | None = None) -> None:
    from fasbench.results.leaderboard import build_leaderboard
    from fasbench.results.render import to_rich
    from fasbench.results.store import rows_from_record

    selection, policy = reported(spec, mode)
    level = spec.defaults.get("level", "video")
    for convention in sorted({record["convention"] for record in records}):
        rows = [
            row
            for record in records
            if record["convention"] == convention
            for row in rows_from_record(record, "")
            if (row.threshold_policy, row.selection, row.level) == (policy, selection, level)
        ]
        configs: dict[tuple[str, str], set[str]] = {}
        for row in rows:
            configs.setdefault((row.learner, row.protocol), set()).add(row.config_id)
        rows = [  # several configurations of one learner (a sweep's trials): one row each, named by config id
            dataclasses.replace(row, learner=f"{row.learner} [config {row.config_id}]")
            if len(configs[(row.learner, row.protocol)]) > 1
            else row
            for row in rows
        ]
        metrics = [m for m in ("HTER", "AUC", "TPR_at_FPR:1%", "ACER") if all(m in r.metrics for r in rows)]
        summary = spec.convention(convention).summary if convention in spec.conventions else ""
        board = build_leaderboard(
            rows, metrics=metrics, higher_is_better=higher_is_better(metrics), convention_summary=summary
        )
        out().print(to_rich(board))


def higher_is_better(metrics: list[str]) -> dict[str, bool]:
    """Each metric's direction from its plugin (``TPR_at_FPR:1%`` resolves to its family); unknown ones are left out."""
    plugins = installed_plugins()
    directions = {}
    for metric in metrics:
        try:
            directions[metric] = bool(plugins.get("metrics", metric).obj.higher_is_better)
        except UnknownNameError:
            continue
    return directions


def run_one(args: argparse.Namespace) -> int:
    spec = load_benchmark(args.benchmark)
    configs = _matrix(args, spec, [args.learner], [args.protocol])
    records = _execute_all(args, spec, configs)
    _finish(spec, records, spec.mode_for(args.mode, [args.learner]))
    return 0


def _finish(spec: BenchmarkSpec, records: list[dict], mode: ModeSpec | None) -> None:
    """Print the result table (rank 0 only) and leave the process group."""
    from fasbench import distributed

    if distributed.is_main() and records:
        _summary(spec, records, mode)
    distributed.destroy()


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise FasbenchError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise FasbenchError(f"--shard {text}: need 0 <= i < n")
    return index, count


def run_bench(args: argparse.Namespace) -> int:
    spec = load_benchmark(args.benchmark)
    index, count = parse_shard(args.shard)
    learners = args.learners or list(spec.leaderboard.get("learners", []))
    protocols = args.protocols or list(spec.leaderboard.get("protocols", spec.protocols))
    if args.seeds is None and "seeds" in spec.leaderboard:
        args.seeds = list(spec.leaderboard["seeds"])
    trials = args.sweep
    if trials < 1:
        raise FasbenchError(f"--sweep needs at least 1 trial, got {trials}")
    configs = _matrix(args, spec, learners, protocols, trials)
    if count > 1 and trials > 1:
        raise FasbenchError("--shard and --sweep together are not supported; run the sweep on one machine")
    configs = configs[index::count]
    err().print(f"shard {index}/{count}: {len(configs)} runs", highlight=False)
    _finish(spec, _execute_all(args, spec, configs, trials), spec.mode_for(args.mode, learners))
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    spec = load_benchmark(args.benchmark)
    if args.trials < 2:
        raise FasbenchError(f"--trials must be at least 2 (trial 0 is the defaults), got {args.trials}")
    configs = _matrix(args, spec, [args.learner], [args.protocol], args.trials)
    _finish(spec, _execute_all(args, spec, configs, args.trials), spec.mode_for(args.mode, [args.learner]))
    return 0
