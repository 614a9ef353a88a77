"""The prepared GPU check: every figure fasbench's GPU targets need, in one run, into $OUT (Markdown + JSON).

Run through ``benchmarks/gpu_check.sh`` (which installs the project first). Sections, each timed, each
recorded even when it fails (the others go on; the exit status says whether any failed); they run in the
order 1, 2, 3, 3b, 4, 1b (1b's two compilations at full size come last):

1. ``rfmeta_step``: one RF-Meta training step at full size (256 px, width 1, 3 domains x 20 frames), the
   eager fp32 reference loop against fasbench's learner (fp32; bf16 + channels_last; + compile), interleaved
   (``benchmarks/timing.py``); target: fasbench's best at most 0.5x the reference's time.
1b. ``compile_gradients``: one step's gradients against the float64 truth, eager fp32 and compiled fp32
   (``hparams.compile``, refused on the CPU); target: compiled within fp32 rounding (under 1e-4 of the
   largest gradient and under 10x eager's error). Skipped in the dry run (tests/test_rfmeta.py runs it).
2. ``sync_free_step``: ``torch.cuda.set_sync_debug_mode("error")`` around ``update`` of every learner:
   no host-device synchronisation inside a training step.
3. ``protocol``: ``fasbench run rfmeta --protocol ICM_O`` at full size for ``--protocol-steps`` (200)
   steps on the synthetic suite, extrapolated to the benchmark's 5,000 steps and labelled as such;
   target: under 10 minutes on one H200.
3b. ``data_loading``: on that run's frame caches, blocks of RF-Meta steps fed by the runner's own training
   stream (``fasbench.data.domain_batches``, the run's workers) against the same blocks on one batch already
   on the device, interleaved, with no synchronisation inside a block (as the runner trains); and the GPU's
   busy share of each (kernel time over wall time, ``torch.profiler``); target: loading costs under 5 %.
4. ``learners``: every leaderboard learner's step time and peak GPU memory at full size.

``--dry`` (``GPU_CHECK_DRY=1``): the same code paths at tiny sizes on the CPU (what CI runs); its numbers
mean nothing. The script needs no network: ``gpu_check.sh`` installs the project from carried wheels
(``benchmarks/gpu_check_wheels.sh``) where the machine reaches no package index. Figures go to ``--out``
(``gpu_check.md``, ``gpu_check.json``, rewritten after every section, so a run cut short keeps what it
measured; and the two tables of ``bench_learners.py``); runs and frame caches to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from timing import interleaved  # noqa: E402

FAST = {"amp": "bf16", "channels_last": True}  # the protocol's speed settings
DRY_LEARNERS = ("binary_cnn", "rfmeta")  # the dry run checks the code paths, not every learner
TINY_DOMAIN = {"subjects": 4, "videos_per_type": 1, "frames_per_video": 2, "crop_size": 32, "depth_size": 4}


def tiny_benchmark(path: Path) -> Path:
    """The shipped registry.yaml with tiny synthetic domains (the dry run's protocol prepares in seconds)."""
    import yaml

    from fasbench.benchmark import PACKAGED

    data = yaml.safe_load(PACKAGED.read_text())
    for letter, binding in data["suites"]["synthetic"]["domains"].items():
        binding["options"] = {"domain": letter, **TINY_DOMAIN}
    path.write_text(yaml.safe_dump(data))
    return path


class Check:
    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.device = torch.device("cpu" if dry else "cuda")
        self.size = 32 if dry else 256
        self.width = 0.0625 if dry else 1.0
        self.sections: dict[str, dict[str, Any]] = {}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def section(self, name: str, run: Callable[[], dict[str, Any]], deadline: float | None = None) -> None:
        started = time.monotonic()
        if deadline is not None and started > deadline:
            reason = "skipped: the check's --deadline had passed before this section"
            self.sections[name] = {"status": "skipped", "seconds": 0.0, "error": reason}
            print(f"[gpu_check] {name}: skipped (deadline)", flush=True)
            return
        try:
            figures, status = run(), "ok"
        except Exception:  # noqa: BLE001 - recorded; the other sections go on
            figures, status = {"error": traceback.format_exc(limit=6)}, "failed"
        self.sections[name] = {"status": status, "seconds": round(time.monotonic() - started, 1), **figures}
        print(f"[gpu_check] {name}: {status} in {self.sections[name]['seconds']} s", flush=True)

    # -- 1. the RF-Meta step against the reference loop -----------------------------------------------
    def rfmeta_step(self) -> dict[str, Any]:
        from bench_rfmeta import build_variant, make_batches
        from fasbench_plugins.rfmeta import RFMeta

        backbone = {"type": "rfmeta_cnn", "width": self.width, "input_size": self.size}
        per_class = 2 if self.dry else 10
        batches = make_batches(RFMeta(backbone=backbone, num_domains=3).input_spec, per_class, self.device, seed=0)
        variants: dict[str, dict | None] = {
            "reference loop, eager fp32": None,
            "fasbench rfmeta, fp32": {},
            "fasbench rfmeta, bf16 + channels_last": FAST,
        }
        if not self.dry:
            variants["fasbench rfmeta, bf16 + channels_last + compile"] = {**FAST, "compile": True}
        steps = {}
        for label, hparams in variants.items():
            step, _ = build_variant(hparams, backbone, self.device)
            steps[label] = lambda step=step: step(batches)
        rounds, warmup = (1, 1) if self.dry else (10, 5)
        times = interleaved(steps, rounds=rounds, per_round=2, warmup=warmup, synchronize=self.synchronize)
        reference = times["reference loop, eager fp32"].median
        rows = {label: {"ms": 1000 * t.median, "x_reference": t.median / reference} for label, t in times.items()}
        best = min(row["x_reference"] for label, row in rows.items() if label.startswith("fasbench"))
        return {"shape": f"3 domains x {2 * per_class} frames, {self.size} px, width {self.width}", "variants": rows,
                "best_x_reference": best, "target": "<= 0.5", "met": best <= 0.5}  # fmt: skip

    # -- 1b. does compile keep the gradients? --------------------------------------------------------
    def compile_gradients(self) -> dict[str, Any]:
        """One step's gradients against the float64 truth, eager and compiled (hparams.compile), at full size
        (tiny in the dry run, on the CPU, where the option itself is refused)."""
        from fasbench_plugins.rfmeta import compile_gradient_errors

        if self.dry:  # two CPU compilations: tests/test_rfmeta.py runs this very function
            return {"skipped": "dry run: compile_gradient_errors is exercised by tests/test_rfmeta.py"}
        backbone = {"type": "rfmeta_cnn", "width": self.width, "input_size": self.size}
        errors = compile_gradient_errors(backbone, self.device, per_class=2)
        return {**errors, "target": "compiled fp32 error < 1e-4 and < 10x eager's", "met": errors["agrees"]}

    # -- 2. no synchronisation inside a step --------------------------------------------------------
    def sync_free_step(self) -> dict[str, Any]:
        """Steps 1 and LATE_STEP of every learner under ``set_sync_debug_mode("error")`` on CUDA, in fp32 and in
        the protocol's bf16 + channels_last; in the dry run the same steps under ``fasbench.testing.sync`` (the
        CPU's view of the same reads)."""
        from fasbench.benchmark import load_benchmark
        from fasbench.plugins import installed_plugins
        from fasbench.testing import random_domain_batches
        from fasbench.testing.learner import LATE_STEP

        plugins = installed_plugins()
        found: dict[str, str] = {}
        settings = {"fp32": {}} if self.dry else {"fp32": {}, "bf16 + channels_last": FAST}
        for name in DRY_LEARNERS if self.dry else load_benchmark().leaderboard["learners"]:
            learner_class = plugins.get("learners", name).obj
            backbone = {**learner_class.BACKBONE, "width": 0.25 if not self.dry else self.width, "input_size": 64}
            for setting, hparams in settings.items():
                learner = plugins.build(
                    "learners", {"type": name, "backbone": backbone, "hparams": {"batch_per_class": 2, **hparams}},
                    num_domains=3, seed=0, device=str(self.device),
                )  # fmt: skip
                batches = [b.to(self.device) for b in random_domain_batches(learner, 3, 2, seed=0)]
                learner.update(batches)  # the first step may set things up
                learner.budget = 2 * LATE_STEP
                self.synchronize()
                verdict = "no sync"
                for step in (1, LATE_STEP):  # early, and late in a long run (phases that start later)
                    learner.step = step
                    verdict = self.watch_step(learner, batches, step)
                    if verdict != "no sync":
                        break
                found[name if len(settings) == 1 else f"{name}, {setting}"] = verdict
        note = "dry run: host reads as fasbench.testing.sync finds them on the CPU" if self.dry else ""
        return {"learners": found, "met": all(v == "no sync" for v in found.values()), "note": note}

    def watch_step(self, learner: Any, batches: list, step: int) -> str:
        from fasbench.testing.sync import step_tensors, watching_host_reads

        if self.device.type != "cuda":
            with watching_host_reads(step_tensors(learner, batches)) as reads:
                learner.update(batches)
            return "no sync" if not reads else f"SYNC at step {step}: {reads[0]}"
        torch.cuda.set_sync_debug_mode("error")
        try:
            learner.update(batches)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            return (
                f"SYNC at step {step}: {first}" if "synchroniz" in first.lower() else f"FAILED at step {step}: {first}"
            )
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return "no sync"

    # -- 3. a protocol at full size -----------------------------------------------------------------
    def protocol_options(self) -> dict[str, Any]:
        """The preset and options of the protocol run (and of the data-loading section, on its caches)."""
        if self.dry:
            cfg = {"eval_every": 2, "backbone.input_size": 32, "backbone.width": 0.0625, "hparams.batch_per_class": 2}
            return {"preset": "cpu_demo", "cfg": cfg}
        cfg = {"eval_every": 100, "hparams.amp": "bf16", "hparams.channels_last": True}  # the convention's frames
        return {"preset": None, "cfg": cfg}

    def protocol(self, steps: int, work: Path) -> dict[str, Any]:
        runs = work / "protocol-runs"
        benchmark = ["--benchmark", str(tiny_benchmark(work / "tiny-registry.yaml"))] if self.dry else []
        options = self.protocol_options()
        argv = [sys.executable, "-m", "fasbench.cli", *benchmark, "run", "rfmeta", "--protocol", "ICM_O",
                "--suite", "synthetic", "--seeds", "0", "--budget", str(steps), "--out", str(runs),
                "--cache-dir", str(work / "cache"), "--no-progress", "--restart", "--device", self.device.type,
                "--preset", options["preset"] or "none", "--cfg-options"]  # fmt: skip
        argv += [
            f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in options["cfg"].items()
        ]
        started = time.monotonic()
        # from the work folder: ``-m`` puts the working directory first on sys.path, which must not be the checkout
        result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=work)
        wall = time.monotonic() - started
        if result.returncode != 0:
            raise RuntimeError(f"fasbench run failed ({result.returncode}):\n{result.stderr[-3000:]}")
        (record_file,) = runs.rglob("record.json")
        record = json.loads(record_file.read_text())
        train = float(record["train_seconds"])
        extrapolated = train / steps * 5000
        return {"steps": steps, "wall_seconds": round(wall, 1), "train_seconds": round(train, 1),
                "extrapolated_5000_steps_minutes": round(extrapolated / 60, 2),
                "label": f"measured {steps} steps (evaluations every {options['cfg']['eval_every']} at the "
                "convention's frames per video), extrapolated linearly to 5,000",
                "target": "< 10 min", "met": extrapolated < 600}  # fmt: skip

    # -- 3b. is the data loader ever the bottleneck? ----------------------------------------------------
    def data_loading(self, work: Path) -> dict[str, Any]:
        from fasbench.benchmark import load_benchmark
        from fasbench.data import domain_batches
        from fasbench.plugins import installed_plugins
        from fasbench.runs.config import resolve_run_config
        from fasbench.runs.plan import build_learner, plan_run, training_rows

        plugins = installed_plugins()
        benchmark = load_benchmark(tiny_benchmark(work / "tiny-registry.yaml")) if self.dry else load_benchmark()
        options = self.protocol_options()
        config = resolve_run_config(
            benchmark, plugins, learner="rfmeta", protocol="ICM_O", suite="synthetic", seed=0,
            device=str(self.device), preset=options["preset"], cfg_options=options["cfg"],
        )  # fmt: skip
        planned = plan_run(config, plugins, cache_dir=str(work / "cache"), progress=False)
        data = config["data"]
        rows = training_rows(config, planned.caches, planned.roles)
        learner = build_learner(config, plugins)
        stream = domain_batches(
            [planned.caches[letter] for letter in config["sources"]], rows, k=learner.batch_per_class,
            input_spec=learner.input_spec, seed=0, workers=int(data["workers"]), device=config["device"],
        )  # fmt: skip
        fixed = next(stream)
        block = 2 if self.dry else 20

        def loading() -> None:
            for _ in range(block):
                learner.update(next(stream))

        def cached() -> None:
            for _ in range(block):
                learner.update(fixed)

        variants = {"with data loading": loading, "one batch on the device": cached}
        rounds, warmup = (1, 1) if self.dry else (5, 1)
        times = interleaved(variants, rounds=rounds, per_round=1, warmup=warmup, synchronize=self.synchronize)
        ms = {name: 1000 * t.median / block for name, t in times.items()}
        busy = {name: self.busy_share(run) for name, run in variants.items()}
        cost = ms["with data loading"] / ms["one batch on the device"] - 1
        return {"ms_per_step": ms, "gpu_busy_share": busy, "loading_cost": cost, "workers": int(data["workers"]),
                "block": block, "target": "loading costs < 5 % of a step", "met": cost < 0.05}  # fmt: skip

    def busy_share(self, run: Callable[[], None]) -> float | None:
        """The share of one block's wall time in which the GPU ran kernels (CUDA kernel time / wall time under
        torch.profiler, which slows the host a little: a lower bound); None on the CPU."""
        if self.device.type != "cuda":
            return None
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile

        self.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            started = time.perf_counter()
            run()
            self.synchronize()
            wall = time.perf_counter() - started
        rows = [row for row in prof.key_averages() if row.device_type == DeviceType.CUDA]
        if not rows:  # the profiler saw no kernel (no CUPTI): unknown, not idle
            return None
        return sum(row.self_device_time_total for row in rows) / 1e6 / wall

    # -- 4. every learner at full size --------------------------------------------------------------
    def learners(self, out: Path) -> dict[str, Any]:
        size = ["--device", str(self.device.type), "--width", str(self.width), "--input-size", str(self.size)]
        if self.dry:
            size += ["--learners", *DRY_LEARNERS]
        timing = [sys.executable, str(HERE / "bench_learners.py"), *size, "--json", str(out / "learners.json")]
        timing += ["--k", "2", "--rounds", "1", "--per-round", "1", "--warmup", "1"] if self.dry else ["--rounds", "3"]
        memory = [
            sys.executable,
            str(HERE / "bench_learners.py"),
            *size,
            "--memory",
            "--json",
            str(out / "memory.json"),
        ]
        memory += ["--memory-k", "2"] if self.dry else []
        for argv in (timing, memory):
            result = subprocess.run(argv, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"bench_learners failed ({result.returncode}):\n{result.stderr[-3000:]}")
        peaks = {row["learner"]: row for row in json.loads((out / "memory.json").read_text())}
        rows = json.loads((out / "learners.json").read_text())
        for row in rows:
            peak = peaks.get(row["learner"], {})
            row.update(peak_mib=peak.get("peak_mib"), k_memory=peak.get("k"), memory_failed=peak.get("failed"))
        return {"table": rows, "note": "step time at k = 10 (timing); peak memory of one step at the learner's own k"}


