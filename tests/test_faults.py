"""Fault injection: no planted file runs code, no damaged file changes a number, no diverged run counts.

Each test plants a fault as a user (or an attacker) would, runs the CLI, and checks the message and that
no wrong result was recorded.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import types
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from fasbench_plugins.baselines import BinaryCNN
from tiny import TINY_DOMAIN, TINY_PRESET, tiny_benchmark

from fasbench import hookimpl, plugins
from fasbench.cli import main
from fasbench.plugins import PluginInfo
from fasbench.results.store import ResultsStore

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {**TINY_PRESET, "hparams": {"batch_per_class": 2}}


@pytest.fixture()
def setup(tmp_path):
    benchmark = tiny_benchmark(tmp_path, TINY)
    return {"benchmark": str(benchmark), "cache": str(tmp_path / "cache"), "out": tmp_path / "runs", "tmp": tmp_path}


def run_argv(setup, learner="binary_cnn", *extra):
    argv = ["--benchmark", setup["benchmark"], "run", learner, "--protocol", "ICM_O", "--suite", "synthetic"]
    argv += ["--preset", "tiny", "--seeds", "0", "--out", str(setup["out"]), "--cache-dir", setup["cache"]]
    return [*argv, "--no-progress", *extra]


def run_dir(setup) -> Path:
    (found,) = [p.parent for p in setup["out"].rglob("config.json")]
    return found


def results(setup) -> list:
    return ResultsStore(setup["out"] / "results.sqlite").rows()


class Exploit:
    """A pickle that runs code when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_planted_checkpoint_never_runs_code(setup, capsys):
    assert main(run_argv(setup)) == 0
    run = run_dir(setup)
    for name in ("done", "record.json"):
        (run / name).unlink()  # now an unfinished run, resumed from its checkpoint by the same command
    marker = setup["tmp"] / "pwned"
    torch.save({"learner": Exploit(marker), "trackers": {}, "train_seconds": 0.0}, run / "checkpoint.pt")
    capsys.readouterr()
    assert main(run_argv(setup)) == 2
    message = capsys.readouterr().err
    assert "checkpoint.pt was refused" in " ".join(message.split()) and "--restart" in message
    assert not marker.exists(), "unpickling the planted checkpoint ran code"
    assert not (run / "done").exists()
    assert main(run_argv(setup, "binary_cnn", "--restart")) == 0 and (run / "done").exists() and not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_containers(setup):
    assert main(run_argv(setup, "rfmeta")) == 0
    state = torch.load(run_dir(setup) / "checkpoint.pt", weights_only=True)
    assert state["learner"]["step"] == 4 and isinstance(state["learner"]["rng"]["numpy"]["key"], torch.Tensor)


def _damage_chunk(path: Path, row: int) -> None:
    """Overwrite 512 bytes in the middle of the stored chunk of frame ``row`` (as bit rot or a bad copy would)."""
    with h5py.File(path, "r") as file:
        info = file["images"].id.get_chunk_info(row)
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + info.size // 2)
        handle.write(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())


def test_a_damaged_cache_chunk_stops_the_run_and_nothing_is_recorded(setup, capsys):
    assert (
        main(
            ["--benchmark", setup["benchmark"], "prepare", "synthetic", "--cache-dir", setup["cache"], "--no-progress"]
        )
        == 0
    )
    (target,) = [
        p
        for p in Path(setup["cache"]).glob("synthetic-*.h5")
        if json.loads(h5py.File(p, "r").attrs["manifest"])["cache_options"]["domain"] == "O"
    ]
    _damage_chunk(target, 5)  # the target is scored on every frame: this chunk is read at the first evaluation
    capsys.readouterr()
    assert main(run_argv(setup)) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert f"{target.name} is damaged" in message and "fasbench prepare synthetic --force" in message
    run = run_dir(setup)
    assert not (run / "done").exists() and json.loads((run / "failed.json").read_text())["step"] == 2
    assert results(setup) == []
    store = ResultsStore(setup["out"] / "results.sqlite")
    assert [r["status"] for r in store.runs()] == ["failed"]

    prepare = [
        "--benchmark",
        setup["benchmark"],
        "prepare",
        "synthetic",
        "--cache-dir",
        setup["cache"],
        "--no-progress",
    ]
    assert main([*prepare, "--verify"]) == 2
    assert "1 of 4 caches are damaged" in capsys.readouterr().err
    assert main([*prepare[:4], "--cache-dir", setup["cache"], "--verify"]) == 2  # every cache in the folder
    assert main([*prepare, "--force"]) == 0 and main([*prepare, "--verify"]) == 0
    assert main(run_argv(setup)) == 0 and (run / "done").exists() and not (run / "failed.json").exists()
    assert len(results(setup)) == 6 * 3 * 2 and [r["status"] for r in store.runs()] == ["done"]


def test_a_diverged_run_is_failed_with_the_step_the_tensor_and_the_fix(setup, capsys):
    assert main(run_argv(setup, "binary_cnn", "--cfg-options", "hparams.lr=1e8")) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "the run diverged: by step" in message and "hparams.lr" in message
    assert "NaN or infinite values" in message and "backbone." in message
    run = run_dir(setup)
    assert not (run / "done").exists() and (run / "failed.json").exists() and results(setup) == []


