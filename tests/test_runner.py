"""``fasbench run`` / ``bench`` / ``leaderboard`` end to end on a tiny synthetic suite, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from tiny import tiny_benchmark

from fasbench.cli import main
from fasbench.evaluation import evaluate, read_scores
from fasbench.results.store import ResultsStore

K = "hparams.batch_per_class=2"
RUN_FILES = ("config.json", "environment.json", "checkpoint.pt", "evals.jsonl", "metrics.json", "record.json")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A registry whose synthetic suite is tiny, a shared cache dir, and an env for subprocesses."""
    folder = tmp_path_factory.mktemp("runner")
    benchmark = tiny_benchmark(folder)
    cache = folder / "cache"
    return {"benchmark": str(benchmark), "cache": str(cache), "folder": folder}


def cli(setup, *argv: str) -> int:
    return main(["--benchmark", setup["benchmark"], *argv])


def run_args(setup, learner: str, out: Path, *extra: str) -> list[str]:
    return [
        "run", learner, "--protocol", "ICM_O", "--suite", "synthetic", "--preset", "tiny", "--seeds", "0",
        "--out", str(out), "--cache-dir", setup["cache"], "--no-progress", "--cfg-options", K, *extra,
    ]  # fmt: skip


def only_run_dir(out: Path) -> Path:
    (found,) = [path.parent for path in out.rglob("done")]
    return found


