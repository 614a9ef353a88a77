"""Scoring a learner on cached domains, and tracking the checkpoints each model-selection rule would pick."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasbench.errors import TrainingError
from fasbench.evaluation import ScoreTable, evaluate, read_scores, write_scores
from fasbench.evaluation.table import COLUMNS

SELECTION_RULES = {
    # rule: (score set, metric, lower is better) -- at video level, threshold at that set's own EER
    "source_val": ("source_val", "EER", True),
    "oracle": ("target", "HTER", True),
}


def score_domain(
    learner: Any, cache: Any, rows: np.ndarray, data: Mapping[str, Any], prefix: str, device: Any = "cpu"
) -> ScoreTable:
    """P(live) for the frames at ``rows`` of ``cache``; video ids get ``prefix`` so domains never collide.

    The frames are turned into network input on ``device`` (the run's), as the training stream does."""
    import torch

    from fasbench.data import eval_batches

    scores, labels, video_ids, frame_indices, attack_types = [], [], [], [], []
    with torch.no_grad():
        for images, meta in eval_batches(
            cache,
            rows,
            input_spec=learner.input_spec,
            batch_size=int(data["eval_batch_size"]),
            workers=int(data["workers"]),
            device=device,
        ):
            scores.append(learner.score(images).float().cpu().numpy())
            labels.append(np.asarray(meta["label"]))
            video_ids.append(np.asarray([f"{prefix}/{v}" for v in meta["video_id"]]))
            frame_indices.append(np.asarray(meta["frame_index"]))
            attack_types.append(np.asarray(meta["attack_type"]))
    score = np.concatenate(scores).astype(np.float64)
    bad = int((~np.isfinite(score)).sum())
    if bad:
        raise TrainingError(
            f"the run diverged: at step {learner.step}, {bad} of {len(score)} scores of domain {prefix} are NaN or "
            "infinite; it is marked failed and nothing of it is recorded. Lower the learning rate "
            "(--cfg-options hparams.lr=...) or disable mixed precision (hparams.amp=none): that is a new run"
        )
    return ScoreTable(
        score=score,
        label=np.concatenate(labels).astype(np.int64),
        video_id=np.concatenate(video_ids),
        frame_index=np.concatenate(frame_indices).astype(np.int64),
        attack_type=np.concatenate(attack_types),
    )


def concat_tables(tables: Sequence[ScoreTable]) -> ScoreTable:
    return ScoreTable(**{name: np.concatenate([getattr(t, name) for t in tables]) for name in COLUMNS})


def selection_value(evaluation: Mapping[str, Any], rule: str) -> float:
    source, metric, _ = SELECTION_RULES[rule]
    return float(evaluation[source][metric])


def is_better(rule: str, value: float, best: float | None) -> bool:
    """Strictly better only: on ties the earlier checkpoint stays chosen."""
    lower = SELECTION_RULES[rule][2]
    return best is None or (value < best if lower else value > best)


def scores_path(run_dir: Path, selection: str, part: str) -> Path:
    return run_dir / "scores" / f"{selection}-{part}.h5"


def save_selection(
    run_dir: Path,
    selection: str,
    target: ScoreTable,
    source_val: ScoreTable | None,
    step: int,
    run_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write the selected checkpoint's score files; ``run_attrs`` (learner, protocol, ...) go in as attributes."""
    for part, table in (("target", target), ("source_val", source_val)):
        if table is None:
            continue
        attrs = {**(run_attrs or {}), "selection": selection, "step": step, "part": part}
        write_scores(scores_path(run_dir, selection, part), table, attrs)


def available_rules(has_validation: bool) -> list[str]:
    """The selection rules a run can track: without source validation, no ``source_val``."""
    return [rule for rule, (part, _, _) in SELECTION_RULES.items() if has_validation or part != "source_val"]


def final_evaluations(
    run_dir: Path, selections: Sequence[str], policies: Sequence[str], levels: Sequence[str], bootstrap: int, seed: int
) -> list[dict[str, Any]]:
    """Metrics of every (selection, threshold policy, level) from the saved score files."""
    evaluations = []
    for selection in selections:
        target, target_attrs = read_scores(scores_path(run_dir, selection, "target"))
        path = scores_path(run_dir, selection, "source_val")
        source_val = read_scores(path)[0] if path.exists() else None
        for policy in policies:
            for level in levels:
                result = evaluate(
                    target, policy=policy, source_val=source_val, level=level, bootstrap=bootstrap, seed=seed
                )
                evaluations.append({"selection": selection, "step": int(target_attrs["step"]), **result})
    return evaluations