def test_a_diverged_run_keeps_its_last_finite_checkpoint(setup, capsys):
    """RF-Meta at lr 1e8 (the issue's case): it checkpoints at step 2 and diverges by step 3."""
    assert main(run_argv(setup, "rfmeta", "--cfg-options", "hparams.lr=1e8")) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "the run diverged: by step 3" in message and str(run_dir(setup)) in message
    state = torch.load(run_dir(setup) / "checkpoint.pt", weights_only=True)["learner"]
    assert state["step"] == 2
    tensors = [t for network in state["networks"].values() for t in network.values() if t.is_floating_point()]
    assert tensors and all(torch.isfinite(t).all() for t in tensors), "the checkpoint holds a non-finite value"
    assert json.loads((run_dir(setup) / "failed.json").read_text())["step"] == 3


class NaNScores(BinaryCNN):
    """Trains normally; its scores are NaN."""

    name = "nan_scores"

    @torch.no_grad()
    def score(self, images):
        return torch.full((len(images),), float("nan"))


def test_nan_scores_fail_the_run_at_its_first_evaluation(setup, capsys, monkeypatch):
    module = types.ModuleType("nan_plugin")

    @hookimpl
    def fasbench_register(registry):
        registry.add("learners", "nan_scores", NaNScores)

    module.fasbench_register = fasbench_register
    monkeypatch.setattr(plugins, "_default", plugins.discover_plugins(extra=[(module, PluginInfo("nan", "tests"))]))
    assert main(run_argv(setup, "nan_scores")) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "at step 2, 24 of 24 scores of domain O are NaN or infinite" in message and str(run_dir(setup)) in message
    assert not (run_dir(setup) / "done").exists() and results(setup) == []


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def test_the_same_run_started_twice_trains_once(setup, capsys):
    long = ["--budget", "200", "--cfg-options", "checkpoint_every=50", "eval_every=200", "log_every=50"]
    first = subprocess.Popen(
        [sys.executable, "-m", "fasbench.cli", *run_argv(setup, "binary_cnn", *long)],
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        locks = list(setup["out"].rglob("lock"))
        if locks and locks[0].read_text().startswith("pid"):
            break
        time.sleep(0.02)
    try:
        capsys.readouterr()
        assert main(run_argv(setup, "binary_cnn", *long)) == 2
        message = " ".join(capsys.readouterr().err.split())
        assert f"is being run by pid {first.pid}" in message
        bench = ["--benchmark", setup["benchmark"], "bench", "--learners", "binary_cnn", "--protocols", "ICM_O"]
        bench += ["--suite", "synthetic", "--preset", "tiny", "--seeds", "0", "--out", str(setup["out"])]
        assert main([*bench, "--cache-dir", setup["cache"], "--no-progress", *long]) == 0
        assert f"running elsewhere (pid {first.pid}" in " ".join(capsys.readouterr().err.split())
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    # the kernel released the dead process's lock: the same command resumes and finishes, once
    assert main(run_argv(setup, "binary_cnn", *long)) == 0
    evals = (run_dir(setup) / "evals.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in evals] == [200]
    assert len(list((run_dir(setup) / "tensorboard").glob("events.*"))) >= 1


def test_damaged_run_files_are_named_with_the_remedy(setup, capsys):
    assert main(run_argv(setup)) == 0
    run = run_dir(setup)
    record = run / "record.json"
    record.write_text(record.read_text()[:40])
    capsys.readouterr()
    assert main(run_argv(setup)) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "record.json is damaged" in message and "--restart" in message and "Traceback" not in message
    other = setup["out"] / "binary_cnn" / "ICM_O-synthetic" / "seed9-000000000000"
    other.mkdir()
    (other / "record.json").write_text("{}")
    (other / "done").write_text("x\n")
    assert main(["results", "rebuild", "--out", str(setup["out"])]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "skipped 2 unreadable runs" in printed and str(record) in printed

    assert main(run_argv(setup, "binary_cnn", "--restart")) == 0
    (run / "done").unlink()
    checkpoint = run / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    capsys.readouterr()
    assert main(run_argv(setup)) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "checkpoint.pt cannot be read (truncated or damaged" in message and "--restart" in message
    (run / "evals.jsonl").write_text('{"step": 2, "target"')
    assert main(run_argv(setup, "binary_cnn", "--restart")) == 0


def test_a_flipped_byte_in_a_checkpoint_or_a_record_is_caught(setup, capsys):
    assert main(run_argv(setup)) == 0
    run = run_dir(setup)
    record = run / "record.json"
    text = record.read_text()
    record.write_text(text.replace('"seed": 0', '"seed": 7'))  # same length, valid JSON: only the hash sees it
    capsys.readouterr()
    assert main(run_argv(setup)) == 2
    assert "record.json is damaged (it differs from the hash in done)" in " ".join(capsys.readouterr().err.split())
    (run / "done").unlink()
    record.unlink()
    checkpoint = run / "checkpoint.pt"
    data = bytearray(checkpoint.read_bytes())
    with zipfile.ZipFile(checkpoint) as archive:
        member = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 64)
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26 : member.header_offset + 30])
    offset = member.header_offset + 30 + name_length + extra_length + 8  # into the member's stored bytes
    data[offset] ^= 0x10  # one bit of one stored tensor
    checkpoint.write_bytes(bytes(data))
    assert main(run_argv(setup)) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "checkpoint.pt is damaged: its part" in message and "fails its CRC-32 check" in message


