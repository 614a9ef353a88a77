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
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fasbench import atomic, distributed
from fasbench.console import err, get_logger
from fasbench.data.roles import ProtocolRoles
from fasbench.errors import FasbenchError, TrainingError
from fasbench.evaluation import LEVELS, POLICY_NAMES
from fasbench.plugins import PluginRegistry
from fasbench.runs import files, scoring
from fasbench.runs.config import identity, run_dir, run_id
from fasbench.runs.environment import describe_environment
from fasbench.runs.interaction import ProgressBar, interrupt_at_step_boundary
from fasbench.runs.plan import PlannedRun, build_learner, plan_run, target_rows, training_rows
from fasbench.selection import read_evaluations, rules, selected
from fasbench.training import non_finite_tensors

DIVERGED_FIX = (
    "it is marked failed and nothing of it is recorded, the last finite checkpoint is kept. Lower the learning "
    "rate (--cfg-options hparams.lr=...) or disable mixed precision (hparams.amp=none): that is a new run"
)
log = get_logger("fasbench.run")
# Per-step losses and periodic evaluations go to the run's log.txt only (the terminal has the progress bar).
step_log = logging.getLogger("fasbench.run.steps")
step_log.propagate = False
step_log.setLevel(logging.INFO)


class Run:
    """One run's state while it trains; ``execute`` is the entry point."""

    def __init__(
        self,
        config: Mapping[str, Any],
        out: str | Path,
        plugins: PluginRegistry,
        caches: Mapping[str, Any],
        roles: ProtocolRoles,
        *,
        progress: bool = True,
    ) -> None:
        self.config = dict(config)
        self.step: int | None = None  # the learner's step while training (for failure records)
        self.id = run_id(config)
        self.dir = run_dir(out, config)
        self.plugins = plugins
        self.caches = caches
        self.roles = roles
        self.progress = progress
        data = self.config["data"]
        self.has_validation = data["validation"] != "none"
        self.policies = [p for p in POLICY_NAMES if self.has_validation or p != "source_val"]
        eval_frames = data["eval_frames_per_video"]
        self.target_rows = target_rows(config, caches, roles)
        self.validation_rows = {
            letter: caches[letter].video_rows(roles.sources[letter].validation, eval_frames)
            for letter in config["sources"]
            if self.has_validation
        }
        self.train_rows = training_rows(config, caches, roles)

    def _prepare_directory(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config_file = self.dir / "config.json"
        stored = json.loads(config_file.read_text()) if config_file.exists() else None
        if stored is not None and run_id(stored) != self.id:
            raise FasbenchError(f"{config_file} belongs to another configuration; remove {self.dir} or use --out")
        atomic.write_json(config_file, {**self.config, "run_id": self.id})

    def execute(self, *, restart: bool = False) -> dict[str, Any]:
        """Train (or resume), evaluate and record; returns the run record. A finished run is only re-read.

        The run directory is locked while this process works on it (a second process is refused with the
        holder named). A run that stops on an error (diverged, damaged input, crash) is marked failed in
        its directory, and nothing of it is recorded as a result. The run directory is the result: the
        launching process indexes it into the results store (``fasbench.launch.ingest``).
        """
        lock = files.run_lock(self.dir) if distributed.is_main() else contextlib.nullcontext()
        with lock:
            if restart and distributed.is_main():
                self._discard()
            if (self.dir / files.DONE).exists() and distributed.world_size() == 1:
                return {**files.read_record(self.dir), "skipped": True}
            if distributed.is_main():
                self._prepare_directory()
                atomic.write_json(self.dir / "videos.json", {**self.roles.as_json(), "counts": self.roles.counts()})
            distributed.barrier()
            with self._logging():
                try:
                    record = self._train_and_record()
                except Exception as error:
                    if distributed.is_main():
                        self._fail(error)
                    raise
            return record

    def _fail(self, error: BaseException) -> None:
        """Mark the run failed (``failed.json``) and log why."""
        failure = files.mark_failed(self.dir, error, self.step)
        log.error("run %s failed at step %s: %s", self.id, self.step, failure["first_line"])

    def _discard(self) -> None:
        """``--restart``: forget everything this run did (checkpoint, evaluations, scores, result)."""
        if self.dir.exists():
            for entry in self.dir.iterdir():
                if entry.name == files.LOCK:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            log.info("--restart: discarded the previous state of %s", self.dir)

    @contextlib.contextmanager
    def _logging(self):
        handler = logging.FileHandler(self.dir / f"log{'' if distributed.is_main() else distributed.rank()}.txt")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        loggers = (logging.getLogger("fasbench"), step_log)
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            handler.close()

    def _train_and_record(self) -> dict[str, Any]:
        import torch

        config = self.config
        device = torch.device(config["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            raise FasbenchError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        if distributed.is_main():
            environment = describe_environment(device.type, self.plugins)
            atomic.write_json(self.dir / "environment.json", {**environment, "world_size": distributed.world_size()})
        learner = build_learner(config, self.plugins, device)
        checkpoint_file = self.dir / files.CHECKPOINT
        checkpoint = files.load_checkpoint(checkpoint_file)
        train_seconds = 0.0
        if checkpoint is not None:
            learner.load_state_dict(checkpoint["learner"])
            train_seconds = checkpoint["train_seconds"]
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
            files.truncate_evals(self.dir / files.EVALS, learner.step)
            scoring.forget_evaluations_after(self.dir, learner.step)
            (self.dir / files.FAILED).unlink(missing_ok=True)  # an earlier failure is retried from its checkpoint
        self._loop(learner, train_seconds, checkpoint_file)
        distributed.barrier()
        return self._record(learner) if distributed.is_main() else {"run_id": self.id, "rank": distributed.rank()}

    def _loop(self, learner: Any, train_seconds: float, checkpoint_file: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        from fasbench.data import domain_batches

        config = self.config
        budget = config["budget"]
        stream = domain_batches(
            [self.caches[letter] for letter in config["sources"]],
            self.train_rows,
            k=learner.batch_per_class,
            input_spec=learner.input_spec,
            seed=config["seed"],
            workers=int(config["data"]["workers"]),
            device=config["device"],
            start_step=learner.step,
        )
        main = distributed.is_main()
        writer = SummaryWriter(str(self.dir / "tensorboard"), purge_step=learner.step or None) if main else None
        bar = ProgressBar(self.progress and main, budget, learner.step, self.dir.name)
        started = time.monotonic()
        self.step = learner.step
        try:
            with interrupt_at_step_boundary() as interrupt:

                def after_step(step: int, logs: Mapping[str, Any]) -> None:
                    """What the runner does between steps: log, evaluate, checkpoint, honour Ctrl-C."""
                    self.step = step
                    if step % config["log_every"] == 0 or step == budget:
                        self._log_step(learner, step, logs, writer, bar)
                    if main and (step % config["eval_every"] == 0 or step == budget):
                        self._evaluate(learner, writer)
                    periodic = step % config["checkpoint_every"] == 0 or step == budget
                    if main and (periodic or interrupt.requested):
                        self._check_state(learner, step)  # a checkpoint never holds a NaN
                        elapsed = train_seconds + time.monotonic() - started
                        state = {"learner": learner.state_dict(), "train_seconds": elapsed}
                        files.save_checkpoint(checkpoint_file, state)
                    if interrupt.requested:
                        if interrupt.handoff is not None:  # the scheduler's handler: requeue and exit
                            err().print(
                                f"[yellow]preempted at step {step}: checkpointed; handing over to the scheduler[/]"
                            )
                            interrupt.handoff()
                        err().print(f"[yellow]interrupted at step {step}; rerun the same command to resume[/]")
                        raise KeyboardInterrupt

                shards = (distributed.shard_batches(batches) for batches in stream)
                learner.fit(shards, budget, callbacks=[after_step])  # the one training loop (interfaces.Learner)
        finally:
            bar.close()
            if writer is not None:
                writer.close()

    def _check_state(self, learner: Any, step: int) -> None:
        """Stop a diverged run: every parameter and buffer must be finite (one device sync)."""
        bad = non_finite_tensors(learner.named_tensors())
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise TrainingError(
                f"the run diverged: by step {step}, {len(bad)} tensor(s) of the learner hold NaN or infinite values "
                f"({shown}); {DIVERGED_FIX} ({self.dir})"
            )

    def _log_step(self, learner: Any, step: int, logs: Mapping[str, Any], writer: Any, bar: ProgressBar) -> None:
        """Check the losses and the learner's tensors are finite (host syncs at log steps only), log, advance."""
        learner.check_finite()
        values = {name: float(value) for name, value in logs.items()}
        bad = {n: v for n, v in values.items() if not math.isfinite(v)}
        if bad:
            raise TrainingError(
                f"the run diverged: non-finite {', '.join(f'{n}={v}' for n, v in bad.items())} at step {step}; "
                f"{DIVERGED_FIX} ({self.dir})"
            )
        self._check_state(learner, step)
        step_log.info("step %d: %s", step, " ".join(f"{n}={v:.6g}" for n, v in values.items()))
        if writer is not None:
            for name, value in values.items():
                writer.add_scalar(f"train/{name}", value, step)
        bar.update(step, values.get("loss", next(iter(values.values()), float("nan"))))

    def _evaluate(self, learner: Any, writer: Any) -> None:
        """Score the target and the source validation videos; record every metric and keep the scores."""
        config, data, device = self.config, self.config["data"], self.config["device"]
        target_letter = config["target"]
        try:
            target = scoring.score_domain(
                learner, self.caches[target_letter], self.target_rows, data, target_letter, device
            )
            source_val = None
            if self.has_validation:
                source_val = scoring.concat_tables(
                    [
                        scoring.score_domain(learner, self.caches[letter], rows, data, letter, device)
                        for letter, rows in self.validation_rows.items()
                    ]
                )
        except TrainingError as error:
            raise TrainingError(f"{error} ({self.dir})") from error
        line = scoring.evaluation_record(learner.step, target, source_val, self.policies, LEVELS, self.plugins)
        run_attrs = {"run_id": self.id, **{key: config[key] for key in ("learner", "protocol", "suite", "seed")}}
        scoring.save_evaluation_scores(
            self.dir, learner.step, target, source_val, {**run_attrs, "convention": data["convention"]}
        )
        atomic.append_line(self.dir / files.EVALS, json.dumps(line, sort_keys=True))
        parts = [part for part in ("target", "source_val") if part in line]
        step_log.info(
            "step %d: evaluation %s",
            learner.step,
            " ".join(f"{part}.{n}={v:.4f}" for part in parts for n, v in line[part].items()),
        )
        for part in parts:
            for name, value in line[part].items():
                writer.add_scalar(f"{part}/{name}", value, learner.step)

    def _record(self, learner: Any) -> dict[str, Any]:
        config = self.config
        checkpoint = files.load_checkpoint(self.dir / files.CHECKPOINT)
        history = read_evaluations(self.dir / files.EVALS)
        evaluations = selected(history, rules(self.plugins))
        environment = files.read_json(self.dir / "environment.json", "rerun with --restart")
        record = {
            "run_id": self.id,
            "learner": config["learner"],
            "protocol": config["protocol"],
            "suite": config["suite"],
            "seed": config["seed"],
            "convention": config["data"]["convention"],
            "data": self._data_summary(),
            "status": "done",
            "steps": learner.step,
            "train_seconds": checkpoint["train_seconds"],
            "finished": time.time(),
            "config": identity(config, environment),
            "evaluation_steps": history.steps.tolist(),
            "evaluations": evaluations,
        }
        atomic.write_json(self.dir / "metrics.json", evaluations)
        files.write_record(self.dir, record, self.id)
        log.info(
            "run %s finished after %d steps (%.1f s training); recorded in %s",
            self.id,
            learner.step,
            checkpoint["train_seconds"],
            self.dir,
        )
        return record

    def _data_summary(self) -> dict[str, Any]:
        """Which videos produced the numbers: the roles' hash and counts, and each domain's copy against
        its dataset's canonical list (where the dataset ships one)."""
        canonical = {}
        for letter, cache in self.caches.items():
            found = cache.manifest.get("canonical")
            if found is not None:
                keys = ("name", "sha256", "expected", "present", "missing_count", "extra_count")
                canonical[letter] = {key: found.get(key) for key in keys}
        return {
            "convention": self.config["data"]["convention"],
            "videos_sha256": self.roles.sha256,
            "counts": self.roles.counts(),
            "canonical": canonical,
        }


def _average_gradients_before_steps(learner: Any) -> None:
    """Make every outer optimiser step see gradients averaged over the data-parallel ranks."""
    optimizers = learner.optimizers()
    if not optimizers:
        raise FasbenchError(f"learner {type(learner).__name__} exposes no optimizers(); it cannot run data-parallel")
    for optimizer in optimizers:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        optimizer.register_step_pre_hook(lambda *_, params=parameters: distributed.average_gradients(params))


def execute(
    run: PlannedRun | Mapping[str, Any],
    out: str | Path,
    plugins: PluginRegistry,
    *,
    cache_dir: str | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Run (or resume, or skip) one planned run (or a resolved config, planned here) under ``out``.

    ``restart`` discards whatever the run directory holds (checkpoint, result) and trains from step 0."""
    if not isinstance(run, PlannedRun):
        run = plan_run(run, plugins, cache_dir=cache_dir, progress=progress)
    return Run(run.config, out, plugins, run.caches, run.roles, progress=progress).execute(restart=restart)
