"""``ScoreTable``: one row per scored frame (or per video after ``by_video``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError, UnknownNameError

LIVE_ATTACK_TYPE = "live"
SPOOF_ATTACK_TYPE = "spoof"  # the attack type given to spoofs when a file does not say which attack they are
VIDEO_LEVEL_FRAME_INDEX = -1
REDUCTIONS = ("mean", "median", "max", "min")
COLUMNS = ("score", "label", "video_id", "frame_index", "attack_type")


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """Scores P(live) with their labels (1 = live), video ids, frame indices and attack types.

    Construction coerces the columns to 1-D numpy arrays (float64, int64, str, int64, str) and refuses
    what would make a metric silently wrong: unequal lengths, no rows, NaN or infinite scores, labels
    other than 0/1, and an attack type that disagrees with the label ('live' goes with label 1 only).
    """

    score: np.ndarray
    label: np.ndarray
    video_id: np.ndarray
    frame_index: np.ndarray
    attack_type: np.ndarray

    def __post_init__(self) -> None:
        columns = {name: _one_dimensional(name, getattr(self, name)) for name in COLUMNS}
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{name} {length}" for name, length in lengths.items())
            raise FasbenchError(
                f"score table columns differ in length ({listed}): every column needs one value per row"
            )
        score, label, attack_type = checked_scores(columns["score"], columns["label"], columns["attack_type"])
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "video_id", columns["video_id"].astype(str))
        object.__setattr__(self, "frame_index", _integers("frame_index", columns["frame_index"]))
        object.__setattr__(self, "attack_type", attack_type)

    @classmethod
    def from_labels(cls, score: Any, label: Any) -> ScoreTable:
        """A table from scores and labels alone (the RF-Meta seed layout): each frame is its own video.

        Frames get ids ``"0"``, ``"1"``...; live frames the attack type 'live', spoofs 'spoof'.
        """
        score = np.ravel(np.asarray(score))
        label = binary_labels(np.ravel(np.asarray(label)))
        rows = np.arange(len(label))
        attack_type = np.where(label == 1, LIVE_ATTACK_TYPE, SPOOF_ATTACK_TYPE)
        return cls(score, label, rows.astype(str), np.zeros_like(rows), attack_type)

    def __len__(self) -> int:
        return len(self.score)

    @property
    def n_videos(self) -> int:
        return len(video_groups(self.video_id)[0])

    def by_video(self, reduce: str = "mean") -> ScoreTable:
        """One row per video (sorted by video id), scored by ``reduce`` over its frames; frame_index is -1.

        ``reduce`` is one of 'mean' (the DG-FAS convention), 'median', 'max', 'min'. A video whose frames
        disagree on label or attack type is refused.
        """
        if reduce not in REDUCTIONS:
            raise UnknownNameError("score reduction", reduce, REDUCTIONS)
        ids, video_of_row, first_row = video_groups(self.video_id)
        for name in ("label", "attack_type"):
            column = getattr(self, name)
            differs = column != column[first_row][video_of_row]
            if differs.any():
                row = int(np.flatnonzero(differs)[0])
                raise FasbenchError(
                    f"video {self.video_id[row].item()!r} has frames with different {name}s "
                    f"({column[first_row[video_of_row[row]]].item()!r} and {column[row].item()!r}); "
                    "a video must have one label and one attack type"
                )
        return ScoreTable(
            score=_reduce_scores(self.score, video_of_row, len(ids), reduce),
            label=self.label[first_row],
            video_id=ids,
            frame_index=np.full(len(ids), VIDEO_LEVEL_FRAME_INDEX, dtype=np.int64),
            attack_type=self.attack_type[first_row],
        )


def video_groups(video_id: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, video_of_row, first_row)``: sorted distinct ids, each row's index into them, each id's first row.

    Frames of a video usually come in one run, so only the first id of each run is sorted (fast on millions
    of rows); interleaved videos are handled too, just more slowly.
    """
    n_rows = len(video_id)
    run_starts = np.concatenate(([0], np.flatnonzero(video_id[1:] != video_id[:-1]) + 1))
    run_lengths = np.diff(np.append(run_starts, n_rows))
    ids, first_run, video_of_run = np.unique(video_id[run_starts], return_index=True, return_inverse=True)
    return ids, np.repeat(video_of_run, run_lengths), run_starts[first_run]


