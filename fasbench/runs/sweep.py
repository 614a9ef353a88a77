"""Hyper-parameter sweeps: random search over a learner's ``SEARCH_SPACE``, each trial an ordinary run.

Trial 0 is the learner's default hyper-parameters (so the default run is also the sweep's first trial);
trial t >= 1 draws each hyper-parameter from its own hash of (sweep seed, trial, name), DomainBed's way: adding
a hyper-parameter to the space never shifts the values the others draw. The sweep's trials are listed in
``OUT/sweeps/<id>.json``; the leaderboard's tuned rows select, per seed, the trial and checkpoint with the best
source-validation EER (the oracle variant, on the target, is marked).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fasbench import atomic
from fasbench.errors import FasbenchError

DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")


def unit(sweep_seed: int, trial: int, name: str) -> float:
    """A number in [0, 1) from SHA-256 of (sweep seed, trial, hyper-parameter name)."""
    digest = hashlib.sha256(f"{sweep_seed}\x00{trial}\x00{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_space(learner: str, space: Mapping[str, Sequence[Any]], defaults: Mapping[str, Any]) -> None:
    """Refuse an empty space, an unknown hyper-parameter or a malformed distribution, naming them."""
    if not space:
        raise FasbenchError(f"learner {learner!r} declares no SEARCH_SPACE: there is nothing to sweep")
    for name, spec in space.items():
        if name not in defaults:
            raise FasbenchError(f"{learner}.SEARCH_SPACE names {name!r}, which is not one of its hyper-parameters")
        kind = spec[0] if spec else None
        if kind not in DISTRIBUTIONS:
            raise FasbenchError(f"{learner}.SEARCH_SPACE[{name!r}]: distribution must be one of {DISTRIBUTIONS}")
        if kind == "choice":
            if len(spec) != 2 or not list(spec[1]):
                raise FasbenchError(f"{learner}.SEARCH_SPACE[{name!r}]: ('choice', [options...])")
        elif len(spec) != 3 or not spec[1] < spec[2] or (kind == "log_uniform" and spec[1] <= 0):
            raise FasbenchError(f"{learner}.SEARCH_SPACE[{name!r}]: ({kind!r}, low, high) with 0 < low < high")


def draw(space: Mapping[str, Sequence[Any]], trial: int, sweep_seed: int = 0) -> dict[str, Any]:
    """The hyper-parameters of ``trial`` (trial 0: none, i.e. the defaults)."""
    if trial == 0:
        return {}
    values = {}
    for name in sorted(space):
        spec, u = space[name], unit(sweep_seed, trial, name)
        kind = spec[0]
        if kind == "choice":
            options = list(spec[1])
            values[name] = options[min(int(u * len(options)), len(options) - 1)]
        elif kind == "int_uniform":
            low, high = int(spec[1]), int(spec[2])
            values[name] = low + min(int(u * (high - low + 1)), high - low)
        elif kind == "log_uniform":
            values[name] = float(f"{math.exp(math.log(spec[1]) + u * (math.log(spec[2]) - math.log(spec[1]))):.6g}")
        else:
            values[name] = float(f"{spec[1] + u * (spec[2] - spec[1]):.6g}")
    return values


def sweep_id(description: Mapping[str, Any]) -> str:
    """12 hex digits naming a sweep (learner, protocol, suite, convention, preset, space, seed, trials)."""
    import json

    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:12]


def write_manifest(out: str | Path, description: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> Path:
    """``OUT/sweeps/<learner>-<protocol>-<suite>-<id>.json``: what the sweep is and its trials' config ids."""
    path = (
        Path(out)
        / "sweeps"
        / (f"{description['learner']}-{description['protocol']}-{description['suite']}-{sweep_id(description)}.json")
    )
    atomic.write_json(path, {**description, "trials": list(trials)})
    return path


def read_manifests(out: str | Path) -> list[dict[str, Any]]:
    """Every sweep manifest under ``OUT/sweeps`` (an unreadable one is named, not skipped silently)."""
    from fasbench.runs.files import read_json

    folder = Path(out) / "sweeps"
    return [read_json(path, "delete it or rerun the sweep") for path in sorted(folder.glob("*.json"))]
