"""Launching a matrix of runs: the launcher interface, the worker every launcher calls, and the launching
process's bookkeeping.

The launching process resolves every run (configs checked, data prepared, video lists hashed: ``Job``s) and
hands them to a launcher (a plugin of kind ``launchers``: ``local``, ``gpus``, ``slurm``, or yours), which
executes each exactly once with ``run_job`` wherever it likes (this process, one worker process per GPU, a
SLURM job array) and reports each ``Outcome`` as it comes. Workers never open the results store: a run's
directory (atomic ``record.json`` + ``done``, or ``failed.json``) is its result, and the launching process
indexes each reported directory into the store (``ingest``). So the SQLite store, whose WAL mode needs every
writer on one host, is written by one process only, even when the runs write to a cluster's shared disk.

Launching is idempotent: a finished run is skipped, a run whose lock another process holds is left alone
("locked"), an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fasbench.errors import FasbenchError

STATUSES = ("done", "skipped", "failed", "locked")
SLOT_VARIABLE = "FASBENCH_WORKER_SLOT"  # set by launchers with slots (gpus) in each worker's environment


@dataclass(frozen=True)
class Job:
    """One run to execute: its planned config (with the hash of its videos), where runs and caches live."""

    config: Mapping[str, Any]
    out: str
    cache_dir: str | None = None
    restart: bool = False
    plan: Any = field(default=None, compare=False, repr=False)  # in-process launchers: the launcher's own plan

    @property
    def run_dir(self) -> Path:
        from fasbench.runs.config import run_dir

        return run_dir(self.out, self.config)

    @property
    def run_id(self) -> str:
        from fasbench.runs.config import run_id

        return run_id(self.config)

    def describe(self) -> str:
        c = self.config
        return f"{c['learner']} on {c['protocol']} ({c['suite']}, seed {c['seed']}, {c['budget']} steps)"

    def to_json(self) -> dict[str, Any]:
        return {"config": dict(self.config), "out": self.out, "cache_dir": self.cache_dir, "restart": self.restart}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(data["config"], data["out"], data.get("cache_dir"), bool(data.get("restart", False)))


@dataclass(frozen=True)
class Outcome:
    """What became of a job: ``done`` (trained now), ``skipped`` (finished before), ``failed`` (``detail``: the
    error's first line; the run directory's failed.json has the rest) or ``locked`` (``detail``: the holder)."""

    job: Job
    status: str
    detail: str = ""
    worker: str = ""  # where it ran: "slot S, pid P on HOST" (empty: the launching process)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown outcome status {self.status!r}")


def worker_name() -> str:
    """This process as launchers report it: "slot S, pid P on HOST" (slot: ``$FASBENCH_WORKER_SLOT``)."""
    import os
    import socket

    slot = os.environ.get(SLOT_VARIABLE)
    where = f"pid {os.getpid()} on {socket.gethostname()}"
    return f"slot {slot}, {where}" if slot else where


def run_job(job: Job, *, progress: bool = False, worker: str | None = None) -> Outcome:
    """Execute one run without a results store (what every launcher's worker calls). A run that fails is
    reported, not raised: the other runs of the matrix go on. ``worker``: how the outcome names where it ran
    (default ``worker_name()``)."""
    from fasbench.console import debug_enabled
    from fasbench.plugins import installed_plugins
    from fasbench.runs.execute import execute
    from fasbench.runs.files import RunLockedError
    from fasbench.runs.plan import PlannedRun, plan_run

    host = worker_name() if worker is None else worker
    plugins = installed_plugins()
    try:
        plan: PlannedRun = job.plan or plan_run(job.config, plugins, cache_dir=job.cache_dir, progress=progress)
        if plan.config != dict(job.config):  # the data changed on disk since the launcher planned it
            raise FasbenchError(
                f"{job.describe()}: its videos or caches differ from those the launcher resolved (another copy of "
                "the data on this host?); prepare the same data everywhere, then launch again"
            )
        record = execute(plan, job.out, plugins, progress=progress, restart=job.restart)
    except RunLockedError as error:
        return Outcome(job, "locked", error.holder, host)
    except Exception as error:  # noqa: BLE001 - reported to the launcher; failed.json has it in full
        if debug_enabled():
            raise
        text = str(error).strip() or type(error).__name__
        return Outcome(job, "failed", text.splitlines()[0], host)
    return Outcome(job, "skipped" if record.get("skipped") else "done", "", host)


def run_identity(config: Mapping[str, Any], directory: str | Path) -> dict[str, Any]:
    """A run as the store's run table lists it (id, directory, learner, protocol, suite, seed, convention)."""
    from fasbench.runs.config import run_id

    return {
        "run_id": run_id(config),
        "run_dir": str(directory),
        **{key: config[key] for key in ("learner", "protocol", "suite", "seed")},
        "convention": config["data"]["convention"],
    }


def ingest(store: Any, outcome: Outcome) -> None:
    """Index a reported run directory into the store (the launching process only)."""
    from fasbench.results.store import read_finished
    from fasbench.runs import files

    job = outcome.job
    directory = job.run_dir
    if outcome.status in ("done", "skipped"):
        record, rows, history = read_finished(directory)
        store.put(rows)
        store.put_histories({record["run_id"]: history})
        store.mark_run(run_identity(job.config, directory), "done")
    elif outcome.status == "failed":  # whatever the store held of this run (a --restart of a finished one) goes
        store.forget(job.run_id)
        try:
            failure = files.read_json(directory / files.FAILED, "")
        except FasbenchError:  # the worker died before writing it, or it is damaged: the launcher's account
            failure = {}
        error = failure.get("error") or outcome.detail
        store.mark_run(run_identity(job.config, directory), "failed", error=error, step=failure.get("step"))


class Launcher(abc.ABC):
    """Executes jobs somewhere and reports their outcomes as they finish (registered as a ``launchers``
    plugin; ``fasbench bench/sweep --launcher NAME``). ``options`` holds the command's launcher options
    (``gpus``, ``device``, ``slurm_*``, and every ``--launcher-option KEY=VALUE``); a launcher reads what it
    knows and refuses a bad value before anything runs, in ``__init__``."""

    name: ClassVar[str] = ""
    in_process: ClassVar[bool] = False  # True: runs execute in the launching process (progress bars, torchrun)
    remote: ClassVar[bool] = False  # True: runs execute on other machines (their devices are not this one's)
    OPTIONS: ClassVar[tuple[str, ...]] = ()  # the option keys it reads, beside device and progress

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abc.abstractmethod
    def launch(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        """Execute every job once; yield each outcome when it is known (in any order)."""


def write_job(job: Job, path: Path) -> None:
    from fasbench import atomic

    atomic.write_json(path, job.to_json())


def read_outcome(path: Path, job: Job) -> Outcome:
    data = json.loads(path.read_text())
    return Outcome(job, data["status"], data.get("detail", ""), data.get("worker", ""))


def worker_main(argv: Sequence[str]) -> int:
    """``python -m fasbench.launch JOB.json OUTCOME.json``: run one job, write its outcome (a worker process)."""
    from fasbench import atomic

    job_file, outcome_file = (Path(a) for a in argv)
    job = Job.from_json(json.loads(job_file.read_text()))
    outcome = run_job(job)
    atomic.write_json(outcome_file, {"status": outcome.status, "detail": outcome.detail, "worker": outcome.worker})
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(worker_main(sys.argv[1:]))