def binary_labels(label: np.ndarray) -> np.ndarray:
    """Labels as int64 after checking every one is 0 (spoof) or 1 (live)."""
    label = np.asarray(label)
    if label.dtype == bool:
        return label.astype(np.int64)
    if not np.issubdtype(label.dtype, np.number):
        raise FasbenchError(f"labels must be numbers 0 (spoof) or 1 (live), got values of type {label.dtype}")
    bad = ~np.isin(label, (0, 1))
    if bad.any():
        raise FasbenchError(
            f"{int(bad.sum())} of {len(label)} labels are neither 0 (spoof) nor 1 (live), e.g. "
            f"{label[bad][0].item()!r} at row {int(np.flatnonzero(bad)[0])}; fasbench uses 1 = live "
            "(convert files that use 0 = live)"
        )
    return label.astype(np.int64)


def _one_dimensional(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise FasbenchError(f"score table column {name!r} must be one-dimensional, got shape {array.shape}")
    return array


def checked_scores(score: Any, label: Any, attack_type: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one validator of scored rows (``ScoreTable`` and ``ScoreSample`` both use it): one-dimensional
    columns of equal, non-zero length; finite real scores; 0/1 labels; attack types that agree with them
    ('live' for label 1 only; 'spoof' for every spoof when none are given)."""
    score, label = _one_dimensional("score", score), _one_dimensional("label", label)
    if attack_type is None:
        attack_type = np.where(binary_labels(label) == 1, LIVE_ATTACK_TYPE, SPOOF_ATTACK_TYPE)
    attack_type = _one_dimensional("attack_type", attack_type).astype(str)
    lengths = {"score": len(score), "label": len(label), "attack_type": len(attack_type)}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} {length}" for name, length in lengths.items())
        raise FasbenchError(f"score columns differ in length ({listed}): every column needs one value per row")
    if len(score) == 0:
        raise FasbenchError("no frame was scored: there is nothing to evaluate")
    label = binary_labels(label)
    _check_attack_types(label, attack_type)
    return _finite_scores(score), label, attack_type


def _finite_scores(score: np.ndarray) -> np.ndarray:
    if not np.issubdtype(score.dtype, np.number) or np.issubdtype(score.dtype, np.complexfloating):
        raise FasbenchError(f"scores must be real numbers (P(live)), got values of type {score.dtype}")
    score = score.astype(np.float64)
    bad = ~np.isfinite(score)
    if bad.any():
        raise FasbenchError(
            f"{int(bad.sum())} of {len(score)} scores are NaN or infinite (first at row "
            f"{int(np.flatnonzero(bad)[0])}): the model produced invalid outputs; "
            "fix the scoring before computing metrics"
        )
    return score


def _integers(name: str, values: np.ndarray) -> np.ndarray:
    if not np.issubdtype(values.dtype, np.integer):
        if not np.issubdtype(values.dtype, np.floating) or not np.array_equal(values, np.round(values)):
            raise FasbenchError(f"{name} must hold integers, got values of type {values.dtype}")
    return values.astype(np.int64)


def _check_attack_types(label: np.ndarray, attack_type: np.ndarray) -> None:
    wrong = (label == 1) != (attack_type == LIVE_ATTACK_TYPE)
    if wrong.any():
        row = int(np.flatnonzero(wrong)[0])
        raise FasbenchError(
            f"{int(wrong.sum())} rows have an attack type that disagrees with their label, e.g. row {row}: label "
            f"{label[row]} with attack type {attack_type[row].item()!r}; "
            "attack type 'live' goes with label 1 and only with it"
        )


def _reduce_scores(score: np.ndarray, video_of_row: np.ndarray, n_videos: int, reduce: str) -> np.ndarray:
    counts = np.bincount(video_of_row, minlength=n_videos)
    if reduce == "mean":
        return np.bincount(video_of_row, weights=score, minlength=n_videos) / counts
    ordered = score[np.lexsort((score, video_of_row))]  # grouped by video, ascending within each
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    if reduce == "min":
        return ordered[starts]
    if reduce == "max":
        return ordered[starts + counts - 1]
    return (ordered[starts + (counts - 1) // 2] + ordered[starts + counts // 2]) / 2