def test_run_writes_a_run_dir_a_store_row_and_a_leaderboard(setup, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli(setup, *run_args(setup, "binary_cnn", out)) == 0
    run = only_run_dir(out)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    log = (run / "log.txt").read_text()
    assert "binary_cnn on ICM_O" in log and "step 4: loss=" in log and "step 4: evaluation target.AUC=" in log
    config = json.loads((run / "config.json").read_text())
    assert (config["sources"], config["target"], config["budget"]) == (["I", "C", "M"], "O", 4)
    assert [json.loads(line)["step"] for line in (run / "evals.jsonl").read_text().splitlines()] == [2, 4]

    # the recorded numbers are the scores file's numbers (AUC against scikit-learn at frame level)
    table, attrs = read_scores(run / "evals" / "00000004-target.h5")  # the last evaluation, step 4
    # target O under the fasbench convention, every split: 4 subjects x (1 live, 1 print, 1 replay video) x 2 frames
    assert (len(table.score), int(table.label.sum())) == (24, 8)
    assert np.all((table.score >= 0) & (table.score <= 1)) and attrs["learner"] == "binary_cnn"
    store = ResultsStore(out / "results.sqlite")
    rows = store.rows(selection="last", threshold_policy="test_eer", level="frame")
    assert len(rows) == 1 and rows[0].learner == "binary_cnn" and rows[0].suite == "synthetic"
    assert rows[0].metrics["AUC"] == pytest.approx(roc_auc_score(table.label, table.score))
    (fixed,) = store.rows(selection="last", threshold_policy="fixed:0.5", level="frame")
    far, frr = np.mean(table.score[table.label == 0] >= 0.5), np.mean(table.score[table.label == 1] < 0.5)
    assert fixed.metrics["HTER"] == pytest.approx((far + frr) / 2)
    video = evaluate(table, policy="test_eer", level="video")["metrics"]
    (video_row,) = store.rows(selection="last", threshold_policy="test_eer", level="video")
    assert video_row.metrics["HTER"] == pytest.approx(video["HTER"])
    # every selection x policy x level is recorded
    # every selection rule (last, source_val, oracle, oracle_auc_hter, last_k_mean, oracle_last) x policy x level
    assert len(store.rows()) == 6 * 3 * 2

    capsys.readouterr()
    assert cli(setup, "leaderboard", "--out", str(out), "--preset", "tiny", "--format", "csv", "--metric", "AUC") == 0
    csv = capsys.readouterr().out
    assert f"binary_cnn,ICM_O,AUC,{video_row.metrics['AUC']:.6f},0.000000,1," in csv

    plots = tmp_path / "plots"
    assert cli(setup, "leaderboard", "--out", str(out), "--preset", "tiny", "--plot", str(plots)) == 0
    assert sorted(p.name for p in plots.iterdir()) == ["hist_ICM_O_binary_cnn.png", "roc_ICM_O.png"]

    # the same command again: skipped, nothing recomputed
    stamp = (run / "record.json").stat().st_mtime_ns
    capsys.readouterr()
    assert cli(setup, *run_args(setup, "binary_cnn", out)) == 0
    assert "already finished: skipped" in capsys.readouterr().err
    assert (run / "record.json").stat().st_mtime_ns == stamp


def test_tpr_is_marked_higher_is_better_in_the_run_summary(setup, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli(setup, *run_args(setup, "binary_cnn", out)) == 0
    assert "TPR_at_FPR:1%↑" in capsys.readouterr().out


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.mark.parametrize("signum, status", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)])
def test_an_interrupted_run_resumes_to_the_uninterrupted_metrics(setup, tmp_path, signum, status):
    """kill -9 loses the steps since the last checkpoint; Ctrl-C checkpoints the step it stopped after."""
    extra = ("--budget", "60", "--cfg-options", "checkpoint_every=5", "eval_every=20", K)
    reference_out, killed_out = tmp_path / "reference", tmp_path / "killed"
    assert cli(setup, *run_args(setup, "rfmeta", reference_out), *extra) == 0
    reference = only_run_dir(reference_out)

    command = [sys.executable, "-m", "fasbench.cli", "--benchmark", setup["benchmark"]]
    command += run_args(setup, "rfmeta", killed_out, *extra)
    process = subprocess.Popen(command, env=_subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = killed_out / reference.relative_to(reference_out)
    deadline = time.monotonic() + 120
    while not (run / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    process.wait(60)
    assert process.returncode == status, process.stderr.read().decode()
    assert not (run / "done").exists(), "the run finished before it could be killed"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["learner"]["step"] < 60

    assert cli(setup, *run_args(setup, "rfmeta", killed_out), *extra) == 0
    assert (run / "done").exists()
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (run / "evals.jsonl").read_text() == (reference / "evals.jsonl").read_text()
    last = "evals/00000060-target.h5"
    with h5py.File(run / last) as a, h5py.File(reference / last) as b:
        assert np.array_equal(a["score"][:], b["score"][:])


def test_bench_shards_split_the_matrix_into_one_store(setup, tmp_path):
    out = tmp_path / "runs"
    common = ["--protocols", "ICM_O", "--suite", "synthetic", "--preset", "tiny", "--seeds", "0", "--out", str(out)]
    common += ["--cache-dir", setup["cache"], "--no-progress", "--cfg-options", K]
    bench = ["bench", "--learners", "binary_cnn", "auxiliary"]
    assert cli(setup, *bench, "--shard", "1/2", *common) == 0
    assert {row.learner for row in ResultsStore(out / "results.sqlite").rows()} == {"auxiliary"}
    assert cli(setup, *bench, "--shard", "0/2", *common) == 0
    assert {row.learner for row in ResultsStore(out / "results.sqlite").rows()} == {"binary_cnn", "auxiliary"}
    assert cli(setup, *bench, "--shard", "2/2", *common) == 2


def test_clear_errors_before_training(setup, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["--preset", "tiny", "--out", str(out), "--cache-dir", str(tmp_path / "empty"), "--no-progress"]
    assert cli(setup, "run", "rfmeta", "--protocol", "ICM_O", "--suite", "real", *base) == 2
    message = capsys.readouterr().err
    assert "fasbench prepare" in message and "Traceback" not in message
    assert not list(out.rglob("checkpoint.pt"))
    assert cli(setup, "run", "rfmeta", "--protocol", "ICM_Q", *base) == 2
    assert "did you mean 'ICM_O'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli(setup, "run", "rfmeta", "--protocol", "ICM_O", "--device", "cuda", *base) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_a_run_directory_of_another_configuration_is_refused(setup, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli(setup, *run_args(setup, "binary_cnn", out)) == 0
    run = only_run_dir(out)
    (run / "done").unlink()
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "budget": 99}))
    capsys.readouterr()
    assert cli(setup, *run_args(setup, "binary_cnn", out)) == 2
    assert "belongs to another configuration" in capsys.readouterr().err
