"""The plugin contracts over every registered name (as timm tests every model), the README's plugin skeleton
as written, and deliberately broken learners that each contract check must catch."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch
from fasbench_plugins.baselines import BinaryCNN
from fixtures_real import build_casia, build_msu, build_oulu, build_replay
from tiny import tiny_benchmark

from fasbench import hookimpl
from fasbench.cli import main
from fasbench.learners import bce, pool
from fasbench.plugins import PluginInfo, discover_plugins, forget_plugins, installed_plugins
from fasbench.testing import check_backbone, check_dataset, check_learner, check_metric

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parent.parent
PLUGINS = installed_plugins()
SMALL_FRAMES = {"crop_size": 24, "depth_size": 8, "frames_per_video": 2}


@pytest.mark.parametrize("name", PLUGINS.names("learners"))
def test_every_learner_meets_the_contract(name):
    check_learner(name)


def _real_tree(name: str, root: Path) -> dict:
    builders = {
        "oulu": lambda: build_oulu(root, ["Train_files/1_1_01_1", "Train_files/1_1_01_2"]),
        "casia": lambda: build_casia(root, ["train_release/1/1", "train_release/1/3"]),
        "replay": lambda: build_replay(
            root,
            [
                "train/real/client001_session01_webcam_authenticate_adverse_1",
                "train/attack/hand/attack_print_client001_session01_highdef_photo_adverse",
            ],
        ),
        "msu": lambda: build_msu(
            root,
            [
                "scene01/real/real_client002_laptop_SD_scene01.mov",
                "scene01/attack/attack_client002_laptop_SD_printed_photo_scene01.mov",
            ],
            ["02"],
            ["01"],
        ),
    }
    builders[name]()
    return {"root": str(root), **SMALL_FRAMES, **({"face": "center"} if name == "casia" else {})}


@pytest.mark.parametrize("name", PLUGINS.names("datasets"))
def test_every_dataset_meets_the_contract(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "no-config.yaml"))
    if name == "synthetic":
        options = {"subjects": 3, "videos_per_type": 1, "frames_per_video": 2, "crop_size": 32}
    else:
        options = _real_tree(name, tmp_path / name)  # a KeyError here: a new dataset needs a tiny tree above
    check_dataset(name, options)


BACKBONES = {
    "rfmeta_cnn": {"width": 0.125, "input_size": 32},
    "anrl_cnn": {"width": 0.125, "input_size": 32},
    "timm:": {"input_size": 32},
}
FAMILY_VARIANTS = {"timm:": ["resnet18", "mobilenetv3_small_050"]}


def _backbones():
    for name in PLUGINS.names("backbones"):
        for variant in FAMILY_VARIANTS.get(name, [""]) if name.endswith(":") else [""]:
            yield f"{name}{variant}", BACKBONES[name]


@pytest.mark.parametrize("name, options", list(_backbones()))
def test_every_backbone_meets_the_contract(name, options):
    check_backbone(name, options)


def _metrics():
    for entry in PLUGINS.entries("metrics"):
        if entry.is_family:
            yield from (entry.name + variant for variant in entry.obj.DEFAULT_VARIANTS)
        else:
            yield entry.name


@pytest.mark.parametrize("name", list(_metrics()))
def test_every_metric_meets_the_contract(name):
    check_metric(name)


# -- the README's plugin, as written --------------------------------------------------------------------
def _readme_plugin() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Writing a plugin") :]
    (code,) = re.findall(r"```python\n(# my_fas/plugin\.py\n.*?)```", section, flags=re.S)
    return code


@pytest.fixture()
def readme_package(tmp_path, monkeypatch):
    """The README's plugin in a new package, installed as a distribution with its entry point."""
    package = tmp_path / "site" / "my_fas"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(_readme_plugin())
    info = tmp_path / "site" / "my_fas-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my_fas\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fasbench.plugins]\nmy_fas = my_fas.plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    forget_plugins()
    yield tmp_path
    sys.modules.pop("my_fas.plugin", None)
    sys.modules.pop("my_fas", None)


def test_the_readme_plugin_passes_the_checks_and_runs_as_written(readme_package, capsys):
    plugins = discover_plugins()
    assert "smoothed_erm" in plugins.names("learners") and not plugins.broken
    check_learner("smoothed_erm", plugins=plugins)
    benchmark = tiny_benchmark(readme_package)
    argv = ["--benchmark", str(benchmark), "run", "smoothed_erm", "--protocol", "ICM_O", "--suite", "synthetic"]
    argv += ["--preset", "tiny", "--seeds", "0", "--out", str(readme_package / "runs")]
    argv += [
        "--cache-dir",
        str(readme_package / "cache"),
        "--no-progress",
        "--cfg-options",
        "hparams.batch_per_class=2",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert list((readme_package / "runs" / "smoothed_erm").rglob("done"))


# -- broken learners: each must fail its check with a message that says what is wrong -----------------------
class ScoresInTrainMode(BinaryCNN):
    """Scores with BatchNorm in training mode: the target's frames update the running statistics."""

    name = "scores_in_train_mode"

    @torch.no_grad()
    def score(self, images):
        self.train_mode()
        return torch.sigmoid(self.binary_network(self._images(images)).float())


class BatchDependentScores(BinaryCNN):
    """Scores relative to the batch: each frame's score depends on the others."""

    name = "batch_dependent_scores"

    @torch.no_grad()
    def score(self, images):
        logits = super().score(images).logit()
        return torch.sigmoid(logits - logits.mean())


class ThreeDomainsOnly(BinaryCNN):
    """Hard-coded for three source domains."""

    name = "three_domains_only"

    def update(self, domain_batches):
        first, second, third = domain_batches  # fails on a two-source protocol
        return super().update([first, second, third])


class IgnoresSeed(BinaryCNN):
    """Always builds with seed 0: every seed of a table would be the same run."""

    name = "ignores_seed"

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, "seed": 0})


