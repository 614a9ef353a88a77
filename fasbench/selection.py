"""Model selection after the fact: a rule picks, from a run's periodic evaluations, whose metrics it reports.

A run keeps every periodic evaluation: a summary (target AUC / EER / HTER and source-validation AUC /
EER at video level, test_eer policy, the numbers a rule chooses on) and every metric under every
threshold policy and score level (``evals.jsonl``), plus the scores themselves (``evals/``). A selection
rule (``fasbench.interfaces.SelectionRule``, a plugin kind like a metric) only chooses evaluations; the
reported metrics are the mean of the chosen evaluations' metrics. So a new rule is one class and one
entry-point line, and applies to runs that finished before it existed, without retraining.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError
from fasbench.interfaces import Evaluation, SelectionRule

# What a rule chooses on, per evaluation (video level, threshold at that set's own EER).
SUMMARY = {"target": ("AUC", "EER", "HTER"), "source_val": ("AUC", "EER")}


class _Metrics(Mapping):
    """One evaluation's metrics as ``{"policy/level": {"metrics": {...}, "threshold": t}}``, read from the arrays."""

    def __init__(self, history: History, row: int) -> None:
        self.history, self.row = history, row

    def __getitem__(self, key: str) -> dict[str, Any]:
        column = self.history.keys.index(key)
        values = self.history.values[self.row, column]
        return {
            "metrics": {name: float(v) for name, v in zip(self.history.names, values, strict=True)},
            "threshold": float(self.history.thresholds[self.row, column]),
        }

    def __iter__(self):
        return iter(self.history.keys)

    def __len__(self) -> int:
        return len(self.history.keys)


