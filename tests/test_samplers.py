"""Balanced training streams and evaluation batches read from real (tiny) caches."""

import numpy as np
import pytest
import torch

from fasbench.data import BalancedSampler, domain_batches, eval_batches, open_cache, prepare_domain
from fasbench.data.samplers import ClassStream
from fasbench.errors import MissingDataError
from fasbench.interfaces import LIVE, SPOOF, Dataset, Frame, InputSpec


class Listed(Dataset):
    """Videos given as (video_id, label, split, frames); pixel (0, 0, red) holds a unique frame number."""

    name = "listed"

    def records(self):
        from fasbench.interfaces import VideoRecord

        return [
            VideoRecord(vid, label, "live" if label == LIVE else "print", vid.split("/")[0], split)
            for vid, label, split, _ in self.options["videos"]
        ]

    def frames(self, record):
        base = self.options["base"] + 10 * [v[0] for v in self.options["videos"]].index(record.video_id)
        count = next(n for vid, _, _, n in self.options["videos"] if vid == record.video_id)
        for index in range(count):
            image = np.full((8, 8, 3), 7, np.uint8)
            image[0, 0, 0] = base + index
            yield Frame(index, image, np.full((4, 4), 255, np.uint8))


def _cache(tmp_path, name, videos, base):
    path = prepare_domain(Listed(videos=videos, base=base), tmp_path / f"{name}.h5", progress=False, crop_size=8)
    return open_cache(path)


@pytest.fixture()
def caches(tmp_path):
    first = [
        ("a/live", LIVE, "train", 5),
        ("a/print", SPOOF, "train", 4),
        ("b/print", SPOOF, "train", 5),
        ("c/live", LIVE, "test", 3),
        ("c/print", SPOOF, "test", 2),
    ]
    second = [("d/live", LIVE, "train", 3), ("d/print", SPOOF, "train", 4), ("e/live", LIVE, "dev", 2)]
    return [_cache(tmp_path, "first", first, 0), _cache(tmp_path, "second", second, 100)]


def split_rows(cache, *splits):
    """The rows of the frames of ``cache``'s videos in ``splits`` (what a convention's role resolves to)."""
    return cache.video_rows([r.video_id for r in cache.records if r.split in splits])


def train(caches):
    return [split_rows(cache, "train") for cache in caches]


def _ids(batch) -> list[int]:
    return [round(float(v) * 255) for v in batch.images[:, 0, 0, 0]]


def test_every_step_takes_k_live_then_k_spoof_from_every_domain(caches):
    sampler = BalancedSampler(caches, train(caches), k=3, seed=0)
    for step in range(20):
        for cache, rows in zip(caches, sampler.rows(step), strict=True):
            assert cache.labels[rows].tolist() == [1, 1, 1, 0, 0, 0]
            assert set(cache.splits[rows]) == {"train"}


def test_each_pool_is_drawn_once_per_epoch():
    pool = np.array([3, 8, 9, 20, 21, 40, 41])
    stream = ClassStream(pool, (0, 1, 1))
    drawn = stream.take(0, 5 * len(pool))
    for epoch in range(5):
        assert sorted(drawn[epoch * 7 : (epoch + 1) * 7].tolist()) == pool.tolist()
    assert drawn[:7].tolist() != drawn[7:14].tolist()  # a fresh permutation each epoch


def test_the_stream_is_a_pure_function_of_seed_and_step(caches):
    sampler = BalancedSampler(caches, train(caches), k=2, seed=7)
    late_first = [rows.tolist() for rows in sampler.rows(50)]
    again = BalancedSampler(caches, train(caches), k=2, seed=7)
    assert [rows.tolist() for rows in again.rows(0)] == [rows.tolist() for rows in sampler.rows(0)]
    assert [rows.tolist() for rows in again.rows(50)] == late_first
    other = BalancedSampler(caches, train(caches), k=2, seed=8)
    assert any([r.tolist() for r in other.rows(step)] != [r.tolist() for r in sampler.rows(step)] for step in range(5))


