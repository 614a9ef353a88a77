"""``evaluate``: every metric of a score table at one level under one threshold policy, with bootstrap intervals.

Bootstrap: B resamples of the videos, drawn with replacement within each attack type (lives are one
type), so every resample keeps each type's video count and has both classes; a frame-level resample
takes all frames of each drawn video. Threshold metrics use the threshold chosen on the full data in
every resample (the interval is the sampling spread of the metric, not of the threshold choice).
Intervals are the 2.5th and 97.5th percentiles of the resampled values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.evaluation.batch_metric import BatchMetric
from fasbench.evaluation.policy import ThresholdPolicy, choose_threshold, parse_policy
from fasbench.evaluation.roc import ScoreSample
from fasbench.evaluation.table import ScoreTable, video_groups
from fasbench.interfaces import Metric

LEVELS = ("video", "frame")
CONFIDENCE_PERCENTILES = (2.5, 97.5)
BLOCK_ELEMENTS = 2_000_000  # resample weights are made and evaluated this many at a time (bounds memory)


def default_metric_names(plugins: Any) -> list[str]:
    """Every registered metric; a family (``TPR_at_FPR:``) contributes its class's ``DEFAULT_VARIANTS``."""
    names = []
    for entry in plugins.entries("metrics"):
        if entry.is_family:
            names += [entry.name + variant for variant in getattr(entry.obj, "DEFAULT_VARIANTS", ())]
        else:
            names.append(entry.name)
    return names


def build_metrics(names: Sequence[str], plugins: Any) -> dict[str, Metric]:
    """Metric instances by name, from the plugins (unknown names are refused with a suggestion)."""
    if not names:
        raise FasbenchError("no metric selected: name at least one (see `fasbench list metrics`)")
    built = {}
    for name in names:
        metric = plugins.build("metrics", {"type": name})
        if not isinstance(metric, Metric):
            raise FasbenchError(f"metric {name!r} builds a {type(metric).__name__}, not a fasbench.interfaces.Metric")
        built[name] = metric
    return built


def evaluate(
    table: ScoreTable,
    *,
    policy: str = "test_eer",
    source_val: ScoreTable | None = None,
    level: str = "video",
    metrics: Sequence[str] | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    plugins: Any = None,
    reduce: str = "mean",
    threshold: float | None = None,
) -> dict[str, Any]:
    """Metrics of ``table`` as a JSON-serialisable dict naming its policy, level, threshold and counts.

    ``level`` 'video' scores each video by ``reduce`` over its frames (``source_val`` too); ``metrics``
    defaults to every registered one; ``bootstrap`` > 0 adds 95% intervals under ``ci``. ``threshold``, when
    given, is used exactly instead of the policy's choice (a threshold chosen elsewhere, e.g. on the clean
    scores of an attacked run); ``policy`` then names where it came from.
    """
    if level not in LEVELS:
        raise UnknownNameError("score level", level, LEVELS)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise FasbenchError(f"bootstrap must be a whole number of resamples >= 0, got {bootstrap!r}")
    parsed = parse_policy(policy)
    if plugins is None:
        from fasbench.plugins import installed_plugins

        plugins = installed_plugins()
    built = build_metrics(list(metrics) if metrics is not None else default_metric_names(plugins), plugins)
    rows = table.by_video(reduce) if level == "video" else table
    sample = ScoreSample(rows.score, rows.label, rows.attack_type)
    if threshold is None:
        threshold = _threshold(parsed, sample, source_val, level, reduce)
    elif not np.isfinite(threshold):
        raise FasbenchError(f"a given threshold must be finite, got {threshold!r}")
    threshold = float(threshold)
    values = {name: float(_values(metric, sample, threshold)[0]) for name, metric in built.items()}
    result: dict[str, Any] = {
        "policy": parsed.name,
        "policy_description": parsed.description,
        "level": level,
        "reduce": reduce if level == "video" else None,
        "threshold": threshold,
        "n_videos": len(rows) if level == "video" else table.n_videos,
        "n_frames": len(table),
        "n_live": int(rows.label.sum()),
        "n_spoof": int(len(rows) - rows.label.sum()),
        "metrics": values,
    }
    if bootstrap:
        resampled = _bootstrap(table, rows, sample, built, threshold, level, int(bootstrap), seed)
        result["ci"] = {
            name: [float(v) for v in np.percentile(draws, CONFIDENCE_PERCENTILES)] for name, draws in resampled.items()
        }
        result["bootstrap"] = {"resamples": int(bootstrap), "seed": seed, "unit": "video", "strata": "attack_type"}
    return result


def _threshold(
    policy: ThresholdPolicy, sample: ScoreSample, source_val: ScoreTable | None, level: str, reduce: str
) -> float:
    source_sample = None
    if policy.needs_source_val and source_val is not None:
        source_rows = source_val.by_video(reduce) if level == "video" else source_val
        source_sample = ScoreSample(source_rows.score, source_rows.label, source_rows.attack_type)
    return choose_threshold(policy, sample, source_sample)


def _values(metric: Metric, sample: ScoreSample, threshold: float) -> np.ndarray:
    """The metric under every weighting of ``sample``: vectorised for a BatchMetric, a loop otherwise."""
    if isinstance(metric, BatchMetric):
        return np.asarray(metric.compute_batch(sample, threshold=threshold), dtype=np.float64)
    values = []
    for weights in sample.weights:
        rows = np.repeat(np.arange(len(weights)), weights.astype(np.int64))
        values.append(
            metric.compute(
                sample.score[rows], sample.label[rows], threshold=threshold, attack_types=sample.attack_type[rows]
            )
        )
    return np.asarray(values, dtype=np.float64)


def _bootstrap(
    table: ScoreTable,
    rows: ScoreTable,
    sample: ScoreSample,
    metrics: dict[str, Metric],
    threshold: float,
    level: str,
    n_resamples: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Each metric's values over ``n_resamples`` type-stratified resamples of the videos."""
    if level == "video":
        video_of_row, video_attack_type = np.arange(len(rows)), rows.attack_type
    else:
        _, video_of_row, first_row = video_groups(table.video_id)
        table.by_video()  # refuses videos whose frames disagree on label or attack type
        video_attack_type = table.attack_type[first_row]
    draws: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    block_rows = max(1, BLOCK_ELEMENTS // len(rows))
    for counts in _resample_counts(video_attack_type, n_resamples, block_rows, np.random.default_rng(seed)):
        weights = counts if level == "video" else counts[:, video_of_row]
        resampled = sample.reweighted(weights)
        for name, metric in metrics.items():
            draws[name].append(_values(metric, resampled, threshold))
    return {name: np.concatenate(values) for name, values in draws.items()}


def _resample_counts(
    strata: np.ndarray, n_resamples: int, block_rows: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Blocks of (resamples x videos) draw counts; each stratum's videos are drawn with replacement among
    themselves, as many times as it has videos."""
    _, stratum_of_video = np.unique(strata, return_inverse=True)
    members = [np.flatnonzero(stratum_of_video == s) for s in range(stratum_of_video.max() + 1)]
    n_videos = len(strata)
    for start in range(0, n_resamples, block_rows):
        n_rows = min(block_rows, n_resamples - start)
        drawn = np.empty((n_rows, n_videos), dtype=np.int64)
        for videos in members:
            drawn[:, videos] = videos[rng.integers(0, len(videos), size=(n_rows, len(videos)))]
        drawn += (np.arange(n_rows) * n_videos)[:, None]
        yield np.bincount(drawn.ravel(), minlength=n_rows * n_videos).reshape(n_rows, n_videos).astype(np.float64)