class StaysInEvalMode(BinaryCNN):
    """Its step never puts the networks back in training mode after score() left them in evaluation mode."""

    name = "stays_in_eval_mode"

    def update(self, domain_batches):
        batch = pool(self.checked(domain_batches))
        loss = bce(self.binary_network(batch.images), batch.labels)
        self.outer_step(loss)
        return {"loss": loss.detach()}


class DetachedLiveScore(BinaryCNN):
    """Its differentiable score is cut from the graph: the adversarial stress test would see no gradient."""

    name = "detached_live_score"

    def live_score(self, images):
        return super().live_score(images).detach()


class ScoreBesideLiveScore(BinaryCNN):
    """Overrides score() alone, so live_score() (what `fasbench attack` differentiates) scores otherwise."""

    name = "score_beside_live_score"

    @torch.no_grad()
    def score(self, images):
        return super().score(images.flip(-1))


class ReadsItsLoss(BinaryCNN):
    """Logs its loss as a Python float: a host read of the device at every step."""

    name = "reads_its_loss"

    def update(self, domain_batches):
        logs = super().update(domain_batches)
        return {"loss": float(logs["loss"])}


class ReadsLate(BinaryCNN):
    """Reads its loss only in a phase that starts late in a run (as a warm-up-then-align method might)."""

    name = "reads_late"

    def update(self, domain_batches):
        logs = super().update(domain_batches)
        if self.step >= 1000 and self.step % 50 == 0:
            logs["late"] = torch.tensor(bool(logs["loss"] > 0), dtype=torch.float32)
        return logs


class MasksOnTheHost(BinaryCNN):
    """Picks the live frames with a boolean mask: its size is a host read of the labels (nonzero)."""

    name = "masks_on_the_host"

    def update(self, domain_batches):
        batch = pool(self.checked(domain_batches))
        self.train_mode()
        live = self.binary_network(batch.images[batch.labels > 0.5])
        loss = bce(self.binary_network(batch.images), batch.labels) + live.float().mean() * 0
        self.outer_step(loss)
        return {"loss": loss.detach()}


def _with(learner_class):
    module = types.ModuleType("broken")

    @hookimpl
    def fasbench_register(registry):
        registry.add("learners", learner_class.name, learner_class)

    module.fasbench_register = fasbench_register
    return discover_plugins(extra=[(module, PluginInfo("broken", "tests"))])


@pytest.mark.parametrize(
    "learner_class, message",
    [
        (ScoresInTrainMode, "score() changed 'networks.backbone.* scoring must run in evaluation mode"),
        (IgnoresSeed, "the builds with seed 0 and seed 1 are identical: the learner ignores `seed`"),
        (StaysInEvalMode, "a step after score() differs from one without it"),
        (BatchDependentScores, "a frame's score depends on the rest of the batch"),
        (ThreeDomainsOnly, "with 2 source domains .*update() failed at step 0: ValueError: not enough values"),
        (DetachedLiveScore, "live_score() must be differentiable with respect to the images"),
        (ScoreBesideLiveScore, "live_score() must equal score() (with grad)"),
        (
            ReadsItsLoss,
            "update() reads device tensors on the host.*tests/test_contracts.py:\\d+ in update: "
            "aten::_local_scalar_dense: .item(), float(), int() or bool() of a tensor (at step 1)",
        ),
        (MasksOnTheHost, "update() reads device tensors on the host.*in update: aten::index with a boolean mask"),
        (
            ReadsLate,
            "update() reads device tensors on the host.*in update: aten::_local_scalar_dense.* (at step 100000)",
        ),
    ],
)
def test_broken_learners_fail_their_check_with_what_is_wrong(learner_class, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_learner(learner_class.name, plugins=_with(learner_class))


class Unseeded(BinaryCNN):
    """Draws its initial weights from an unseeded generator."""

    name = "unseeded"

    def build_extra(self):
        unseeded = torch.Generator()
        unseeded.seed()  # a non-deterministic seed, as an author who forgot the `seed` argument would get
        with torch.no_grad():
            self.classifier.fc.weight.add_(torch.randn(self.classifier.fc.weight.shape, generator=unseeded))


def test_an_unseeded_learner_is_told_to_seed_its_constructor():
    with pytest.raises(AssertionError, match="two builds with seed 0 differ in 'classifier.fc.weight'"):
        check_learner("unseeded", plugins=_with(Unseeded))
