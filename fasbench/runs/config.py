"""One run's fully resolved configuration and its identity (a hash of the canonical spec).

Layers, later wins: registry.yaml ``defaults`` (budget, intervals, data) and the learner class (``BACKBONE``,
``DEFAULTS`` with the core's ``CORE_HPARAMS``; the backbone class's own option defaults) -> registry.yaml's
``learners`` entry, which holds only what differs from them -> a preset -> ``--budget`` and ``--cfg-options``
(recorded as ``overrides``). Nothing here restates a default. The result is stored with the run; the run
directory is named by its hash, so a rerun of the same spec finds (and skips or resumes) the same directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from fasbench.benchmark import CONVENTION_TUNABLES, BenchmarkSpec, check_tunables
from fasbench.errors import FasbenchError
from fasbench.interfaces import Learner
from fasbench.plugins import PluginRegistry
from fasbench.runs.schema import check_run_config

# Keys that change no number (how many loader processes; how the user spelled the configuration): not hashed.
NOT_HASHED = {("data", "workers"), (None, "overrides")}


RUN_DEFAULTS = ("budget", "eval_every", "checkpoint_every", "log_every")  # registry.yaml defaults: required there
# What a run is: set by the command's own options and the benchmark file, never by --cfg-options.
IDENTITY_KEYS = {
    "learner",
    "protocol",
    "sources",
    "target",
    "suite",
    "domains",
    "seed",
    "device",
    "preset",
    "overrides",
}


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_run_config(
    spec: BenchmarkSpec,
    plugins: PluginRegistry,
    *,
    learner: str,
    protocol: str,
    suite: str | None = None,
    seed: int = 0,
    budget: int | None = None,
    device: str = "cpu",
    preset: str | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    convention: str | None = None,
) -> dict[str, Any]:
    """The resolved, JSON-serialisable config of one run (see the module docstring for the layers);
    ``convention`` is a mode's data convention (``--mode``), which replaces the default one."""
    learner_class = plugins.get("learners", learner).obj
    if not (isinstance(learner_class, type) and issubclass(learner_class, Learner)):
        raise FasbenchError(f"learner {learner!r} is registered as {learner_class!r}, not a fasbench Learner")
    protocol_spec = spec.protocol(protocol)
    suite_spec = spec.suite(suite or spec.defaults.get("suite", "real"))
    defaults = spec.defaults
    backbone, hparams = spec.learner(learner).settings(protocol_spec.name)
    letters = (*protocol_spec.sources, protocol_spec.target)
    config: dict[str, Any] = {
        "learner": learner,
        "protocol": protocol_spec.name,
        "sources": list(protocol_spec.sources),
        "target": protocol_spec.target,
        "suite": suite_spec.name,
        "domains": {
            letter: {"dataset": suite_spec.domains[letter].dataset, "options": dict(suite_spec.domains[letter].options)}
            for letter in letters
        },
        "seed": int(seed),
        "device": device,
        "preset": preset,
        **{key: defaults[key] for key in RUN_DEFAULTS},
        "backbone": _merge(learner_class.BACKBONE, backbone),
        "hparams": _merge(learner_class.all_defaults(), hparams),
        "data": {**defaults["data"], **({"convention": convention} if convention else {})},
    }
    if preset is not None:
        overlay = {k: v for k, v in spec.preset(preset).items() if k != "description"}
        config = _merge(config, overlay)
    overrides: dict[str, Any] = {}
    if budget is not None:
        config["budget"] = int(budget)
        overrides["budget"] = int(budget)
    if cfg_options:
        fixed = sorted({key.split(".", 1)[0] for key in cfg_options} & IDENTITY_KEYS)
        if fixed:
            raise FasbenchError(
                f"--cfg-options cannot change {', '.join(fixed)}: they say what the run is; choose them with "
                "fasbench run's own options (the learner, --protocol, --suite, --seeds, --device, --preset) or "
                "declare another protocol or suite in the benchmark file"
            )
        overrides.update(cfg_options)
        merged = Config(config)
        merged.merge_from_dict(dict(cfg_options))
        config = merged.to_dict()
    config["data"] = resolve_data(spec, config["data"])
    config["overrides"] = overrides
    _check(config, plugins, learner_class)
    return json.loads(json.dumps(config))  # plain JSON types only (tuples -> lists)


def resolve_data(spec: BenchmarkSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """The data section with its convention spelled out: the convention's role rules (fixed by its name)
    and its tunables (``data.holdout_fraction`` ... override the convention's values)."""
    convention = spec.convention(str(data.get("convention")))
    rules = convention.rules()
    fixed = sorted(set(rules) & set(data))
    if fixed:
        raise FasbenchError(
            f"data.{fixed[0]} is fixed by the data convention ({convention.name!r}: {convention.summary}); "
            f"to use other splits, declare a convention in {spec.path} and select it with data.convention=NAME"
        )
    tunables = {**convention.tunables(), **{k: data[k] for k in CONVENTION_TUNABLES if k in data}}
    check_tunables(tunables)
    return {**data, **rules, **tunables}


def _check(config: Mapping[str, Any], plugins: PluginRegistry, learner_class: type) -> None:
    check_run_config(config, plugins, learner_class.all_defaults())
    if config["device"] not in ("cpu", "cuda"):
        raise FasbenchError(f"device must be 'cpu' or 'cuda' once resolved, got {config['device']!r}")


def canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the config that determines the numbers (what the run id hashes)."""
    hashed = json.loads(json.dumps(config))
    hashed.pop("run_id", None)
    for section, key in NOT_HASHED:
        (hashed if section is None else hashed.get(section, {})).pop(key, None)
    return hashed


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def run_id(config: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the canonical config (sorted-key JSON)."""
    return _digest(canonical(config))


def config_id(config: Mapping[str, Any]) -> str:
    """The configuration's id: the run id without the seed, shared by the seeds of one configuration (a
    leaderboard cell aggregates exactly one)."""
    return _digest({k: v for k, v in canonical(config).items() if k != "seed"})


def identity(config: Mapping[str, Any], environment: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a result is the result of: configuration id, preset and overrides, budget, backbone,
    hyper-parameters, data convention and the resolved videos' hash, code revision and plugin versions."""
    environment = environment or {}
    return {
        "config_id": config_id(config),
        "preset": config.get("preset"),
        "overrides": config.get("overrides", {}),
        "budget": config["budget"],
        "eval_every": config["eval_every"],
        "backbone": config["backbone"],
        "hparams": config["hparams"],
        "convention": config["data"]["convention"],
        "videos_sha256": config["data"].get("videos_sha256"),
        "weights": config.get("weights", "from scratch"),
        "fasbench": environment.get("fasbench"),
        "git": environment.get("git"),
        "plugins": environment.get("plugins"),
    }


def run_dir(out: str | Path, config: Mapping[str, Any]) -> Path:
    """``OUT/<learner>/<protocol>-<suite>/seed<seed>-<run id>``: readable, and unique per spec."""
    name = f"seed{config['seed']}-{run_id(config)}"
    return Path(out) / config["learner"] / f"{config['protocol']}-{config['suite']}" / name
