"""Execute one run: train with periodic evaluation and checkpoints, select, score, record.

Resumable at every level: a finished run (``done`` marker) is skipped; an interrupted one (Ctrl-C,
kill -9, crash) restarts from ``checkpoint.pt``, and because the data stream and the learner's RNG are
functions of (seed, step), it reaches the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import signal
import threading
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasbench import atomic, distributed
from fasbench.console import err, get_logger
from fasbench.errors import FasbenchError, TrainingError
from fasbench.registry import Registries
from fasbench.results.store import ResultsStore, rows_from_record
from fasbench.runs import scoring
from fasbench.runs.config import run_dir, run_id
from fasbench.runs.environment import describe_environment

POLICIES = ("test_eer", "source_val", "fixed:0.5")
LEVELS = ("video", "frame")
log = get_logger("fasbench.run")
# Per-step losses and periodic evaluations go to the run's log.txt only (the terminal has the progress bar).
step_log = logging.getLogger("fasbench.run.steps")
step_log.propagate = False
step_log.setLevel(logging.INFO)


def open_domains(config: Mapping[str, Any], registries: Registries, cache_dir: str | None, progress: bool) -> dict:
    """The frame cache of every domain the run uses; generated datasets are prepared on demand."""
    from fasbench.data import cache_path, ensure_prepared, open_cache

    caches = {}
    for letter, domain in config["domains"].items():
        dataset_class = registries.get("datasets", domain["dataset"]).obj
        if getattr(dataset_class, "auto_prepare", False):
            path = ensure_prepared(
                domain["dataset"], domain["options"], cache_dir, registries=registries, progress=progress
            )
        else:
            path = cache_path(cache_dir, domain["dataset"], domain["options"])
        caches[letter] = open_cache(path)
    return caches


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    import torch

    if not path.exists():
        return None
    # Our own file (networks, optimisers, RNG states incl. numpy's): not loadable with weights_only=True.
    return torch.load(path, map_location="cpu", weights_only=False)


def _save_checkpoint(path: Path, learner: Any, trackers: Mapping[str, Any], train_seconds: float) -> None:
    import torch

    with atomic.atomic_path(path) as temporary:
        torch.save(
            {"learner": learner.state_dict(), "trackers": dict(trackers), "train_seconds": train_seconds}, temporary
        )


def _truncate_evals(path: Path, step: int) -> None:
    """Forget evaluation lines written after the checkpoint we resume from (they will be recomputed)."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        atomic.write_text(path, "".join(f"{line}\n" for line in kept))


