"""The prepared GPU check: its dry mode runs every section's code path on the CPU (as CI does), and where
CUDA exists, no learner synchronises the host inside a training step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fasbench.benchmark import load_benchmark

ROOT = Path(__file__).resolve().parent.parent
LEARNERS = load_benchmark().leaderboard["learners"]  # every learner of the leaderboard


def test_the_dry_run_fills_every_section_and_writes_the_report(tmp_path):
    env = {**os.environ, "GPU_CHECK_DRY": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert figures["dry"] is True
    for section in ("rfmeta_step", "compile_gradients", "sync_free_step", "protocol", "learners"):
        assert figures[section]["status"] == "ok", figures[section]
    assert set(figures["rfmeta_step"]["variants"]) >= {"reference loop, eager fp32", "fasbench rfmeta, fp32"}
    assert figures["protocol"]["steps"] == 4 and figures["protocol"]["train_seconds"] > 0
    assert [row["learner"] for row in figures["learners"]["table"]] == ["binary_cnn", "rfmeta"]
    assert all(row["peak_mib"] > 0 for row in figures["learners"]["table"])
    report = (tmp_path / "gpu_check.md").read_text()
    assert "## rfmeta_step: ok" in report and "| rfmeta |" in report


def test_without_cuda_the_real_check_refuses_loudly(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the real check would run")
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_DRY"}
    env.update(OUT=str(tmp_path), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "CUDA is not available" in done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: host-device syncs exist only there")
@pytest.mark.parametrize("name", LEARNERS)
def test_no_learner_synchronises_the_host_inside_a_step(name):
    from fasbench.plugins import installed_plugins
    from fasbench.testing import random_domain_batches

    plugins = installed_plugins()
    backbone = {**plugins.get("learners", name).obj.BACKBONE, "width": 0.25, "input_size": 64}
    learner = plugins.build(
        "learners", {"type": name, "backbone": backbone, "hparams": {"batch_per_class": 2}},
        num_domains=3, seed=0, device="cuda",
    )  # fmt: skip
    batches = [b.to("cuda") for b in random_domain_batches(learner, 3, 2, seed=0)]
    learner.update(batches)
    learner.step += 1
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        learner.update(batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
