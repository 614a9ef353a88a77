"""Run configuration: layering of defaults, preset and overrides; run ids."""

import re
import types

import pytest

from fasbench import hookimpl
from fasbench.benchmark import load_benchmark
from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.interfaces import Learner
from fasbench.plugins import PluginInfo, discover_plugins
from fasbench.runs.config import resolve_run_config, run_dir, run_id


class ToyLearner(Learner):
    """A learner stand-in: only DEFAULTS matter for config resolution (batch_per_class comes from the core)."""

    name = "toy"
    DEFAULTS = {"lr": 1e-3, "first_order": False}
    BACKBONE = {"type": "rfmeta_cnn"}


def plugins():
    module = types.ModuleType("toy")

    @hookimpl
    def fasbench_register(registry):
        registry.add("learners", "toy", ToyLearner)

    module.fasbench_register = fasbench_register
    return discover_plugins(extra=[(module, PluginInfo("toy", "toy"))])  # the installed plugins, plus the toy learner


def resolve(**kwargs):
    arguments = dict(learner="toy", protocol="ICM_O", suite="synthetic", seed=1)
    return resolve_run_config(load_benchmark(), plugins(), **{**arguments, **kwargs})


def test_layers_defaults_preset_budget_and_overrides():
    config = resolve()
    assert (config["sources"], config["target"]) == (["I", "C", "M"], "O")
    assert config["domains"]["O"] == {"dataset": "synthetic", "options": {"domain": "O"}}
    assert config["hparams"] == {**ToyLearner.DEFAULTS, "batch_per_class": 10} and config["budget"] == 5000
    demo = resolve(preset="cpu_demo")
    assert demo["budget"] == 300 and demo["eval_every"] == 50
    assert demo["backbone"] == {"type": "rfmeta_cnn", "width": 0.125, "input_size": 64}
    assert demo["hparams"]["batch_per_class"] == 5 and demo["hparams"]["lr"] == ToyLearner.DEFAULTS["lr"]
    assert resolve(preset="cpu_demo", budget=7)["budget"] == 7  # --budget beats the preset
    tuned = resolve(cfg_options={"hparams.lr": 0.5, "backbone.width": 0.5, "data.workers": 2})
    assert tuned["hparams"]["lr"] == 0.5 and tuned["backbone"]["width"] == 0.5 and tuned["data"]["workers"] == 2


def test_run_id_is_stable_and_ignores_only_number_neutral_keys():
    base = resolve()
    assert run_id(base) == run_id(resolve())
    assert run_id(resolve(cfg_options={"data.workers": 4})) == run_id(base)
    for changed in (resolve(seed=2), resolve(cfg_options={"hparams.lr": 0.1}), resolve(device="cuda")):
        assert run_id(changed) != run_id(base)
    assert run_dir("runs", base).parts[:3] == ("runs", "toy", "ICM_O-synthetic")


def test_refusals():
    with pytest.raises(FasbenchError, match="no hyper-parameter 'lrr'"):
        resolve(cfg_options={"hparams.lrr": 1})
    with pytest.raises(FasbenchError, match="budget must be a positive integer"):
        resolve(budget=0)
    with pytest.raises(UnknownNameError, match="did you mean 'ICM_O'"):
        resolve(protocol="ICMO")
    with pytest.raises(UnknownNameError, match="unknown preset"):
        resolve(preset="fast")
    with pytest.raises(UnknownNameError, match="unknown learner 'toyy'"):
        resolve(learner="toyy")


def test_the_data_convention_is_spelled_out_in_the_config():
    data = resolve()["data"]
    assert (data["convention"], data["train"], data["validation"], data["target"]) == (
        "fasbench", "all", "dev_or_holdout", "all",
    )  # fmt: skip
    assert (data["holdout_fraction"], data["holdout_seed"], data["eval_frames_per_video"]) == (0.2, 0, None)
    official = resolve(cfg_options={"data.convention": "official", "data.eval_frames_per_video": 2})["data"]
    assert (official["train"], official["target"], official["eval_frames_per_video"]) == (["train"], ["test"], 2)
    assert run_id(resolve(cfg_options={"data.holdout_seed": 1})) != run_id(resolve())


def test_bad_data_conventions_are_refused_before_training():
    with pytest.raises(UnknownNameError, match="unknown data convention 'oficial'; did you mean 'official'"):
        resolve(cfg_options={"data.convention": "oficial"})
    with pytest.raises(FasbenchError, match=r"holdout_fraction must be a number in \(0, 1\), got 1.5"):
        resolve(cfg_options={"data.holdout_fraction": 1.5})
    with pytest.raises(FasbenchError, match="data.target is fixed by the data convention"):
        resolve(cfg_options={"data.target": ["test"]})
    with pytest.raises(FasbenchError, match="eval_frames_per_video must be a positive integer"):
        resolve(cfg_options={"data.eval_frames_per_video": 0})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"budgett": 5}, "unknown run config key 'budgett'; did you mean 'budget'"),
        ({"data.worker": 2}, "unknown run config key 'data.worker'; did you mean 'data.workers'"),
        ({"hparams.lrr": 1}, "no hyper-parameter 'lrr'; did you mean 'lr'"),
        ({"backbone.widht": 0.5}, "unknown run config key 'backbone.widht'; did you mean 'backbone.width'"),
        ({"hparams.first_order": "yes"}, "hparams.first_order of learner 'toy' must be true or false, got 'yes'"),
        ({"hparams.lr": "fast"}, "hparams.lr of learner 'toy' must be a number, got 'fast'"),
        ({"eval_every": 2.5}, "eval_every must be an integer, got 2.5"),
        ({"data.workers": -1}, "data.workers must be >= 0"),
    ],
)
def test_typos_and_wrong_types_anywhere_in_the_config_are_refused(options, message):
    with pytest.raises(FasbenchError, match=re.escape(message)):
        resolve(cfg_options=options)