def environment(dry: bool) -> dict[str, Any]:
    """What ran: the device, torch, and which copy of fasbench (the carried wheels' or the checkout's), with the
    files where that copy differs from this checkout (stale wheels would measure other code)."""
    import fasbench_plugins

    import fasbench

    device = torch.cuda.get_device_name() if not dry else f"CPU dry run ({torch.get_num_threads()} threads)"
    differ = []
    for package, checkout in ((fasbench, ROOT / "fasbench"), (fasbench_plugins, ROOT / "plugins")):
        installed = Path(package.__file__).parent
        for path in sorted(checkout.rglob("*.py")):
            copy = installed / path.relative_to(checkout)
            if not copy.is_file() or copy.read_bytes() != path.read_bytes():
                differ.append(str(path.relative_to(ROOT)))
    return {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "dry": dry,
            "fasbench_from": str(Path(fasbench.__file__).parent), "files_differing_from_checkout": differ}  # fmt: skip


def markdown(check: Check, env: dict[str, Any]) -> str:
    lines = [f"# fasbench GPU check: {env['device']}", "",
             f"torch {env['torch']} (CUDA {env['cuda']}); fasbench from {env['fasbench_from']}; dry run: {env['dry']}",
             ""]  # fmt: skip
    differ = env["files_differing_from_checkout"]
    if differ:
        lines += [f"**WARNING: the fasbench that ran differs from this checkout in {len(differ)} file(s)** "
                  f"({', '.join(differ[:5])}): rebuild the wheels (benchmarks/gpu_check_wheels.sh)", ""]  # fmt: skip
    for name, section in check.sections.items():
        lines += [f"## {name}: {section['status']} ({section['seconds']} s)", ""]
        if section["status"] != "ok":
            lines += ["```", section["error"], "```", ""]
            continue
        if name == "rfmeta_step":
            lines += [f"{section['shape']}; target: fasbench's best {section['target']} x the reference", "",
                      "| variant | ms / step | x reference |", "|---|---|---|"]  # fmt: skip
            lines += [f"| {k} | {v['ms']:.1f} | {v['x_reference']:.2f} |" for k, v in section["variants"].items()]
        elif name == "compile_gradients" and "skipped" not in section:
            lines += [
                f"one step's largest gradient error against float64, as a fraction of the largest gradient: eager "
                f"fp32 {section['eager_fp32']:.2e}, compiled fp32 {section['compiled_fp32']:.2e} (compiled float64 "
                f"{section['compiled_fp64']:.2e}); target {section['target']}"
            ]
        elif name == "sync_free_step":
            lines += ["| learner | update() |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in section["learners"].items()]
        elif name == "protocol":
            lines += [
                f"{section['label']}: {section['train_seconds']} s training, {section['wall_seconds']} s in all; "
                f"5,000 steps ~ {section['extrapolated_5000_steps_minutes']} min (target {section['target']})"
            ]
        elif name == "data_loading":
            busy = section["gpu_busy_share"]
            lines += [f"blocks of {section['block']} steps, no synchronisation inside a block; {section['workers']} "
                      "loader workers (the run's data.workers)", "",
                      "| steps fed by | ms / step | GPU busy (profiled) |", "|---|---|---|"]  # fmt: skip
            lines += [f"| {k} | {v:.1f} | {'-' if busy[k] is None else f'{100 * busy[k]:.0f} %'} |"
                      for k, v in section["ms_per_step"].items()]  # fmt: skip
            lines += [
                "",
                f"loading costs {100 * section['loading_cost']:+.1f} % of a step (target {section['target']})",
            ]
        elif name == "learners":
            lines += ["| learner | ms / step | x binary_cnn | peak MiB |", "|---|---|---|---|"]
            for row in section["table"]:
                peak = row.get("peak_mib")
                lines.append(f"| {row['learner']} | {row['ms']:.1f} | {row['x_binary_cnn']:.2f} | "
                             f"{'-' if peak is None else f'{peak:.0f}'} |")  # fmt: skip
        if "met" in section:
            lines += ["", f"target met: {section['met']}"]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where gpu_check.md, gpu_check.json and the learner tables go")
    parser.add_argument("--work", help="runs, frame caches and scratch files (default: a new temporary folder)")
    parser.add_argument("--dry", action="store_true", help="tiny sizes on the CPU (CI): the code paths only")
    parser.add_argument("--protocol-steps", type=int, default=200)
    parser.add_argument(
        "--deadline", type=float, default=450.0, help="seconds after which no section starts (the rest: skipped)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    from fasbench.atomic import write_text

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="fasbench-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine (GPU_CHECK_DRY=1 for the CPU dry run)", file=sys.stderr)
        return 1
    check = Check(args.dry)
    if not args.dry:
        torch.backends.cudnn.benchmark = True
    env = environment(args.dry)
    print(f"[gpu_check] {env}", flush=True)
    sections: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("sync_free_step", check.sync_free_step),  # the cheapest and the one figure no CPU can give: first
        ("rfmeta_step", check.rfmeta_step),
        ("protocol", lambda: check.protocol(4 if args.dry else args.protocol_steps, work)),
        ("data_loading", lambda: check.data_loading(work)),
        ("learners", lambda: check.learners(out)),
        ("compile_gradients", check.compile_gradients),  # two compilations at full size: the slowest, last
    ]
    deadline = started + args.deadline
    for name, run in sections:  # the figures are written after every section: a run cut short keeps them
        check.section(name, run, deadline)
        write_text(out / "gpu_check.json", json.dumps({**env, **check.sections}, indent=1))
        write_text(out / "gpu_check.md", markdown(check, env))
    print((out / "gpu_check.md").read_text())
    complete = all(s["status"] == "ok" for s in check.sections.values()) and not env["files_differing_from_checkout"]
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