class Run:
    """One run's state while it trains; ``execute`` is the entry point."""

    def __init__(
        self,
        config: Mapping[str, Any],
        out: str | Path,
        registries: Registries,
        *,
        cache_dir: str | None = None,
        progress: bool = True,
    ) -> None:
        self.config = dict(config)
        self.id = run_id(config)
        self.dir = run_dir(out, config)
        self.registries = registries
        self.cache_dir = cache_dir
        self.progress = progress

    def _prepare_directory(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config_file = self.dir / "config.json"
        stored = json.loads(config_file.read_text()) if config_file.exists() else None
        if stored is not None and run_id({k: v for k, v in stored.items() if k != "run_id"}) != self.id:
            raise FasbenchError(f"{config_file} belongs to another configuration; remove {self.dir} or use --out")
        atomic.write_json(config_file, {**self.config, "run_id": self.id})

    def execute(self, store: ResultsStore | None) -> dict[str, Any]:
        """Train (or resume), evaluate and record; returns the run record. A finished run is only re-read."""
        record_file = self.dir / "record.json"
        if (self.dir / "done").exists() and distributed.world_size() == 1:
            record = json.loads(record_file.read_text())
            if store is not None:
                store.put(rows_from_record(record, str(self.dir)))
            return {**record, "skipped": True}
        if distributed.is_main():
            self._prepare_directory()
        distributed.barrier()
        handler = logging.FileHandler(self.dir / f"log{'' if distributed.is_main() else distributed.rank()}.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        loggers = (logging.getLogger("fasbench"), step_log)
        for logger in loggers:
            logger.addHandler(handler)
        try:
            record = self._train_and_record()
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            handler.close()
        if store is not None and distributed.is_main():
            store.put(rows_from_record(record, str(self.dir)))
        return record

    def _train_and_record(self) -> dict[str, Any]:
        import torch

        config = self.config
        device = torch.device(config["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            raise FasbenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        if distributed.is_main():
            caches = open_domains(config, self.registries, self.cache_dir, self.progress)
            environment = describe_environment(device.type, self.registries)
            atomic.write_json(self.dir / "environment.json", {**environment, "world_size": distributed.world_size()})
        distributed.barrier()
        if not distributed.is_main():
            caches = open_domains(config, self.registries, self.cache_dir, progress=False)
        learner = self.registries.build(
            "learners",
            {"type": config["learner"], "backbone": config["backbone"], "hparams": config["hparams"]},
            num_domains=len(config["sources"]),
            device=device,
            seed=config["seed"],
        )
        checkpoint_file = self.dir / "checkpoint.pt"
        checkpoint = _load_checkpoint(checkpoint_file)
        trackers: dict[str, Any] = {rule: None for rule in scoring.SELECTION_RULES}
        train_seconds = 0.0
        if checkpoint is not None:
            learner.load_state_dict(checkpoint["learner"])
            trackers, train_seconds = checkpoint["trackers"], checkpoint["train_seconds"]
            log.info("resuming %s from step %d", self.dir, learner.step)
        log.info(
            "run %s: %s on %s (%s -> %s, suite %s, seed %d), %d steps on %s",
            self.id,
            config["learner"],
            config["protocol"],
            "+".join(config["sources"]),
            config["target"],
            config["suite"],
            config["seed"],
            config["budget"],
            config["device"],
        )
        if distributed.world_size() > 1:
            _average_gradients_before_steps(learner)
        if distributed.is_main():
            _truncate_evals(self.dir / "evals.jsonl", learner.step)
        self._loop(learner, caches, trackers, train_seconds, checkpoint_file)
        distributed.barrier()
        return self._record(learner) if distributed.is_main() else {"run_id": self.id, "rank": distributed.rank()}

    def _loop(self, learner: Any, caches: Mapping, trackers: dict, train_seconds: float, checkpoint_file: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from fasbench.data import domain_batches

        config = self.config
        budget = config["budget"]
        stream = domain_batches(
            [caches[letter] for letter in config["sources"]],
            split=config["data"]["train_split"],
            k=int(config["hparams"].get("batch_per_class", 10)),
            input_spec=learner.input_spec,
            seed=config["seed"],
            workers=int(config["data"]["workers"]),
            device=config["device"],
            start_step=learner.step,
        )
        learner.budget = budget
        main = distributed.is_main()
        writer = SummaryWriter(str(self.dir / "tensorboard"), purge_step=learner.step or None) if main else None
        bar = _progress_bar(self.progress and main, budget, learner.step, self.dir.name)
        started = time.monotonic()
        try:
            with _interrupt_at_step_boundary() as interrupt:
                while learner.step < budget:
                    logs = learner.update(distributed.shard_batches(next(stream)))
                    learner.step += 1
                    step = learner.step
                    if step % config["log_every"] == 0 or step == budget:
                        self._log_step(learner, step, logs, writer, bar)
                    if main and (step % config["eval_every"] == 0 or step == budget):
                        self._evaluate(learner, caches, trackers, writer)
                    periodic = step % config["checkpoint_every"] == 0 or step == budget
                    if main and (periodic or interrupt.requested):
                        elapsed = train_seconds + time.monotonic() - started
                        _save_checkpoint(checkpoint_file, learner, trackers, elapsed)
                    if interrupt.requested:
                        err().print(f"[yellow]interrupted at step {step}; rerun the same command to resume[/]")
                        raise KeyboardInterrupt
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    def _log_step(self, learner: Any, step: int, logs: Mapping[str, Any], writer: Any, bar: _progress_bar) -> None:
        """Check the losses are finite (one host sync per log step), log them, advance the bar."""
        learner.check_finite()
        values = {name: float(value) for name, value in logs.items()}
        bad = {n: v for n, v in values.items() if not math.isfinite(v)}
        if bad:
            raise TrainingError(
                f"non-finite {', '.join(f'{n}={v}' for n, v in bad.items())} at step {step} in "
                f"{self.dir}; the last checkpoint is kept. Lower the learning rate "
                "(--cfg-options hparams.lr=...) and run again"
            )
        step_log.info("step %d: %s", step, " ".join(f"{n}={v:.6g}" for n, v in values.items()))
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"train/{name}", value, step)
        bar.update(step, values.get("loss", next(iter(values.values()), float("nan"))))

    def _evaluate(self, learner: Any, caches: Mapping, trackers: dict, writer: Any) -> None:
        config, data = self.config, self.config["data"]
        target = scoring.score_domain(learner, caches[config["target"]], data["target_splits"], data, config["target"])
        source_val = scoring.concat_tables(
            [scoring.score_domain(learner, caches[s], [data["val_split"]], data, s) for s in config["sources"]]
        )
        summary = {
            "target": scoring.evaluate(target, policy="test_eer", level="video", metrics=["AUC", "EER", "HTER"]),
            "source_val": scoring.evaluate(source_val, policy="test_eer", level="video", metrics=["AUC", "EER"]),
        }
        line = {"step": learner.step, **{part: result["metrics"] for part, result in summary.items()}}
        atomic.append_line(self.dir / "evals.jsonl", json.dumps(line, sort_keys=True))
        step_log.info(
            "step %d: evaluation %s",
            learner.step,
            " ".join(f"{part}.{n}={v:.4f}" for part in ("target", "source_val") for n, v in line[part].items()),
        )
        for part in ("target", "source_val"):
            for name, value in line[part].items():
                writer.add_scalar(f"{part}/{name}", value, learner.step)
        run_attrs = {"run_id": self.id, **{key: config[key] for key in ("learner", "protocol", "suite", "seed")}}
        if learner.step == config["budget"]:
            scoring.save_selection(self.dir, "last", target, source_val, learner.step, run_attrs)
        for rule in scoring.SELECTION_RULES:
            value = scoring.selection_value(line, rule)
            best = trackers[rule]
            if scoring.is_better(rule, value, None if best is None else best["value"]):
                trackers[rule] = {"value": value, "step": learner.step}
                scoring.save_selection(self.dir, rule, target, source_val, learner.step, run_attrs)

    def _record(self, learner: Any) -> dict[str, Any]:
        config = self.config
        checkpoint = _load_checkpoint(self.dir / "checkpoint.pt")
        evaluations = scoring.final_evaluations(self.dir, POLICIES, LEVELS, config.get("bootstrap", 0), config["seed"])
        record = {
            "run_id": self.id,
            "learner": config["learner"],
            "protocol": config["protocol"],
            "suite": config["suite"],
            "seed": config["seed"],
            "status": "done",
            "steps": learner.step,
            "train_seconds": checkpoint["train_seconds"],
            "finished": time.time(),
            "selected_steps": {rule: t["step"] for rule, t in checkpoint["trackers"].items()},
            "evaluations": evaluations,
        }
        atomic.write_json(self.dir / "metrics.json", evaluations)
        atomic.write_json(self.dir / "record.json", record)
        atomic.write_text(self.dir / "done", f"{self.id}\n")
        log.info(
            "run %s finished after %d steps (%.1f s training); recorded in %s",
            self.id,
            learner.step,
            checkpoint["train_seconds"],
            self.dir,
        )
        return record


def _average_gradients_before_steps(learner: Any) -> None:
    """Make every outer optimiser step see gradients averaged over the data-parallel ranks."""
    optimizers = learner.optimizers()
    if not optimizers:
        raise FasbenchError(f"learner {type(learner).__name__} exposes no optimizers(); it cannot run data-parallel")
    for optimizer in optimizers:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.register_step_pre_hook(lambda *_, params=parameters: distributed.average_gradients(params))


@contextlib.contextmanager
def _interrupt_at_step_boundary():
    """Turn the first Ctrl-C (SIGINT) into a request the loop honours after the current step.

    The loop then saves a consistent checkpoint and stops; a second Ctrl-C interrupts at once (the
    last periodic checkpoint stands). Off the main thread, signals cannot be caught: plain behaviour.
    """
    state = types.SimpleNamespace(requested=False)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def request(signum: int, frame: Any) -> None:
        state.requested = True
        err().print("[yellow]Ctrl-C: stopping after this step (press again to stop at once)[/]")
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


class _progress_bar:  # noqa: N801 - used like a function
    """A rich progress bar with loss and steps/s, or nothing when progress is off."""

    def __init__(self, enabled: bool, total: int, completed: int, name: str) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err(),
            transient=False,
        )
        self.task = self.progress.add_task(name, total=total, completed=completed, loss=float("nan"), rate="")
        self.progress.start()

    def update(self, step: int, loss: float) -> None:
        if self.progress is not None:
            task = self.progress.tasks[self.task]
            rate = f"{task.speed:.1f} step/s" if task.speed else ""
            self.progress.update(self.task, completed=step, loss=loss, rate=rate)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def execute(
    config: Mapping[str, Any],
    out: str | Path,
    registries: Registries,
    store: ResultsStore | None,
    *,
    cache_dir: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume, or skip) one resolved run config under ``out``; returns its record."""
    return Run(config, out, registries, cache_dir=cache_dir, progress=progress).execute(store)
