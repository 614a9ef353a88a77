"""Model selection after the fact: every rule on committed evaluation records (golden values), a rule added
by a plugin applied to finished runs without retraining, and the errors of bad selections."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest
from tiny import tiny_benchmark

from fasbench import hookimpl
from fasbench.cli import main
from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.interfaces import SelectionRule
from fasbench.plugins import PluginInfo, forget_plugins, installed_plugins
from fasbench.selection import History, apply_rule, read_evaluations, rules, selected

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.usefixtures("one_thread")


def history():
    return read_evaluations(DATA / "evaluations.jsonl")


def test_every_rule_on_committed_evaluations_gives_the_golden_values(request):
    found = {
        f"{r['selection']} {r['policy']}/{r['level']}": {
            "steps": r["steps"],
            **r["metrics"],
            "threshold": r["threshold"],
        }
        for r in selected(
            history(),
            rules(installed_plugins(), ["last", "source_val", "oracle", "last_k_mean", "last_k_mean:3", "oracle_last"]),
        )
    }
    golden = DATA / "golden" / "selection.json"
    if request.config.getoption("--update-golden", default=False):
        golden.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    assert found == json.loads(golden.read_text())
    # the golden values, reasoned: source EER is lowest at steps 40 and 90 (ties go to the later step), target
    # HTER lowest at 30 and 60; last_k_mean averages steps 30..120 (k = 10)
    assert found["source_val test_eer/video"]["steps"] == [90] and found["oracle test_eer/video"]["steps"] == [60]
    assert found["last test_eer/video"]["steps"] == [120] and found["oracle_last test_eer/video"]["steps"] == [120]
    assert found["last_k_mean test_eer/video"]["steps"] == list(range(30, 121, 10))
    expected = sum([0.10, 0.2, 0.25, 0.10, 0.3, 0.2, 0.15, 0.2, 0.3, 0.25]) / 10
    assert found["last_k_mean test_eer/video"]["HTER"] == pytest.approx(expected)
    assert found["last_k_mean test_eer/video"]["threshold"] is None  # several evaluations: no single threshold
    assert found["last_k_mean:3 source_val/frame"]["HTER"] == pytest.approx((0.31 + 0.26 + 0.21) / 3)


def test_oracle_auc_hter_takes_the_best_target_auc_minus_hter_and_ties_go_later():
    """SA-FAS's rule: max(AUC - HTER) on the target. Step 90 (AUC 0.99, HTER 0.15: 0.84) beats steps 30 and 60
    (0.9 - 0.1 = 0.8), which the HTER oracle takes; equal values go to the later step."""
    lines = [json.loads(line) for line in (DATA / "evaluations.jsonl").read_text().splitlines()]
    for line in lines:
        if line["step"] == 90:
            line["target"]["AUC"] = 0.99
    chosen = rules(installed_plugins(), ["oracle", "oracle_auc_hter"])
    found = {r["selection"]: r for r in selected(History.from_records(lines), chosen) if r["policy"] == "test_eer"}
    assert found["oracle"]["steps"] == [60] and found["oracle_auc_hter"]["steps"] == [90]
    assert found["oracle_auc_hter"]["oracle"] is True
    plain = {r["selection"]: r for r in selected(history(), chosen) if r["policy"] == "test_eer"}
    assert plain["oracle_auc_hter"]["steps"] == [60]  # 30 and 60 tie at 0.8: the later


def test_rules_that_need_validation_are_left_out_without_it():
    lines = [json.loads(line) for line in (DATA / "evaluations.jsonl").read_text().splitlines()]
    evaluations = History.from_records([{**line, "source_val": None} for line in lines])
    found = {r["selection"] for r in selected(evaluations, rules(installed_plugins()))}
    assert found == {"last", "oracle", "oracle_auc_hter", "last_k_mean", "oracle_last"}
    with pytest.raises(FasbenchError, match="needs source validation"):
        apply_rule(rules(installed_plugins(), ["source_val"])["source_val"], evaluations, "test_eer", "video")


def test_unknown_rules_are_refused_with_the_known_ones():
    with pytest.raises(UnknownNameError, match="unknown selection 'source_vall'; did you mean 'source_val'"):
        rules(installed_plugins(), ["source_vall"])
    with pytest.raises(FasbenchError, match="last_k_mean:K needs a whole number"):
        rules(installed_plugins(), ["last_k_mean:x"])


class FirstCheckpoint(SelectionRule):
    """The first evaluation (a rule written after the runs finished)."""

    name = "first"

    def select(self, evaluations):
        return [0]


@pytest.fixture()
def runs(tmp_path):
    """Two seeds of a tiny binary_cnn run, and a registry with the tiny preset."""
    benchmark = tiny_benchmark(tmp_path)
    argv = ["--benchmark", str(benchmark), "run", "binary_cnn", "--protocol", "ICM_O", "--suite", "synthetic"]
    argv += [
        "--preset",
        "tiny",
        "--seeds",
        "0",
        "1",
        "--out",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main([*argv, "--no-progress", "--cfg-options", "hparams.batch_per_class=2"]) == 0
    return tmp_path


def test_a_rule_added_by_a_plugin_changes_the_table_without_retraining(runs, capsys, monkeypatch):
    board = ["--benchmark", str(runs / "registry.yaml"), "leaderboard", "--out", str(runs / "runs"), "--preset", "tiny"]
    board += ["--format", "json", "--metric", "HTER"]
    assert main([*board, "--selection", "first"]) == 2  # not registered yet: refused, with the known rules
    assert "unknown selection 'first'" in capsys.readouterr().err
    stamps = {p: p.stat().st_mtime_ns for p in (runs / "runs").rglob("checkpoint.pt")}

    module = types.ModuleType("first_rule")

    @hookimpl
    def fasbench_register(registry):
        registry.add("selections", "first", FirstCheckpoint)

    module.fasbench_register = fasbench_register
    real = installed_plugins()
    forget_plugins()
    from fasbench import plugins

    extended = plugins.discover_plugins(extra=[(module, PluginInfo("first_rule", "tests"))])
    monkeypatch.setattr(plugins, "_default", extended)
    capsys.readouterr()
    assert main([*board, "--selection", "first"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*board, "--selection", "last"]) == 0
    last = json.loads(capsys.readouterr().out)
    assert first["selection"] == "first" and first["cells"][0]["mean"] != last["cells"][0]["mean"]
    for path, stamp in stamps.items():
        assert path.stat().st_mtime_ns == stamp, "selecting retrained"
    records = [
        json.loads(line) for path in (runs / "runs").rglob("evals.jsonl") for line in path.read_text().splitlines()
    ]
    step_two = [r["metrics"]["test_eer/video"]["metrics"]["HTER"] for r in records if r["step"] == 2]
    assert first["cells"][0]["mean"] == pytest.approx(sum(step_two) / 2)
    assert real is not extended
