"""``check_dataset``, ``check_backbone``, ``check_metric``: the other plugin contracts, built through the registry."""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

from fasbench.interfaces import LIVE, SPLITS, SPOOF, Backbone, Dataset, Frame, InputSpec, Metric, VideoRecord
from fasbench.plugins import PluginRegistry, installed_plugins


def check_dataset(
    name: str, options: Mapping[str, Any] | None = None, *, plugins: PluginRegistry | None = None, frames: int = 2
) -> None:
    """Build dataset ``name`` with ``options`` (``root`` among them for a dataset read from disk) as ``fasbench
    prepare`` does and check its records, splits, frames and that it travels to worker processes."""
    plugins = plugins or installed_plugins()
    options = dict(options or {})
    root = options.pop("root", None)
    dataset = plugins.build("datasets", {"type": name, **options}, root=root)
    assert isinstance(dataset, Dataset), f"dataset {name!r} builds a {type(dataset).__name__}, not a Dataset"
    records = dataset.records()
    assert records and all(isinstance(r, VideoRecord) for r in records), f"{name}: records() lists VideoRecords"
    ids = [r.video_id for r in records]
    assert len(set(ids)) == len(ids), f"{name}: a video id is listed twice"
    assert {r.label for r in records} == {LIVE, SPOOF}, f"{name}: records() must hold live and spoof videos"
    splits = dataset.splits()
    assert set(splits) <= set(SPLITS) and set(splits) == {r.split for r in records}, (
        f"{name}: splits() {splits} must be the splits of its records"
    )
    try:
        json.dumps(dataset.cache_options(), sort_keys=True)
    except TypeError as error:
        raise AssertionError(
            f"{name}: cache_options() must be JSON-serialisable (it names the cache): {error}"
        ) from error
    try:
        pickle.loads(pickle.dumps((dataset, records[:2])))
    except Exception as error:
        raise AssertionError(f"{name}: the dataset and its records must pickle (prepare --workers): {error}") from error
    for label in (LIVE, SPOOF):
        record = next(r for r in records if r.label == label)
        produced = list(dataset.frames(record))[:frames]
        assert produced, f"{name}: frames({record.video_id!r}) yielded no frame"
        for frame in produced:
            assert isinstance(frame, Frame), f"{name}: frames() yields Frame objects"
            image, depth = np.asarray(frame.image), np.asarray(frame.depth)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, (
                f"{name}: a frame's image must be uint8 H x W x 3 RGB, got {image.dtype} {image.shape}"
            )
            assert image.shape[0] == image.shape[1], f"{name}: a frame's image must be a square crop"
            assert depth.dtype == np.uint8 and depth.ndim == 2, f"{name}: a frame's depth must be a uint8 h x w map"
    listed = dataset.canonical_list()
    if listed is not None:
        from fasbench.data.canonical import read_canonical

        read_canonical(listed, name)


def check_backbone(
    name: str, options: Mapping[str, Any] | None = None, *, plugins: PluginRegistry | None = None, batch: int = 2
) -> None:
    """Build backbone ``name`` as learners do (``fasbench.learners.build_backbone``) and check its contract:
    declared input, channels and width; output shapes; two seeded builds identical."""
    import torch

    from fasbench.learners import BackboneModule, build_backbone

    plugins = plugins or installed_plugins()
    config = {"type": name, **(options or {})}

    def build() -> BackboneModule:
        torch.manual_seed(0)
        return build_backbone(config, plugins)

    backbone = build()
    assert isinstance(backbone, Backbone) and isinstance(backbone.input_spec, InputSpec), f"{name}: Backbone contract"
    assert isinstance(backbone.width, float) and backbone.width > 0, f"{name}: width must be a positive float"
    spec = backbone.input_spec
    backbone.eval()
    images = torch.rand(batch, spec.channels, spec.size, spec.size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = backbone(images)
    features, depth = output.features, output.depth_features
    assert features.ndim == 4 and tuple(features.shape[:2]) == (batch, backbone.feature_channels), (
        f"{name}: features are {tuple(features.shape)}, declared {backbone.feature_channels} channels"
    )
    assert tuple(depth.shape) == (batch, backbone.depth_channels, spec.depth_size, spec.depth_size), (
        f"{name}: depth features are {tuple(depth.shape)}, declared "
        f"{(batch, backbone.depth_channels, spec.depth_size, spec.depth_size)}"
    )
    twin = build()
    for (key, a), (_, b) in zip(backbone.state_dict().items(), twin.state_dict().items(), strict=True):
        assert torch.equal(a, b), f"{name}: two builds after torch.manual_seed(0) differ in {key!r}"


def check_metric(name: str, *, plugins: PluginRegistry | None = None) -> None:
    """Build metric ``name`` and check it: a value in [0, 1] on a fixed sample, independent of the row order,
    and (for a BatchMetric) the same through ``compute_batch`` as through ``compute`` on each weighting."""
    from fasbench.evaluation import BatchMetric, ScoreSample, choose_threshold, parse_policy

    plugins = plugins or installed_plugins()
    metric = plugins.build("metrics", {"type": name})
    assert isinstance(metric, Metric), f"metric {name!r} builds a {type(metric).__name__}, not a Metric"
    assert isinstance(metric.higher_is_better, bool), f"{name}: higher_is_better must be a bool"
    rng = np.random.default_rng(0)
    label = np.repeat([1, 0, 0], 20)
    attack = np.repeat(["live", "print", "replay"], 20)
    score = np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1).round(2)
    threshold = choose_threshold(parse_policy("test_eer"), ScoreSample(score, label, attack), None)
    value = metric.compute(score, label, threshold=threshold, attack_types=attack)
    assert isinstance(value, float) and 0.0 <= value <= 1.0, f"{name}: compute() gave {value!r}, not a rate in [0, 1]"
    order = rng.permutation(len(score))
    again = metric.compute(score[order], label[order], threshold=threshold, attack_types=attack[order])
    assert np.isclose(again, value), f"{name}: the value depends on the order of the rows"
    if isinstance(metric, BatchMetric):
        weights = rng.integers(0, 3, (3, len(score))).astype(float)
        weights[:, [0, 20, 40]] += 1  # every weighting keeps each class and attack type
        batch = metric.compute_batch(ScoreSample(score, label, attack).reweighted(weights), threshold=threshold)
        for row, expected in zip(weights, batch, strict=True):
            rows = np.repeat(np.arange(len(score)), row.astype(int))
            single = metric.compute(score[rows], label[rows], threshold=threshold, attack_types=attack[rows])
            assert np.isclose(single, expected), f"{name}: compute_batch disagrees with compute on a weighting"
