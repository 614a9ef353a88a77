"""Every baseline on the synthetic suite (tiny: 4 subjects, 32 px): 3 steps, target scores, resume from a file."""

from __future__ import annotations

import pytest
import torch
from fasbench_plugins.baselines import LEARNERS
from fasbench_plugins.synthetic.dataset import SyntheticDataset

from fasbench.data import domain_batches, eval_batches, open_cache, prepare_domain
from fasbench.plugins import installed_plugins

TINY = {"type": "rfmeta_cnn", "width": 0.0625, "input_size": 32}
SOURCES, TARGET = "ICM", "O"
NAMES = [learner.name for learner in LEARNERS]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """The four synthetic domains at the smallest size: 4 subjects (2 train, 1 dev, 1 test), 1 frame a video."""
    folder = tmp_path_factory.mktemp("synthetic")
    opened = {}
    for letter in SOURCES + TARGET:
        dataset = SyntheticDataset(
            domain=letter, subjects=4, videos_per_type=1, frames_per_video=1, crop_size=32, depth_size=4
        )
        opened[letter] = open_cache(prepare_domain(dataset, folder / f"{letter}.h5", progress=False))
    return opened


def build(name: str):
    return installed_plugins().build(
        "learners",
        {"type": name, "backbone": TINY, "hparams": {"batch_per_class": 2}},
        num_domains=len(SOURCES),
        device="cpu",
        seed=0,
    )


def stream(caches, learner, start_step: int = 0):
    sources = [caches[letter] for letter in SOURCES]
    rows = [split_rows(cache, "train") for cache in sources]
    return domain_batches(sources, rows, k=2, input_spec=learner.input_spec, seed=0, start_step=start_step)


def split_rows(cache, split: str):
    return cache.video_rows([r.video_id for r in cache.records if r.split == split])


@pytest.mark.parametrize("name", NAMES)
def test_three_steps_then_finite_target_scores_in_unit_interval(caches, name: str) -> None:
    learner = build(name)
    learner.fit(stream(caches, learner), budget=3)
    assert learner.step == 3
    scores, labels = [], []
    for images, meta in eval_batches(caches[TARGET], split_rows(caches[TARGET], "test"), input_spec=learner.input_spec):
        scores.append(learner.score(images))
        labels.extend(meta["label"])
    scores = torch.cat(scores)
    assert scores.shape == (len(labels),) and len(labels) > 0
    assert torch.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.parametrize("name", NAMES)
def test_a_run_killed_after_two_steps_resumes_to_the_uninterrupted_parameters(caches, name: str, tmp_path) -> None:
    """As the runner does: checkpoint file after step 2, a fresh process-like rebuild, the stream from step 2."""
    uninterrupted = build(name)
    uninterrupted.fit(stream(caches, uninterrupted), budget=3)

    killed = build(name)
    killed.budget = 3  # the run's budget (Reptile anneals over it); the run dies after two of its steps
    batches = stream(caches, killed)
    for _ in range(2):
        killed.update(next(batches))
        killed.step += 1
    torch.save({"learner": killed.state_dict()}, tmp_path / "checkpoint.pt")
    del killed
    resumed = build(name)
    torch.manual_seed(123)  # whatever the global RNG did meanwhile, the checkpoint restores it
    resumed.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["learner"])
    resumed.fit(stream(caches, resumed, start_step=resumed.step), budget=3)

    got, want = resumed.state_dict()["networks"], uninterrupted.state_dict()["networks"]
    for network in want:
        for key, value in want[network].items():
            torch.testing.assert_close(got[network][key], value, rtol=0, atol=0, msg=f"{network}.{key}")
