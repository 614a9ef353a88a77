"""Run configuration: layering of defaults, preset and overrides; run ids."""

import types

import pytest

from fasbench import hookimpl
from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.registry import PluginInfo, Registries
from fasbench.runs.config import resolve_run_config, run_dir, run_id
from fasbench.spec import load_spec


class ToyLearner:
    """A learner stand-in: only DEFAULTS matter for config resolution."""

    DEFAULTS = {"lr": 1e-3, "batch_per_class": 10, "first_order": False}


def registries():
    module = types.ModuleType("toy")

    @hookimpl
    def fasbench_register(registry):
        registry.add("learners", "toy", ToyLearner)

    module.fasbench_register = fasbench_register
    built = Registries()
    built.add_plugin(module, PluginInfo("toy", "toy"))
    return built


def resolve(**kwargs):
    arguments = dict(learner="toy", protocol="ICM_O", suite="synthetic", seed=1)
    return resolve_run_config(load_spec(), registries(), **{**arguments, **kwargs})


def test_layers_defaults_preset_budget_and_overrides():
    config = resolve()
    assert (config["sources"], config["target"]) == (["I", "C", "M"], "O")
    assert config["domains"]["O"] == {"dataset": "synthetic", "options": {"domain": "O"}}
    assert config["hparams"] == ToyLearner.DEFAULTS and config["budget"] == 5000
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
