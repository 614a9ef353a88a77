"""The prepared GPU check: its dry mode runs every section's code path on the CPU (as CI does), and where
CUDA exists, no learner synchronises the host inside a training step."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fasbench.benchmark import load_benchmark

ROOT = Path(__file__).resolve().parent.parent
LEARNERS = load_benchmark().leaderboard["learners"]  # every learner of the leaderboard


def _fasbench_wheel(tmp_path: Path, change: str | None = None) -> Path:
    """A real wheel of this checkout, as benchmarks/gpu_check_wheels.sh builds it (offline: the setuptools the
    test environment has), from a copy; ``change`` names a file of the copy to alter first (a stale wheel)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("no setuptools in this environment to build fasbench's wheel offline")
    source = tmp_path / "source"
    for name in ("fasbench", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    if change:
        with open(source / change, "a") as handle:
            handle.write("# changed after the wheel was built\n")
    wheels = tmp_path / "wheels"
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir"]
    done = subprocess.run([*argv, str(wheels), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return wheels


def test_the_dry_run_fills_every_section_and_writes_the_report(tmp_path):
    """Through the carried-wheels install, as on a machine with no package index: fasbench's own wheel."""
    out, site = tmp_path / "out", tmp_path / "site"
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(out), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(_fasbench_wheel(tmp_path)), "GPU_CHECK_SITE": str(site),
           "GPU_CHECK_WORK": str(tmp_path / "work")}  # fmt: skip
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((out / "gpu_check.json").read_text())
    assert figures["dry"] is True
    for section in ("rfmeta_step", "compile_gradients", "sync_free_step", "protocol", "data_loading", "learners"):
        assert figures[section]["status"] == "ok", figures[section]
    loading = figures["data_loading"]
    assert set(loading["ms_per_step"]) == {"with data loading", "one batch on the device"}
    assert all(ms > 0 for ms in loading["ms_per_step"].values())
    assert loading["gpu_busy_share"] == {"with data loading": None, "one batch on the device": None}  # no GPU
    assert figures["fasbench_from"] == str(site / "fasbench") and figures["files_differing_from_checkout"] == []
    assert figures["torch"] == torch.__version__ and figures["sync_free_step"]["learners"] == {
        "binary_cnn": "no sync",
        "rfmeta": "no sync",
    }
    # what comes back from the device machine: at most 8 files, so runs and caches stay in the work folder
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md", "learners.json", "memory.json"]
    assert list((tmp_path / "work").rglob("record.json"))
    assert figures["protocol"]["steps"] == 4 and figures["protocol"]["train_seconds"] > 0
    assert set(figures["rfmeta_step"]["variants"]) >= {"reference loop, eager fp32", "fasbench rfmeta, fp32"}
    assert [row["learner"] for row in figures["learners"]["table"]] == ["binary_cnn", "rfmeta"]
    assert all(row["peak_mib"] > 0 for row in figures["learners"]["table"])
    report = (out / "gpu_check.md").read_text()
    assert "## rfmeta_step: ok" in report and "| rfmeta |" in report and "| with data loading |" in report


def test_past_its_deadline_the_check_skips_what_is_left_and_fails(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.py"
    argv = [
        sys.executable,
        str(script),
        "--dry",
        "--out",
        str(tmp_path),
        "--work",
        str(tmp_path / "w"),
        "--deadline",
        "0",
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    names = ("sync_free_step", "rfmeta_step", "protocol", "data_loading", "learners", "compile_gradients")
    assert [figures[name]["status"] for name in names] == ["skipped"] * len(names)
    assert "## protocol: skipped" in (tmp_path / "gpu_check.md").read_text()


def test_a_wheel_older_than_the_checkout_is_named_and_fails_the_check(tmp_path):
    wheels = _fasbench_wheel(tmp_path, change="plugins/rfmeta.py")
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(wheels), "GPU_CHECK_SITE": str(tmp_path / "site")}  # fmt: skip
    script = str(ROOT / "benchmarks" / "gpu_check.sh")
    done = subprocess.run(["bash", script, "--deadline", "0"], env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-2000:]
    figures = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert figures["files_differing_from_checkout"] == ["plugins/rfmeta.py"]
    report = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "differs from this checkout in 1 file(s)** (plugins/rfmeta.py): rebuild the wheels" in report


def test_an_empty_wheel_folder_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "wheels").mkdir()
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "GPU_CHECK_WHEELS": str(tmp_path / "wheels")}  # fmt: skip
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and f"no wheel in GPU_CHECK_WHEELS={tmp_path / 'wheels'}" in done.stderr
    assert not (tmp_path / "out").exists()


def test_without_cuda_the_real_check_refuses_loudly(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the real check would run")
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_DRY"}
    env.update(OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "CUDA is not available" in done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: host-device syncs exist only there")
@pytest.mark.parametrize("fast", [False, True], ids=["fp32", "bf16+channels_last"])
@pytest.mark.parametrize("name", LEARNERS)
def test_no_learner_synchronises_the_host_inside_a_step(name, fast):
    """Step 1 and a step late in a long run (phases that start later), in fp32 and in the protocol's settings."""
    from fasbench.plugins import installed_plugins
    from fasbench.testing import random_domain_batches
    from fasbench.testing.learner import LATE_STEP

    plugins = installed_plugins()
    backbone = {**plugins.get("learners", name).obj.BACKBONE, "width": 0.25, "input_size": 64}
    hparams = {"batch_per_class": 2, **({"amp": "bf16", "channels_last": True} if fast else {})}
    learner = plugins.build(
        "learners", {"type": name, "backbone": backbone, "hparams": hparams}, num_domains=3, seed=0, device="cuda"
    )
    batches = [b.to("cuda") for b in random_domain_batches(learner, 3, 2, seed=0)]
    learner.update(batches)
    learner.budget = 2 * LATE_STEP
    for step in (1, LATE_STEP):
        learner.step = step
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            learner.update(batches)
        finally:
            torch.cuda.set_sync_debug_mode("default")
