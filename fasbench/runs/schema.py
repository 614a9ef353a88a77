"""The schema of a resolved run config: every key known, every value of the right type, before any training.

A typo (``budgett=5``, ``data.worker=2``, ``hparams.lrr=1``, ``backbone.widht=0.5``) is refused with a
did-you-mean instead of being saved into ``config.json`` and silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from fasbench.errors import FasbenchError
from fasbench.plugins import PluginRegistry, option_names

_INT, _NUMBER, _TEXT = "an integer", "a number", "a string"
TOP: dict[str, tuple[str, ...]] = {
    "learner": (_TEXT,),
    "protocol": (_TEXT,),
    "sources": ("a list",),
    "target": (_TEXT,),
    "suite": (_TEXT,),
    "domains": ("a mapping",),
    "seed": (_INT,),
    "device": (_TEXT,),
    "preset": (_TEXT, "null"),
    "budget": (_INT,),
    "eval_every": (_INT,),
    "checkpoint_every": (_INT,),
    "log_every": (_INT,),
    "backbone": ("a mapping",),
    "hparams": ("a mapping",),
    "data": ("a mapping",),
    "overrides": ("a mapping",),
    "weights": (_TEXT,),
}
DATA: dict[str, tuple[str, ...]] = {
    "convention": (_TEXT,),
    "workers": (_INT,),
    "eval_batch_size": (_INT,),
    "train": (_TEXT, "a list"),
    "validation": (_TEXT,),
    "target": (_TEXT, "a list"),
    "holdout_fraction": (_NUMBER,),
    "holdout_seed": (_INT,),
    "train_frames_per_video": (_INT, "null"),
    "eval_frames_per_video": (_INT, "null"),
    "videos_sha256": (_TEXT,),
    "caches_sha256": ("a mapping",),
}
_CHECKS = {
    _INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
    _NUMBER: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    _TEXT: lambda v: isinstance(v, str),
    "a list": lambda v: isinstance(v, list),
    "a mapping": lambda v: isinstance(v, Mapping),
    "null": lambda v: v is None,
    "true or false": lambda v: isinstance(v, bool),
}


def _unknown(where: str, key: str, known: list[str]) -> FasbenchError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{where}{close[0]}'?" if close else f"; known: {', '.join(sorted(known))}"
    return FasbenchError(f"unknown run config key '{where}{key}'{hint}")


def _check_keys(section: Mapping[str, Any], schema: Mapping[str, tuple[str, ...]], where: str) -> None:
    for key, value in section.items():
        if key not in schema:
            raise _unknown(where, key, list(schema))
        kinds = schema[key]
        if not any(_CHECKS[kind](value) for kind in kinds):
            raise FasbenchError(f"run config {where}{key} must be {' or '.join(kinds)}, got {value!r}")


def _kind_of_default(default: Any) -> tuple[str, ...] | None:
    if isinstance(default, bool):
        return ("true or false",)
    if isinstance(default, int):
        return (_INT,)
    if isinstance(default, float):
        return (_NUMBER,)
    if isinstance(default, str):
        return (_TEXT,)
    if isinstance(default, (list, tuple)):
        return ("a list",)
    return None  # None or anything else: the learner checks it


def check_hparams(learner: str, hparams: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Every hyper-parameter known to the learner and of its default's type (an int where a float is expected
    is fine; a learner still checks ranges and choices itself)."""
    for key, value in hparams.items():
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(defaults))}"
            raise FasbenchError(f"learner {learner!r} has no hyper-parameter {key!r}{hint}")
        kinds = _kind_of_default(defaults[key])
        if kinds is not None and not any(_CHECKS[kind](value) for kind in kinds):
            raise FasbenchError(f"hparams.{key} of learner {learner!r} must be {' or '.join(kinds)}, got {value!r}")


def check_run_config(config: Mapping[str, Any], plugins: PluginRegistry, learner_defaults: Mapping[str, Any]) -> None:
    """Refuse an unknown key or a value of the wrong type anywhere in a resolved run config."""
    _check_keys(config, TOP, "")
    for key in ("budget", "eval_every", "checkpoint_every", "log_every"):
        if config[key] < 1:
            raise FasbenchError(f"{key} must be a positive integer, got {config[key]!r}")
    _check_keys(config["data"], DATA, "data.")
    if config["data"]["workers"] < 0 or config["data"]["eval_batch_size"] < 1:
        raise FasbenchError("data.workers must be >= 0 and data.eval_batch_size >= 1")
    check_hparams(config["learner"], config["hparams"], learner_defaults)
    backbone = config["backbone"]
    if not backbone:
        return _check_domains(config, plugins)  # a learner that builds no backbone from the registry
    if not isinstance(backbone.get("type"), str):
        raise FasbenchError(f"backbone.type must name a backbone (see `fasbench list backbones`), got {backbone}")
    known = option_names(plugins.get("backbones", backbone["type"]).obj)
    if known is not None:
        known = [name for name in known if name != "variant"]
        for key in backbone:
            if key != "type" and key not in known:
                raise _unknown("backbone.", key, [*known, "type"])
    _check_domains(config, plugins)


def _check_domains(config: Mapping[str, Any], plugins: PluginRegistry) -> None:
    """Each domain's dataset is registered and its options are ones the dataset takes (did-you-mean)."""
    for letter, domain in config["domains"].items():
        _check_keys(domain, {"dataset": (_TEXT,), "options": ("a mapping",)}, f"domains.{letter}.")
        dataset = plugins.get("datasets", domain["dataset"]).obj
        known = dataset.option_names() if hasattr(dataset, "option_names") else None
        if known is not None:
            for key in domain.get("options", {}):
                if key not in known:
                    raise _unknown(f"domains.{letter}.options.", key, list(known))
