"""``evaluate``: threshold policies, levels, bootstrap intervals, and the ``fasbench metrics`` command."""

import dataclasses
import json
import types

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fasbench import hookimpl
from fasbench.cli import main
from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.evaluation import ScoreTable, evaluate, write_scores
from fasbench.evaluation.evaluate import _resample_counts
from fasbench.interfaces import Metric
from fasbench.plugins import PluginInfo, discover_plugins

# Hand-built target, one frame per video: lives 0.9, 0.8, 0.4; spoofs 0.7 (print), 0.4, 0.2, 0.1 (replay).
TARGET = ScoreTable(
    score=[0.9, 0.8, 0.4, 0.7, 0.4, 0.2, 0.1],
    label=[1, 1, 1, 0, 0, 0, 0],
    video_id=["l1", "l2", "l3", "p1", "r1", "r2", "r3"],
    frame_index=[0] * 7,
    attack_type=["live"] * 3 + ["print"] + ["replay"] * 3,
)


def synthetic(n_videos=60, frames=4, seed=0):
    """Videos of 3 attack types with noisy frame scores; frames of a video are contiguous."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n_videos)
    label = (kind == 0).astype(int)
    level = rng.normal(0.4 + 0.2 * label, 0.15)
    rows = np.repeat(np.arange(n_videos), frames)
    return ScoreTable(
        score=np.round(level[rows] + rng.normal(0, 0.05, len(rows)), 2),
        label=label[rows],
        video_id=np.char.add("v", rows.astype(str)),
        frame_index=np.tile(np.arange(frames), n_videos),
        attack_type=np.array(["live", "print", "replay"])[kind][rows],
    )


def test_result_names_its_policy_level_threshold_and_counts():
    result = evaluate(TARGET, policy="fixed:0.5", metrics=["HTER", "AUC"])
    assert result["policy"] == "fixed:0.5" and result["threshold"] == 0.5 and result["level"] == "video"
    assert (result["n_videos"], result["n_frames"], result["n_live"], result["n_spoof"]) == (7, 7, 3, 4)
    assert result["metrics"] == pytest.approx({"HTER": (1 / 4 + 1 / 3) / 2, "AUC": 10.5 / 12})
    assert "ci" not in result
    json.dumps(result, allow_nan=False)


def test_test_eer_policy_makes_hter_the_eer_and_source_val_uses_the_source_threshold():
    result = evaluate(TARGET, metrics=["HTER", "EER"])
    assert result["threshold"] == 0.7 and result["metrics"]["HTER"] == pytest.approx(result["metrics"]["EER"])
    # Source validation videos: lives 0.9, 0.6 (two frames 0.5 and 0.7), spoofs 0.5, 0.2 -> EER 0 at 0.6.
    source = ScoreTable(
        [0.9, 0.5, 0.7, 0.5, 0.2], [1, 1, 1, 0, 0], ["a", "b", "b", "c", "d"], [0, 0, 1, 0, 0],
        ["live", "live", "live", "print", "print"],
    )  # fmt: skip
    honest = evaluate(TARGET, policy="source_val", source_val=source, metrics=["HTER", "BPCER"])
    assert honest["threshold"] == pytest.approx(0.6) and honest["policy"] == "source_val"
    assert honest["metrics"] == pytest.approx({"HTER": (1 / 4 + 1 / 3) / 2, "BPCER": 1 / 3})
    frame_level = evaluate(TARGET, policy="source_val", source_val=source, level="frame", metrics=["HTER"])
    assert frame_level["threshold"] == 0.7  # frame-level source EER: lives 0.9, 0.5, 0.7 vs spoofs 0.5, 0.2


def test_hter_equals_eer_under_test_eer_on_tied_and_separable_scores():
    tied = synthetic(seed=1)
    separable = ScoreTable([0.9, 0.95, 0.1, 0.2], [1, 1, 0, 0], ["a", "b", "c", "d"], [0] * 4, ["live"] * 2 + ["x"] * 2)
    for table in (tied, separable):
        for level in ("video", "frame"):
            values = evaluate(table, level=level, metrics=["HTER", "EER"])["metrics"]
            assert values["HTER"] == pytest.approx(values["EER"])
    assert evaluate(separable, metrics=["EER"])["metrics"]["EER"] == 0


def test_video_level_scores_videos_by_their_mean_frame_score():
    table = synthetic(seed=2)
    videos = table.by_video()
    result = evaluate(table, metrics=["AUC"])
    assert result["metrics"]["AUC"] == pytest.approx(roc_auc_score(videos.label, videos.score))
    frame = evaluate(table, level="frame", metrics=["AUC"])
    assert frame["metrics"]["AUC"] == pytest.approx(roc_auc_score(table.label, table.score))
    assert (frame["n_videos"], frame["n_frames"]) == (60, 240)
    by_max = evaluate(table, reduce="max", metrics=["AUC"])
    assert by_max["metrics"]["AUC"] == pytest.approx(roc_auc_score(videos.label, table.by_video("max").score))


def test_bad_arguments_are_refused():
    with pytest.raises(UnknownNameError, match="did you mean 'test_eer'"):
        evaluate(TARGET, policy="test-eer")
    with pytest.raises(FasbenchError, match="'fixed:' needs a finite number"):
        evaluate(TARGET, policy="fixed:high")
    with pytest.raises(FasbenchError, match="'source_val' needs held-out source-domain"):
        evaluate(TARGET, policy="source_val")
    with pytest.raises(UnknownNameError, match="unknown score level 'clip'"):
        evaluate(TARGET, level="clip")
    with pytest.raises(FasbenchError, match="bootstrap must be a whole number"):
        evaluate(TARGET, bootstrap=-5)
    with pytest.raises(FasbenchError, match="no metric selected"):
        evaluate(TARGET, metrics=[])
    only_live = ScoreTable([0.5, 0.6], [1, 1], ["a", "b"], [0, 0], ["live", "live"])
    with pytest.raises(FasbenchError, match="no spoof"):
        evaluate(only_live)


def test_bootstrap_is_reproducible_under_a_seed():
    table = synthetic(seed=3)
    first = evaluate(table, bootstrap=200, seed=7)
    assert first == evaluate(table, bootstrap=200, seed=7)
    other = evaluate(table, bootstrap=200, seed=8)
    assert first["ci"] != other["ci"] and first["metrics"] == other["metrics"]
    assert first["bootstrap"] == {"resamples": 200, "seed": 7, "unit": "video", "strata": "attack_type"}
    for name, (low, high) in first["ci"].items():
        assert low <= high, name
    assert first["ci"]["AUC"][0] < first["metrics"]["AUC"] < first["ci"]["AUC"][1]
    json.dumps(first, allow_nan=False)


def test_resamples_keep_each_attack_types_video_count():
    strata = np.array(["live", "print", "live", "replay", "print", "print"])
    blocks = list(_resample_counts(strata, 10, 4, np.random.default_rng(0)))
    assert [len(b) for b in blocks] == [4, 4, 2]
    counts = np.concatenate(blocks)
    for kind, size in (("live", 2), ("print", 3), ("replay", 1)):
        np.testing.assert_array_equal(counts[:, strata == kind].sum(axis=1), size)


class SklearnAUC(Metric):
    """AUC through scikit-learn on plain arrays: a third-party metric without the vectorised path."""

    name = "sklearn_auc"

    def compute(self, scores, labels, *, threshold=None, attack_types=None):
        return roc_auc_score(labels, scores)


def test_vectorised_bootstrap_equals_a_loop_over_resamples():
    """Same seed, same resamples: the built-in AUC's interval equals scikit-learn's, resample by resample."""
    plugin = types.ModuleType("third_party")
    plugin.fasbench_register = hookimpl(lambda registry: registry.add("metrics", "sklearn_auc", SklearnAUC))
    plugins = discover_plugins(extra=[(plugin, PluginInfo("third_party", "third_party:module"))])
    table = synthetic(seed=4)
    for level in ("video", "frame"):
        result = evaluate(table, level=level, metrics=["AUC", "sklearn_auc"], bootstrap=40, plugins=plugins)
        assert result["ci"]["AUC"] == pytest.approx(result["ci"]["sklearn_auc"])


def test_metrics_command_prints_json_and_tables(tmp_path, capsys):
    path = tmp_path / "target.h5"
    table = synthetic(seed=5)
    write_scores(path, dataclasses.replace(table, score=np.clip(table.score, 0, 1)), {"step": 3})  # P(live)
    assert main(["metrics", str(path), "--json", "--metrics", "HTER", "AUC", "--bootstrap", "20"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["metrics"] == pytest.approx(evaluate(synthetic(seed=5), metrics=["HTER", "AUC"])["metrics"])
    assert printed["file"]["layout"] == "fasbench" and set(printed["ci"]) == {"HTER", "AUC"}
    assert main(["metrics", str(path), "--threshold-policy", "source_val", "--source-val", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "HTER ↓" in shown and "AUC ↑" in shown and "threshold policy source_val" in shown
    assert main(["metrics", str(path), "--threshold-policy", "source_val"]) == 2
    assert "--source-val PATH" in capsys.readouterr().err