def test_cfg_options_cannot_change_what_a_run_is(setup, capsys):
    for option in ("protocol=OCI_M", "target=C", "sources=[O,C]", "domains.C.options.subjects=3", "seed=3"):
        assert main(run_argv(setup, "binary_cnn", "--cfg-options", option)) == 2
        assert "--cfg-options cannot change" in capsys.readouterr().err
    assert not setup["out"].exists()


def test_config_typos_are_refused_before_anything_is_written(setup, capsys):
    for option in ("budgett=5", "data.worker=2"):
        assert main(run_argv(setup, "binary_cnn", "--cfg-options", option)) == 2
        assert "did you mean" in capsys.readouterr().err
    assert not setup["out"].exists()


def test_a_registry_file_that_is_not_utf8_is_named(setup, capsys):
    bad = setup["tmp"] / "latin1.yaml"
    bad.write_bytes("description: caf\xe9\n".encode("latin-1"))
    assert main(["--benchmark", str(bad), "list", "protocols"]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err


def test_a_registry_file_may_not_import_code(setup, capsys):
    data = yaml.safe_load(Path(setup["benchmark"]).read_text())
    data["domains"]["C"]["options"] = {"face": "os:system"}
    path = setup["tmp"] / "code.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["--benchmark", str(path), "list", "protocols"]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "domains.C.options.face: 'os:system' names Python code" in message and "--option face=os:system" in message


def test_a_code_option_must_name_the_right_kind_of_class(tmp_path):
    from fasbench_plugins.real.faces import make_face_finder

    from fasbench.errors import FasbenchError

    with pytest.raises(FasbenchError, match="must be a subclass of FaceFinder"):
        make_face_finder({"face": "collections:OrderedDict"})


def test_scores_outside_the_unit_interval_need_to_be_named(tmp_path, capsys):
    from fasbench.evaluation import ScoreTable, write_scores

    path = tmp_path / "logits.h5"
    write_scores(path, ScoreTable.from_labels(np.array([-2.0, 0.5, 3.0, -1.0]), np.array([0, 1, 1, 0])))
    assert main(["metrics", str(path), "--level", "frame"]) == 2
    assert "3 of 4 scores lie outside [0, 1] (min -2, max 3)" in " ".join(capsys.readouterr().err.split())
    assert main(["metrics", str(path), "--level", "frame", "--scores-are", "logits", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metrics"]["AUC"] == 1.0 and result["file"]["scores_are"] == "logits"
    assert main(["metrics", str(path), "--scores-are", "distances"]) == 2


def test_a_killed_prepare_leaves_no_workers_and_its_stray_temporary_is_removed(setup):
    cache = Path(setup["cache"])
    command = [sys.executable, "-m", "fasbench.cli", "--benchmark", setup["benchmark"], "prepare", "synthetic"]
    command += ["--option", "subjects=40", "--workers", "2", "--cache-dir", str(cache), "--no-progress"]
    parent = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(pid) for pid in found]
        time.sleep(0.1)
    assert len(workers) >= 2, "the workers did not start"
    time.sleep(1.0)
    parent.send_signal(signal.SIGKILL)
    parent.wait(30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "worker processes outlived their parent"
    stray = cache / ".synthetic-000000000000.h5.x1y2.tmp"
    target = cache / "synthetic-000000000000.h5"
    stray.write_bytes(b"half a file")
    from fasbench_plugins.synthetic import SyntheticDataset

    from fasbench.data import prepare_domain
    from fasbench.data.work import exclusive  # noqa: F401 - the same lock prepare takes

    prepare_domain(SyntheticDataset(domain="O", **TINY_DOMAIN), target, progress=False)
    assert not stray.exists() and target.exists()


def test_a_worker_whose_parent_died_before_it_started_exits_at_once():
    """A spawned worker imports for seconds before its initializer runs; a parent killed meanwhile must not leave
    it working on as an orphan (the parent's pid is handed over, not read with getppid() once orphaned)."""
    code = "from fasbench.data.prepare import _init_worker; _init_worker({parent}); print('worked on')"
    gone = subprocess.run([sys.executable, "-c", code.format(parent=2**22 + 7)], capture_output=True, text=True)
    assert gone.returncode == 1 and "worked on" not in gone.stdout and "Traceback" not in gone.stderr  # exits at once
    code = "from fasbench.data.prepare import _kill_with_parent; _kill_with_parent({parent}); print('worked on')"
    alive = subprocess.run([sys.executable, "-c", code.format(parent=os.getpid())], capture_output=True, text=True)
    assert alive.returncode == 0 and "worked on" in alive.stdout, alive.stderr  # its parent lives: it works


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())