def test_live_frames_are_sampled_uniformly_over_many_steps(caches):
    sampler = BalancedSampler(caches, train(caches), k=2, seed=3)
    counts = np.bincount(np.concatenate([sampler.rows(step)[0][:2] for step in range(500)]), minlength=5)
    assert counts.tolist() == [200] * 5  # the 5 live train frames of the first domain, 1000 draws


def test_domain_batches_deliver_the_network_input(caches):
    spec = InputSpec(size=8, color="rgb_hsv", depth_size=2)
    batches = next(domain_batches(caches, train(caches), k=2, input_spec=spec, seed=0))
    assert [b.domain for b in batches] == [0, 1]
    for batch in batches:
        assert batch.images.shape == (4, 6, 8, 8) and batch.images.dtype == torch.float32
        assert batch.depths.shape == (4, 1, 2, 2) and batch.labels.tolist() == [1.0, 1.0, 0.0, 0.0]
        assert batch.depths[:2].min() == 1.0 and batch.depths[2:].max() == 0.0
    assert set(_ids(batches[0])[:2]) <= {0, 1, 2, 3, 4} and set(_ids(batches[1])[2:]) <= {110, 111, 112, 113}


def test_the_stream_is_the_same_with_workers_and_after_resuming(caches):
    spec = InputSpec(size=8, color="rgb", depth_size=4)

    def steps(workers, start, count):
        stream = domain_batches(caches, train(caches), k=2, input_spec=spec, seed=1, workers=workers, start_step=start)
        return [[(b.images.clone(), b.labels.clone()) for b in next(stream)] for _ in range(count)]

    serial, parallel, resumed = steps(0, 0, 4), steps(2, 0, 4), steps(0, 2, 2)
    for a, b in zip(serial, parallel, strict=True):
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    for a, b in zip(serial[2:], resumed, strict=True):
        assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))


def test_evaluation_covers_each_selected_frame_once_in_cache_order(caches):
    cache = caches[0]
    seen = {"video_id": [], "frame_index": [], "label": [], "attack_type": []}
    ids = []
    rows = split_rows(cache, "train", "test")
    for images, meta in eval_batches(cache, rows, input_spec=InputSpec(size=8), batch_size=4):
        assert images.shape[1:] == (6, 8, 8) and len(images) <= 4
        ids += [round(float(v) * 255) for v in images[:, 0, 0, 0]]
        for key in seen:
            seen[key] += list(meta[key])
    assert ids == [0, 1, 2, 3, 4, 10, 11, 12, 13, 20, 21, 22, 23, 24, 30, 31, 32, 40, 41]
    assert seen["video_id"][:6] == ["a/live"] * 5 + ["a/print"] and seen["frame_index"][:6] == [0, 1, 2, 3, 4, 0]
    assert seen["attack_type"][-1] == "print" and seen["label"][-2:] == [0, 0]
    train_videos = [r.video_id for r in cache.records if r.split == "train"]
    assert cache.video_rows(train_videos, frames_per_video=2).tolist() == [0, 4, 5, 8, 9, 13]
    assert cache.video_rows(["b/print", "a/live", "a/live"]).tolist() == [0, 1, 2, 3, 4, 9, 10, 11, 12, 13]
    with pytest.raises(MissingDataError, match="has no video 'z/live'"):
        cache.video_rows(["z/live"])
    test_rows = split_rows(cache, "test")
    two_workers = [m["frame_index"].tolist() for _, m in eval_batches(cache, test_rows, batch_size=2, workers=2)]
    assert two_workers == [[0, 1], [2, 0], [1]]


def test_missing_classes_and_empty_selections_are_clear_errors(caches):
    with pytest.raises(MissingDataError, match="no spoof frames among its training videos"):
        BalancedSampler(caches[1:], [split_rows(caches[1], "dev")], k=1, seed=0)
    with pytest.raises(MissingDataError, match="no frame was selected"):
        next(eval_batches(caches[1], split_rows(caches[1], "test")))
    assert caches[0].split_names == ("train", "test") and caches[1].split_names == ("train", "dev")
