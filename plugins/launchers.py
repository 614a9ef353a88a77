"""The built-in launchers (``fasbench bench/sweep --launcher NAME``; the interface is ``fasbench.launch``).

- ``local``: every run in this process, one after the other (progress bars; ``torchrun`` data parallelism).
- ``gpus``: one worker process per slot, ``--gpus 0,1,...`` (default: every visible GPU), each worker with
  ``CUDA_VISIBLE_DEVICES`` set to its GPU, pulling runs from one queue; a failed run is reported and the
  others go on. With ``--device cpu`` the slots are CPU worker processes (each with ``torch`` threads =
  cores / slots).
- ``slurm``: a SLURM job array through submitit (``--slurm-partition``, ``--slurm-time`` minutes,
  ``--slurm-gpus-per-job``, ``--slurm-mem`` GB, ``--slurm-array-parallelism``, ``--slurm-option KEY=VALUE``
  for any other sbatch option; ``--launcher-option cluster=local`` runs the same submission path on this
  machine, as the tests do). A preempted or timed-out job checkpoints at the next step boundary and is
  requeued; the requeued job resumes from the run directory bit-exactly.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fasbench import hookimpl
from fasbench.console import err
from fasbench.errors import FasbenchError
from fasbench.launch import SLOT_VARIABLE, Job, Launcher, Outcome, read_outcome, run_job, write_job

LAUNCH_DIR = ".launch"  # under --out: the gpus launcher's job and outcome files, the slurm launcher's logs


class LocalLauncher(Launcher):
    """Every run in this process, in order."""

    name = "local"
    in_process = True

    def launch(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        progress = bool(self.options.get("progress", False))
        for index, job in enumerate(jobs, 1):
            err().print(
                f"[bold]run {index}/{len(jobs)}[/]: {job.describe()} on {job.config['device']}", highlight=False
            )
            yield run_job(job, progress=progress, worker="")


def parse_slots(text: str | None, device: str) -> list[str]:
    """``--gpus 0,1,3`` as slot names (GPU ids as this process's ``CUDA_VISIBLE_DEVICES`` numbers them, or
    physical ids without it); default every GPU this process sees (none on a CPU machine: an error)."""
    if text:
        slots = [part.strip() for part in str(text).split(",") if part.strip()]
        if not slots or len(set(slots)) != len(slots) or not all(s.isdigit() for s in slots):
            raise FasbenchError(f"--gpus must list distinct GPU indices like 0,1,2, got {text!r}")
        return slots
    if device == "cpu":
        raise FasbenchError("--launcher gpus --device cpu needs --gpus to name the worker slots (e.g. --gpus 0,1)")
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        raise FasbenchError("--launcher gpus: no GPU is visible; name CPU worker slots with --device cpu --gpus 0,1")
    return [str(i) for i in range(count)]


def physical_gpu(slot: str) -> str:
    """The ``CUDA_VISIBLE_DEVICES`` value for a slot: its entry in this process's own list when it has one (so
    slots 0-3 under CUDA_VISIBLE_DEVICES=4,5,6,7 are GPUs 4-7), else the slot itself."""
    visible = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if not visible:
        return slot
    if int(slot) >= len(visible):
        raise FasbenchError(
            f"--gpus {slot}: this process sees {len(visible)} GPU(s) (CUDA_VISIBLE_DEVICES={','.join(visible)})"
        )
    return visible[int(slot)]


class GpuSlotsLauncher(Launcher):
    """One worker process per slot; each takes the next run from one queue."""

    name = "gpus"
    OPTIONS = ("gpus",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.device = str(options.get("device", "cuda"))
        self.slots = parse_slots(options.get("gpus"), self.device)
        if self.device != "cpu":
            self.gpus = {slot: physical_gpu(slot) for slot in self.slots}

    def _worker_env(self, slot: str) -> dict[str, str]:
        env = {**os.environ, SLOT_VARIABLE: slot}
        if self.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
            threads = max(1, (os.cpu_count() or 1) // len(self.slots))
            env.setdefault("OMP_NUM_THREADS", str(threads))
        else:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot]
        return env

    def _run_in_worker(self, job: Job, slot: str) -> Outcome:
        folder = Path(job.out) / LAUNCH_DIR
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / job.run_id
        job_file, outcome_file, log_file = (Path(f"{stem}.{suffix}") for suffix in ("job.json", "outcome.json", "log"))
        outcome_file.unlink(missing_ok=True)
        write_job(job, job_file)
        with open(log_file, "w", encoding="utf-8") as log:
            code = subprocess.call(
                [sys.executable, "-m", "fasbench.launch", str(job_file), str(outcome_file)],
                env=self._worker_env(slot),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if code != 0 or not outcome_file.exists():
            return Outcome(job, "failed", f"the worker process on slot {slot} exited with code {code}; see {log_file}")
        return read_outcome(outcome_file, job)

    def launch(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        todo: queue.Queue[Job] = queue.Queue()
        for job in jobs:
            todo.put(job)
        done: queue.Queue[Outcome | BaseException] = queue.Queue()

        def serve(slot: str) -> None:
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(self._run_in_worker(job, slot))
                except BaseException as error:  # noqa: BLE001 - handed to the launching thread
                    done.put(error)

        threads = [threading.Thread(target=serve, args=(slot,), daemon=True) for slot in self.slots]
        for thread in threads:
            thread.start()
        for _ in jobs:
            item = done.get()
            if isinstance(item, BaseException):
                raise item
            yield item
        for thread in threads:
            thread.join()


class SlurmRun:
    """The callable a SLURM job runs: one fasbench run; ``checkpoint`` (submitit's preemption protocol)
    requeues the same run, which resumes from its run directory."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self) -> Outcome:
        return run_job(self.job)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        # the requeued job resumes from the run directory: never restart it, whatever the first submission said
        return submitit.helpers.DelayedSubmission(SlurmRun(dataclasses.replace(self.job, restart=False)))


SLURM_OPTIONS = {  # fasbench option -> submitit parameter
    "slurm_partition": "slurm_partition",
    "slurm_time": "timeout_min",
    "slurm_gpus_per_job": "gpus_per_node",
    "slurm_mem": "mem_gb",
    "slurm_array_parallelism": "slurm_array_parallelism",
}


class SlurmLauncher(Launcher):
    """A job array through submitit: one job per run."""

    name = "slurm"
    remote = True
    OPTIONS = (*SLURM_OPTIONS, "slurm_options", "cluster", "poll_seconds")

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        try:
            import submitit  # noqa: F401
        except ImportError as error:
            raise FasbenchError("--launcher slurm needs submitit: pip install submitit") from error
        self.cluster = options.get("cluster") or "slurm"  # "local": submitit's local executor, this machine
        if self.cluster not in ("slurm", "local"):
            raise FasbenchError(f"--launcher-option cluster={self.cluster}: must be slurm (default) or local")
        if self.cluster == "slurm":
            if shutil.which("sbatch") is None:
                raise FasbenchError(
                    "--launcher slurm: there is no sbatch here; launch from a SLURM login node (or test the "
                    "submission path on this machine with --launcher-option cluster=local)"
                )
            if options.get("slurm_time") is None:
                raise FasbenchError(
                    "--launcher slurm needs --slurm-time MINUTES (a job's time limit; submitit's default is 5 "
                    "minutes): about a run's training time with margin, e.g. 240"
                )
        self.parameters: dict[str, Any] = {"name": "fasbench"}
        for option, parameter in SLURM_OPTIONS.items():
            if options.get(option) is not None:
                self.parameters[parameter] = options[option]
        extra = dict(options.get("slurm_options") or {})
        if extra:
            self.parameters["slurm_additional_parameters"] = extra
        self.poll_seconds = float(options.get("poll_seconds", 5.0))

    def executor(self, folder: Path) -> Any:
        import submitit

        executor = submitit.AutoExecutor(folder=str(folder), cluster=self.cluster)
        if self.cluster == "local":
            local = {k: v for k, v in self.parameters.items() if k in ("timeout_min", "gpus_per_node")}
            executor.update_parameters(**local)
        else:
            executor.update_parameters(**self.parameters)
        return executor

    def launch(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        import time

        if not jobs:
            return
        folder = Path(jobs[0].out) / LAUNCH_DIR / "slurm" / "%j"
        executor = self.executor(folder)
        try:
            with executor.batch():
                submitted = [(job, executor.submit(SlurmRun(job))) for job in jobs]
        except Exception as error:  # noqa: BLE001 - sbatch refused the array (partition, account, limits)
            raise FasbenchError(f"SLURM refused the job array: {str(error).strip()[-2000:]}") from error
        pending = list(submitted)
        while pending:
            still = []
            for job, handle in pending:
                if not handle.done():
                    still.append((job, handle))
                    continue
                try:
                    yield handle.result()
                except Exception as error:  # noqa: BLE001 - the job died outside run_job (node failure, OOM kill)
                    text = str(error).strip().splitlines()
                    yield Outcome(job, "failed", f"SLURM job {handle.job_id}: {text[-1] if text else error!r}")
            pending = still
            if pending:
                time.sleep(self.poll_seconds)


LAUNCHERS = (LocalLauncher, GpuSlotsLauncher, SlurmLauncher)


@hookimpl
def fasbench_register(registry: Any) -> None:
    for launcher in LAUNCHERS:
        registry.add("launchers", launcher.name, launcher)


__all__ = ["LAUNCHERS", "GpuSlotsLauncher", "LocalLauncher", "SlurmLauncher", "SlurmRun", "parse_slots"]
