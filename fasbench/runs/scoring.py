"""Scoring a learner on cached domains, and recording every periodic evaluation (metrics and scores)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasbench.errors import TrainingError
from fasbench.evaluation import ScoreTable, evaluate, write_scores
from fasbench.evaluation.table import COLUMNS
from fasbench.selection import SUMMARY


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


def eval_scores_path(run_dir: Path, step: int, part: str) -> Path:
    """The scores of one periodic evaluation: ``evals/<step>-<part>.h5`` (part: target or source_val)."""
    return run_dir / "evals" / f"{step:08d}-{part}.h5"


def read_target(run_dir: str | Path, step: int, level: str) -> ScoreTable:
    """The target scores a run kept at evaluation ``step``, at ``level`` (video: each video's mean frame score)."""
    from fasbench.evaluation import read_scores

    table, _ = read_scores(eval_scores_path(Path(run_dir), step, "target"))
    return table.by_video() if level == "video" else table


def evaluation_record(
    step: int,
    target: ScoreTable,
    source_val: ScoreTable | None,
    policies: Sequence[str],
    levels: Sequence[str],
    plugins: Any,
) -> dict[str, Any]:
    """One line of ``evals.jsonl``: the summary a selection rule chooses on, and every metric under every
    policy and level (so any rule, even one written later, is applied without reading the scores again)."""
    summary = evaluate(target, policy="test_eer", level="video", metrics=SUMMARY["target"], plugins=plugins)
    line: dict[str, Any] = {"step": step, "target": summary["metrics"]}
    if source_val is not None:
        line["source_val"] = evaluate(
            source_val, policy="test_eer", level="video", metrics=SUMMARY["source_val"], plugins=plugins
        )["metrics"]
    line["metrics"] = {}
    for policy in policies:
        for level in levels:
            result = evaluate(target, policy=policy, source_val=source_val, level=level, plugins=plugins)
            keys = ("metrics", "threshold", "n_videos", "n_frames", "n_live", "n_spoof")
            line["metrics"][f"{result['policy']}/{level}"] = {key: result[key] for key in keys}
    return line


def save_evaluation_scores(
    run_dir: Path, step: int, target: ScoreTable, source_val: ScoreTable | None, run_attrs: Mapping[str, Any]
) -> None:
    """Keep the scores of one periodic evaluation (atomic files; a resumed run rewrites later ones)."""
    for part, table in (("target", target), ("source_val", source_val)):
        if table is not None:
            write_scores(eval_scores_path(run_dir, step, part), table, {**run_attrs, "step": step, "part": part})


def forget_evaluations_after(run_dir: Path, step: int) -> None:
    """Remove the score files of evaluations after ``step`` (a run resumed from an earlier checkpoint)."""
    folder = run_dir / "evals"
    if folder.is_dir():
        for path in folder.glob("*.h5"):
            if int(path.name.split("-", 1)[0]) > step:
                path.unlink()