@dataclass
class History:
    """A run's evaluations as arrays (E evaluations, K policy/level keys, M metrics): compact to store, fast to
    select from. ``evaluations`` is the same as ``Evaluation`` objects, what a ``SelectionRule`` sees."""

    steps: np.ndarray  # E, increasing
    target: np.ndarray  # E x 3: AUC, EER, HTER
    source_val: np.ndarray | None  # E x 2: AUC, EER; None without source validation
    keys: list[str]  # "policy/level"
    names: list[str]  # metric names
    values: np.ndarray  # E x K x M
    thresholds: np.ndarray  # E x K

    @cached_property
    def evaluations(self) -> list[Evaluation]:
        def summary(part: str, row: np.ndarray) -> dict[str, float]:
            return {name: float(v) for name, v in zip(SUMMARY[part], row, strict=True)}

        return [
            Evaluation(
                int(step),
                summary("target", self.target[row]),
                None if self.source_val is None else summary("source_val", self.source_val[row]),
                _Metrics(self, row),
            )
            for row, step in enumerate(self.steps)
        ]

    @classmethod
    def from_records(cls, lines: Sequence[Mapping[str, Any]]) -> History:
        """From ``evals.jsonl`` lines (dicts with step, target, source_val and metrics)."""
        lines = sorted(lines, key=lambda line: int(line["step"]))
        keys = list(lines[0]["metrics"])
        names = list(lines[0]["metrics"][keys[0]]["metrics"])
        values = np.array(
            [[[line["metrics"][key]["metrics"].get(name, np.nan) for name in names] for key in keys] for line in lines],
            dtype=np.float64,
        )
        thresholds = np.array([[line["metrics"][key]["threshold"] for key in keys] for line in lines], np.float64)
        has_validation = lines[0].get("source_val") is not None
        return cls(
            steps=np.array([int(line["step"]) for line in lines], np.int64),
            target=np.array([[line["target"][n] for n in SUMMARY["target"]] for line in lines], np.float64),
            source_val=(
                np.array([[line["source_val"][n] for n in SUMMARY["source_val"]] for line in lines], np.float64)
                if has_validation
                else None
            ),
            keys=keys,
            names=names,
            values=values,
            thresholds=thresholds,
        )

    def to_bytes(self) -> bytes:
        """The history as one ``.npz`` blob (what the results store keeps per run)."""
        buffer = io.BytesIO()
        arrays = {"steps": self.steps, "target": self.target, "values": self.values, "thresholds": self.thresholds}
        if self.source_val is not None:
            arrays["source_val"] = self.source_val
        header = np.frombuffer(json.dumps({"keys": self.keys, "names": self.names}).encode(), np.uint8)
        np.savez(buffer, header=header, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> History:
        with np.load(io.BytesIO(data)) as arrays:
            header = json.loads(arrays["header"].tobytes().decode())
            return cls(
                steps=arrays["steps"],
                target=arrays["target"],
                source_val=arrays["source_val"] if "source_val" in arrays else None,
                keys=header["keys"],
                names=header["names"],
                values=arrays["values"],
                thresholds=arrays["thresholds"],
            )


def apply_rule(rule: SelectionRule, history: History, policy: str, level: str) -> dict[str, Any]:
    """The rule's chosen evaluations and the mean of their metrics under ``policy`` at ``level``.

    Returns ``{"steps": [...], "metrics": {...}, "threshold": t or None (several evaluations), "summary": {...}}``.
    """
    if not len(history.steps):
        raise FasbenchError("the run has no evaluation to select from")
    if rule.needs_validation and history.source_val is None:
        raise FasbenchError(f"selection {rule.name!r} needs source validation, which this run's convention has not")
    chosen = np.asarray(rule.select(history.evaluations), dtype=np.int64)
    if chosen.size == 0:
        raise FasbenchError(f"selection {rule.name!r} chose no evaluation")
    key = f"{policy}/{level}"
    if key not in history.keys:
        raise FasbenchError(f"the run's evaluations have no metrics under {key} (they have {', '.join(history.keys)})")
    column = history.keys.index(key)
    means = history.values[chosen, column].mean(axis=0)
    summary = {"target": dict(zip(SUMMARY["target"], history.target[chosen].mean(axis=0).tolist(), strict=True))}
    if history.source_val is not None:
        summary["source_val"] = dict(
            zip(SUMMARY["source_val"], history.source_val[chosen].mean(axis=0).tolist(), strict=True)
        )
    return {
        "steps": history.steps[chosen].tolist(),
        "metrics": dict(zip(history.names, means.tolist(), strict=True)),
        "threshold": float(history.thresholds[chosen[0], column]) if chosen.size == 1 else None,
        "summary": summary,
    }


def read_evaluations(path: Path) -> History:
    """The evaluations a run recorded in its ``evals.jsonl``; a run made before per-evaluation metrics were kept
    (no ``metrics``) is refused with what to do."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FasbenchError(f"{path} cannot be read ({error}); rerun the run with --restart") from error
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            data["metrics"], data["target"], int(data["step"])  # noqa: B018 - the keys a record must have
            lines.append(data)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise FasbenchError(
                f"{path}:{number} is not an evaluation record of this fasbench ({type(error).__name__}: {error}); "
                "rerun the run with --restart"
            ) from error
    if not lines:
        raise FasbenchError(f"{path} holds no evaluation")
    return History.from_records(lines)


def rules(plugins: Any, names: Sequence[str] | None = None) -> dict[str, SelectionRule]:
    """Selection rules by name (every registered plain name when ``names`` is None; ``family:variant`` works)."""
    chosen = names if names is not None else [e.name for e in plugins.entries("selections") if not e.is_family]
    built = {}
    for name in chosen:
        rule = plugins.build("selections", {"type": name})
        if not isinstance(rule, SelectionRule):
            raise FasbenchError(f"selection {name!r} builds a {type(rule).__name__}, not a SelectionRule")
        built[name] = rule
    return built


def selected(history: History, chosen_rules: Mapping[str, SelectionRule]) -> list[dict[str, Any]]:
    """Every (rule, policy, level) result of a run: what its record and the results store hold. A rule that
    needs source validation is left out of a run without it, and so is the source_val threshold policy."""
    results = []
    for name, rule in chosen_rules.items():
        if rule.needs_validation and history.source_val is None:
            continue
        for key in history.keys:
            policy, level = key.rsplit("/", 1)
            outcome = apply_rule(rule, history, policy, level)
            results.append({"selection": name, "policy": policy, "level": level, "oracle": rule.uses_target, **outcome})
    return results
