"""A leaderboard never mixes configurations, and sweeps make tuned rows: smoke and full runs in one store,
filters, ambiguity, sweeps, self-describing records."""

from __future__ import annotations

import json

import pytest
import yaml
from tiny import tiny_benchmark

from fasbench.cli import main
from fasbench.errors import FasbenchError
from fasbench.runs.sweep import draw

pytestmark = pytest.mark.usefixtures("one_thread")
BASE = ["--protocol", "ICM_O", "--suite", "synthetic", "--seeds", "0", "--no-progress"]


@pytest.fixture()
def bench(tmp_path):
    """A benchmark whose own configuration is tiny (so a 'full' run takes seconds), with a 'smoke' preset."""
    path = tiny_benchmark(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["defaults"].update(budget=4, eval_every=2, checkpoint_every=2, log_every=2)
    data["learners"]["binary_cnn"].update(backbone={"width": 0.0625, "input_size": 32}, hparams={"batch_per_class": 2})
    data["presets"]["smoke"] = {"description": "2 steps", "budget": 2, "eval_every": 1}
    path.write_text(yaml.safe_dump(data))
    out, cache = tmp_path / "runs", tmp_path / "cache"

    def cli(*argv: str) -> int:
        return main(["--benchmark", str(path), *argv])

    def run(*extra: str) -> int:
        return cli("run", "binary_cnn", *BASE, "--out", str(out), "--cache-dir", str(cache), "--preset", *extra)

    return {"cli": cli, "run": run, "out": out}


def board(bench, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert bench["cli"]("leaderboard", "--out", str(bench["out"]), "--format", "json", *extra) == 0
    return json.loads(capsys.readouterr().out)


def test_a_smoke_run_and_a_full_run_never_share_a_cell(bench, capsys):
    assert bench["run"]("smoke") == 0
    capsys.readouterr()
    assert bench["cli"]("leaderboard", "--out", str(bench["out"])) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "no run matches the benchmark configuration" in message and "preset smoke, budget 2" in message
    assert bench["run"]("none") == 0
    full = board(bench, capsys)
    smoke = board(bench, capsys, "--preset", "smoke")
    assert "configuration: preset none, 4 training steps" in full["caption"]
    assert "configuration: preset smoke, 2 training steps" in smoke["caption"]
    assert full["cells"][0]["config_id"] != smoke["cells"][0]["config_id"]
    assert full["cells"][0]["n"] == smoke["cells"][0]["n"] == 1
    by_id = board(bench, capsys, "--config", smoke["cells"][0]["config_id"][:6])
    assert by_id["cells"] == smoke["cells"]
    assert board(bench, capsys, "--where", "budget=2")["cells"] == smoke["cells"]


def test_two_configurations_in_one_cell_are_refused_with_the_list(bench, capsys):
    assert bench["run"]("smoke") == 0
    assert bench["run"]("smoke", "--cfg-options", "hparams.lr=0.01") == 0
    capsys.readouterr()
    assert bench["cli"]("leaderboard", "--out", str(bench["out"]), "--preset", "smoke") == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "binary_cnn on ICM_O has 2 configurations here" in message and '"hparams.lr": 0.01' in message
    picked = board(bench, capsys, "--preset", "smoke", "--where", "hparams.lr=0.01")
    assert len({c["config_id"] for c in picked["cells"]}) == 1
    capsys.readouterr()
    assert bench["cli"]("leaderboard", "--out", str(bench["out"]), "--where", "hparams.lr=0.5") == 2
    assert "no run matches the filters" in capsys.readouterr().err


def test_results_show_prints_what_a_run_is(bench, capsys):
    assert bench["run"]("smoke", "--cfg-options", "hparams.lr=0.01") == 0
    (record,) = bench["out"].rglob("record.json")
    identity = json.loads(record.read_text())["config"]
    assert identity["preset"] == "smoke" and identity["overrides"] == {"hparams.lr": 0.01} and identity["budget"] == 2
    assert identity["hparams"]["lr"] == 0.01 and len(identity["videos_sha256"]) == 64 and "plugins" in identity
    capsys.readouterr()
    assert bench["cli"]("results", "show", record.parent.name.split("-")[-1], "--out", str(bench["out"])) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["identity"]["config_id"] == identity["config_id"]
    assert shown["results"]["source_val / test_eer / video"]["steps"]


def test_a_sweep_makes_a_tuned_row_selected_on_source_validation(bench, capsys):
    argv = ["sweep", "binary_cnn", "--trials", "3", *BASE, "--out", str(bench["out"])]
    assert bench["cli"](*argv, "--cache-dir", str(bench["out"].parent / "cache"), "--preset", "none") == 0
    (manifest,) = (bench["out"] / "sweeps").glob("*.json")
    trials = json.loads(manifest.read_text())["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2] and trials[0]["hparams"] == {}
    assert trials[1]["hparams"] == draw({"lr": ("log_uniform", 1e-4, 1e-2)}, 1)
    table = board(bench, capsys)
    rows = {c["learner"] for c in table["cells"]}
    assert rows == {"binary_cnn", "binary_cnn (tuned: 3 of 3 trials, on source validation)"}
    assert "Tuned rows: per seed, among a sweep's trials" in table["caption"]
    tuned = next(c for c in table["cells"] if "tuned" in c["learner"])
    assert tuned["config_id"].startswith("sweep:") and tuned["config_id"][6:] in {t["config_id"] for t in trials}


def test_draws_are_stable_when_the_space_grows():
    space = {"lr": ("log_uniform", 1e-4, 1e-2), "depth_weight": ("uniform", 1.0, 20.0)}
    before = [draw(space, trial) for trial in range(6)]
    grown = {**space, "alpha": ("choice", [0.1, 0.5]), "inner_steps": ("int_uniform", 1, 8)}
    after = [draw(grown, trial) for trial in range(6)]
    assert [{k: v for k, v in a.items() if k in space} for a in after] == before
    assert before[0] == {} and len({b["lr"] for b in before[1:]}) == 5
    assert all(1e-4 <= b["lr"] <= 1e-2 and 1 <= b["depth_weight"] <= 20 for b in before[1:])
    assert {a["inner_steps"] for a in after[1:]} <= set(range(1, 9)) and {a["alpha"] for a in after[1:]} <= {0.1, 0.5}


def test_a_learner_without_a_search_space_cannot_be_swept(bench, capsys, monkeypatch):
    from fasbench_plugins.baselines import BinaryCNN

    monkeypatch.setattr(BinaryCNN, "SEARCH_SPACE", {})
    argv = ["sweep", "binary_cnn", "--trials", "2", *BASE, "--out", str(bench["out"]), "--preset", "none"]
    assert bench["cli"](*argv) == 2
    message = capsys.readouterr().err
    assert "learner 'binary_cnn' declares no SEARCH_SPACE" in message and "rfmeta" in message
    with pytest.raises(FasbenchError, match="not one of its hyper-parameters"):
        from fasbench.runs.sweep import check_space

        check_space("x", {"lrr": ("uniform", 0, 1)}, {"lr": 1.0})


def test_pretrained_weights_are_part_of_a_runs_identity_and_of_the_caption(bench, capsys, tmp_path):
    """``backbone.pretrained: PATH`` loads that file; the record holds its SHA-256 (another file, another run),
    a run without weights says "from scratch", and the caption says which learners started from which."""
    import hashlib

    import torch
    from fasbench_plugins.networks import TimmBackbone

    timm_options = ["backbone.type=timm:resnet18", "backbone.width=0.0625", "backbone.input_size=32"]
    torch.manual_seed(3)
    weights = tmp_path / "resnet18-narrow.pth"
    torch.save(TimmBackbone("resnet18", input_size=32, width=0.0625).body.state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert bench["run"]("smoke", "--cfg-options", *timm_options) == 0
    cache = str(tmp_path / "cache")
    argv = ["run", "auxiliary", *BASE, "--out", str(bench["out"]), "--cache-dir", cache, "--preset", "smoke"]
    assert bench["cli"](*argv, "--cfg-options", *timm_options, f"backbone.pretrained={weights}") == 0
    records = {json.loads(p.read_text())["learner"]: p for p in bench["out"].rglob("record.json")}
    scratch = json.loads(records["binary_cnn"].read_text())["config"]
    loaded = json.loads(records["auxiliary"].read_text())["config"]
    assert scratch["weights"] == "from scratch" and loaded["weights"] == f"sha256:{digest}"
    caption = board(bench, capsys, "--preset", "smoke", "--learners", "binary_cnn", "auxiliary")["caption"]
    assert f"backbone weights: from scratch (binary_cnn); pretrained file sha256 {digest[:12]} (auxiliary)" in caption
    weights.write_bytes(weights.read_bytes() + b"\0")  # another file under the same name: another run
    assert bench["cli"](*argv, "--cfg-options", *timm_options, f"backbone.pretrained={weights}") == 0
    shas = {json.loads(p.read_text())["config"]["weights"] for p in bench["out"].rglob("auxiliary/*/*/record.json")}
    assert shas == {f"sha256:{digest}", f"sha256:{hashlib.sha256(weights.read_bytes()).hexdigest()}"}
    weights.write_bytes(weights.read_bytes()[:1000])  # damaged: refused before any training
    capsys.readouterr()
    assert bench["cli"](*argv, "--cfg-options", *timm_options, f"backbone.pretrained={weights}") == 2
    assert f"pretrained weights {weights} cannot be read" in " ".join(capsys.readouterr().err.split())


def test_a_mode_sets_the_convention_of_a_run_and_the_evaluation_of_a_table(bench, capsys):
    assert bench["run"]("smoke", "--mode", "ssdg") == 0
    (record,) = [json.loads(p.read_text()) for p in bench["out"].rglob("record.json")]
    assert record["convention"] == record["config"]["convention"] == record["data"]["convention"] == "ssdg"
    assert "data.convention" not in record["config"]["overrides"]  # the mode's, not a user override
    plain = " ".join(board(bench, capsys, "--preset", "smoke")["caption"].split())  # the store's only convention
    assert "data convention ssdg" in plain and "oracle" not in plain
    table = board(bench, capsys, "--preset", "smoke", "--mode", "ssdg")
    assert table["cells"] and all(cell["n"] == 1 for cell in table["cells"])
    caption = " ".join(table["caption"].split())
    assert "data convention ssdg" in caption and "model selection oracle" in caption
    assert "threshold policy test_eer" in caption
    capsys.readouterr()
    assert bench["cli"]("leaderboard", "--out", str(bench["out"]), "--preset", "smoke", "--mode", "ssdg",
                        "--selection", "last") == 2  # fmt: skip
    assert "--selection last contradicts --mode ssdg" in " ".join(capsys.readouterr().err.split())
    assert bench["cli"]("leaderboard", "--out", str(bench["out"]), "--mode", "paper", "--learners", "binary_cnn") == 2
    assert "binary_cnn declare(s) no paper mode" in " ".join(capsys.readouterr().err.split())
