"""Launchers: GPU slots as CPU worker processes, SLURM through submitit's local executor (with a preempted job
requeued and resumed bit-exactly), a store written by the launching process only, ``fasbench status``."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import yaml
from tiny import tiny_benchmark

from fasbench.benchmark import load_benchmark
from fasbench.cli import main
from fasbench.launch import Job, run_job
from fasbench.plugins import installed_plugins
from fasbench.results.store import ResultsStore
from fasbench.runs import files
from fasbench.runs.config import resolve_run_config
from fasbench.runs.plan import plan_run

pytestmark = pytest.mark.usefixtures("one_thread")
SPY = """
import os
_log = os.environ.get("FASBENCH_TEST_STORE_LOG")
if _log:
    import fasbench.results.store as _store

    _init = _store.ResultsStore.__init__

    def _spy(self, *args, **kwargs):
        with open(_log, "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        _init(self, *args, **kwargs)

    _store.ResultsStore.__init__ = _spy
"""


@pytest.fixture()
def bench(tmp_path, monkeypatch):
    """A tiny benchmark; every process that opens a results store writes its pid to ``store_log``."""
    path = tiny_benchmark(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["presets"]["tiny"]["hparams"] = {"batch_per_class": 2}
    path.write_text(yaml.safe_dump(data))
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    store_log = tmp_path / "store-openers.txt"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(spy), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FASBENCH_TEST_STORE_LOG", str(store_log))
    opened = ResultsStore.__init__

    def spy_here(self, *args, **kwargs):
        with open(store_log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        opened(self, *args, **kwargs)

    monkeypatch.setattr(ResultsStore, "__init__", spy_here)
    out, cache = tmp_path / "runs", tmp_path / "cache"

    def cli(*argv: str) -> int:
        return main(["--benchmark", str(path), *argv])

    matrix = ["--protocols", "ICM_O", "MI_C", "--seeds", "0", "1", "--suite", "synthetic", "--preset", "tiny"]
    common = [*matrix, "--out", str(out), "--cache-dir", str(cache), "--no-progress"]
    return {"cli": cli, "out": out, "cache": cache, "common": common, "path": path, "store_log": store_log}


def store_rows(out):
    store = ResultsStore(out / "results.sqlite")
    return store.rows(selection="last", threshold_policy="test_eer", level="video")


def test_gpu_slots_as_cpu_workers_run_the_matrix_once_and_only_the_launcher_writes_the_store(bench, capsys):
    cli, out = bench["cli"], bench["out"]
    argv = ["bench", "--learners", "binary_cnn", *bench["common"], "--device", "cpu"]
    assert cli(*argv, "--launcher", "gpus", "--gpus", "0,1") == 0
    err = capsys.readouterr().err
    slots = {line.split("slot ")[1].split(",")[0] for line in err.splitlines() if "done on slot" in line}
    assert slots == {"0", "1"}, err  # both worker slots took runs
    rows = store_rows(out)
    assert sorted((r.protocol, r.seed) for r in rows) == [("ICM_O", 0), ("ICM_O", 1), ("MI_C", 0), ("MI_C", 1)]
    openers = set(bench["store_log"].read_text().split())
    assert openers == {str(os.getpid())}, "a worker process opened the results store"
    # launching again is idempotent: every run is skipped, nothing is added
    assert cli(*argv, "--launcher", "gpus", "--gpus", "0,1") == 0
    assert capsys.readouterr().err.count("already finished") == 4
    assert len(store_rows(out)) == 4
    # the store can go: the leaderboard indexes the finished run directories it finds missing
    for stale in out.glob("results.sqlite*"):
        stale.unlink()
    assert cli("leaderboard", "--out", str(out), "--preset", "tiny", "--format", "json") == 0
    table = json.loads(capsys.readouterr().out)
    assert [cell["n"] for cell in table["cells"]] == [2, 2]


def test_a_failed_run_is_reported_and_the_others_go_on(bench, capsys):
    cli, out = bench["cli"], bench["out"]
    argv = ["bench", "--learners", "binary_cnn", *bench["common"], "--device", "cpu", "--protocols", "MI_C"]
    assert cli(*argv, "--launcher", "gpus", "--gpus", "3", "--cfg-options", "hparams.lr=1e30") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "2 of 2 runs failed" in err and "fasbench status" in err
    assert len(list(out.rglob("failed.json"))) == 2  # the second run went on after the first failed
    failed = ResultsStore(out / "results.sqlite").runs(status="failed")
    assert sorted(r["seed"] for r in failed) == [0, 1] and all("non-finite" in r["error"] for r in failed)


def test_a_restarted_run_that_fails_leaves_no_result_of_its_former_self(bench, capsys, monkeypatch):
    from fasbench.runs.execute import Run

    cli, out = bench["cli"], bench["out"]
    argv = ["run", "binary_cnn", "--protocol", "MI_C", "--seeds", "0", "--suite", "synthetic", "--preset", "tiny",
            "--out", str(out), "--cache-dir", str(bench["cache"]), "--no-progress", "--device", "cpu"]  # fmt: skip
    assert cli(*argv) == 0 and len(store_rows(out)) == 1

    def broken(self):
        raise RuntimeError("the machine caught fire")

    monkeypatch.setattr(Run, "_train_and_record", broken)
    assert cli(*argv, "--restart") == 2
    assert "the machine caught fire" in capsys.readouterr().err
    assert store_rows(out) == []  # the discarded result is gone from the store too
    assert [r["status"] for r in ResultsStore(out / "results.sqlite").runs()] == ["failed"]


def test_bad_launcher_options_are_refused_before_anything_runs(bench, capsys):
    cli, out = bench["cli"], bench["out"]
    argv = ["bench", "--learners", "binary_cnn", *bench["common"], "--device", "cpu"]
    assert cli(*argv, "--launcher", "gpus") == 2
    assert "--device cpu needs --gpus" in capsys.readouterr().err
    assert cli(*argv, "--launcher", "gpus", "--gpus", "0,0") == 2
    assert "distinct GPU indices" in capsys.readouterr().err
    assert cli(*argv, "--launcher", "ray") == 2
    assert "unknown launcher 'ray'" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("config.json"))


def test_slurm_through_submitits_local_executor_runs_the_matrix(bench, capsys):
    pytest.importorskip("submitit")
    cli, out = bench["cli"], bench["out"]
    argv = ["bench", "--learners", "binary_cnn", *bench["common"], "--device", "cpu", "--seeds", "0"]
    launcher = ["--launcher", "slurm", "--slurm-time", "10", "--slurm-partition", "gpu"]
    assert cli(*argv, *launcher, "--launcher-option", "cluster=local", "poll_seconds=0.5") == 0
    assert sorted(r.protocol for r in store_rows(out)) == ["ICM_O", "MI_C"]
    assert set(bench["store_log"].read_text().split()) == {str(os.getpid())}
    assert list((out / ".launch" / "slurm").iterdir()), "submitit's job folders are under --out/.launch/slurm"


def test_slurm_options_reach_sbatch_and_every_unknown_or_missing_option_is_refused(
    bench, capsys, monkeypatch, tmp_path
):
    pytest.importorskip("submitit")
    from fasbench_plugins import launchers

    cli = bench["cli"]
    argv = ["bench", "--learners", "binary_cnn", *bench["common"], "--device", "cpu"]
    assert cli(*argv, "--launcher", "gpus", "--gpus", "0", "--slurm-time", "10") == 2
    assert "--launcher gpus does not take --slurm-time; it takes: --gpus" in capsys.readouterr().err
    assert cli(*argv, "--launcher", "slurm", "--launcher-option", "clustr=local") == 2
    assert "does not take --launcher-option clustr" in capsys.readouterr().err
    monkeypatch.setattr(launchers.shutil, "which", lambda name: None)
    assert cli(*argv, "--launcher", "slurm", "--slurm-time", "10") == 2
    assert "there is no sbatch here" in capsys.readouterr().err  # never a silent fallback to local jobs
    monkeypatch.setattr(launchers.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert cli(*argv, "--launcher", "slurm") == 2
    assert "needs --slurm-time MINUTES" in " ".join(capsys.readouterr().err.split())
    assert not any(bench["out"].rglob("config.json")), "a refused launch planned or ran something"

    from fasbench.cli import build_parser

    args = build_parser().parse_args(
        ["bench", "--launcher", "slurm", "--slurm-option", "account=lab", "mail-type=BEGIN,END", "exclusive"]
    )
    assert args.slurm_option == {"account": "lab", "mail_type": "BEGIN,END", "exclusive": True}
    options = {"slurm_partition": "gpu", "slurm_time": 240, "slurm_gpus_per_job": 1, "slurm_mem": 32}
    launcher = launchers.SlurmLauncher(
        {"device": "cuda", **options, "slurm_array_parallelism": 16, "slurm_options": args.slurm_option}
    )
    parameters = launcher.executor(tmp_path / "%j")._executor.parameters
    assert (parameters["partition"], parameters["time"], parameters["gpus_per_node"]) == ("gpu", 240, 1)
    assert (parameters["mem"], parameters["array_parallelism"]) == ("32GB", 16)
    assert parameters["additional_parameters"] == {"account": "lab", "mail_type": "BEGIN,END", "exclusive": True}


def _planned_job(bench, out, budget):
    spec, plugins = load_benchmark(bench["path"]), installed_plugins()
    config = resolve_run_config(
        spec, plugins, learner="binary_cnn", protocol="MI_C", suite="synthetic", seed=0, device="cpu",
        preset="tiny", budget=budget, cfg_options={"checkpoint_every": 2, "eval_every": 10},
    )  # fmt: skip
    plan = plan_run(config, plugins, cache_dir=str(bench["cache"]), progress=False)
    return Job(plan.config, str(out), str(bench["cache"]))


def test_a_preempted_slurm_job_checkpoints_is_requeued_and_resumes_bit_exactly(bench, tmp_path):
    submitit = pytest.importorskip("submitit")
    from fasbench_plugins.launchers import SlurmRun
    from submitit.local.local import LocalJobEnvironment

    budget = 120
    executor = submitit.AutoExecutor(folder=str(tmp_path / "submitit" / "%j"), cluster="local")
    executor.update_parameters(timeout_min=30)
    # the reference runs in a job too: the same process setup (torch threads), never interrupted
    assert executor.submit(SlurmRun(_planned_job(bench, tmp_path / "reference", budget))).result().status == "done"
    job = _planned_job(bench, tmp_path / "preempted", budget)
    handle = executor.submit(SlurmRun(job))
    checkpoint, lock = job.run_dir / files.CHECKPOINT, job.run_dir / files.LOCK
    deadline = time.monotonic() + 120
    while not (checkpoint.exists() and lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    holder = lock.read_text().split()
    assert holder[0] == "pid" and not handle.done(), "the run ended before it could be preempted"
    os.kill(int(holder[1]), LocalJobEnvironment._usr_sig())  # what SLURM sends before preemption or the time limit
    outcome = handle.result()
    assert outcome.status == "done"
    log = (handle.stderr() or "") + (handle.stdout() or "")
    assert "preempted at step" in log and "Requeued job" in log, log[-3000:]
    relative = job.run_dir.relative_to(job.out)
    got, want = files.read_record(job.run_dir), files.read_record(tmp_path / "reference" / relative)
    assert got["evaluations"] == want["evaluations"]  # every metric of every selection, bit for bit


def test_status_shows_done_running_failed_interrupted_and_not_started(bench, capsys, tmp_path):
    cli, out = bench["cli"], bench["out"]
    done = run_job(_planned_job(bench, out, 4))
    assert done.status == "done"
    failed_job = _planned_job(bench, out, 6)
    failed_job.run_dir.mkdir(parents=True)
    (failed_job.run_dir / "config.json").write_text(json.dumps({**failed_job.config, "run_id": failed_job.run_id}))
    files.mark_failed(failed_job.run_dir, RuntimeError("loss diverged at step 3\nmore"), 3)
    running_job = _planned_job(bench, out, 8)
    running_job.run_dir.mkdir(parents=True)
    (running_job.run_dir / "config.json").write_text(json.dumps({**running_job.config, "run_id": running_job.run_id}))
    capsys.readouterr()
    stopped_job = _planned_job(bench, out, 10)
    stopped_job.run_dir.mkdir(parents=True)
    (stopped_job.run_dir / "config.json").write_text(json.dumps({**stopped_job.config, "run_id": stopped_job.run_id}))
    (stopped_job.run_dir / files.CHECKPOINT).write_bytes(b"")
    matrix = ["--learners", "binary_cnn", "--protocols", "MI_C", "--seeds", "0", "1", "--suite", "synthetic"]
    with files.run_lock(running_job.run_dir):
        assert cli("status", "--out", str(out), *matrix) == 0
        table = " ".join(capsys.readouterr().out.split())
        assert cli("status", "--out", str(out), *matrix, "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert "1 done, 1 running, 1 failed, 1 interrupted, 1 not started" in table
    states = {(r["seed"], r["run_id"]): (r["state"], r["detail"]) for r in listed}
    assert states[(0, done.job.run_id)] == ("done", "")
    assert (
        states[(0, running_job.run_id)][0] == "running" and f"pid {os.getpid()}" in states[(0, running_job.run_id)][1]
    )
    assert states[(0, failed_job.run_id)] == ("failed", f"step 3: loss diverged at step 3 ({socket.gethostname()})")
    assert states[(0, stopped_job.run_id)] == ("interrupted", "a checkpoint is kept: launching again resumes it")
    assert states[(1, "-")] == ("not started", "")  # seed 1 has no run directory
    assert cli("status", "--out", str(out), *matrix, "--json", "--only", "failed") == 0
    assert [r["state"] for r in json.loads(capsys.readouterr().out)] == ["failed"]
    assert not bench["store_log"].exists(), "status (or a worker) opened the results store"
