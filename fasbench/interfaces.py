"""The four pluggable interfaces: Dataset, Backbone, Learner, Metric, and the records they exchange.

Conventions everywhere: label 1 = live (bona fide), 0 = spoof; a score is P(live) in [0, 1];
images are RGB; depth maps are in [0, 1] with all-zero maps for spoofs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from fasbench.errors import FasbenchError

LIVE, SPOOF = 1, 0
SPLITS = ("train", "dev", "test")


# -- data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoRecord:
    """One video of a domain, as a dataset plugin lists it (before any decoding)."""

    video_id: str  # unique within the domain and stable across machines (e.g. relative path, no suffix)
    label: int  # LIVE or SPOOF
    attack_type: str  # "live", or the attack's kind: "print", "replay", or a finer one ("print_glossy")
    subject: str
    split: str  # one of SPLITS (the dataset's official split)
    path: str | None = None  # source file; None for generated data
    meta: Mapping[str, str] = field(default_factory=dict)  # session, device, scene... where the dataset has them

    def __post_init__(self) -> None:
        if self.label not in (LIVE, SPOOF):
            raise FasbenchError(f"video {self.video_id!r}: label must be 1 (live) or 0 (spoof), got {self.label!r}")
        if self.split not in SPLITS:
            raise FasbenchError(f"video {self.video_id!r}: split must be one of {SPLITS}, got {self.split!r}")
        if (self.label == LIVE) != (self.attack_type == "live"):
            raise FasbenchError(f"video {self.video_id!r}: attack_type 'live' must go with label 1 and only with it")


@dataclass(frozen=True)
class Frame:
    """One prepared frame of a video: a face crop and its pseudo-depth map."""

    index: int  # frame index in the source video
    image: np.ndarray  # uint8, H x W x 3, RGB face crop
    depth: np.ndarray  # uint8, h x w; 255 = nearest; all zero for spoofs


class Dataset(ABC):
    """One domain (OULU-NPU, CASIA-FASD, ..., or a synthetic one).

    A plugin lists its videos and turns one video into frames; the core owns the frame cache
    (writing, validating, reading) so that a plugin stays small. ``cache_options`` names every
    option that changes the frames: a change of any of them invalidates the cache.
    """

    name: ClassVar[str] = ""

    def __init__(self, root: str | None = None, **options: Any) -> None:
        self.root = root
        self.options = dict(options)

    @abstractmethod
    def records(self) -> list[VideoRecord]:
        """Every video of the domain with its label, attack type, subject and official split."""

    @abstractmethod
    def frames(self, record: VideoRecord) -> Iterator[Frame]:
        """Decode, sample, crop and depth-label the frames of one video."""

    def cache_options(self) -> dict[str, Any]:
        """Everything that determines the prepared content, recorded in the cache manifest."""
        return dict(self.options)

    @classmethod
    def option_names(cls) -> tuple[str, ...] | None:
        """The options this dataset takes (a run config's domain options are checked against them); None when
        it does not say."""
        return None

    def splits(self) -> tuple[str, ...]:
        """The official splits this domain has, from its records (in SPLITS order): its split contract."""
        present = {record.split for record in self.records()}
        return tuple(split for split in SPLITS if split in present)

    def canonical_list(self) -> Any:
        """The path of the official distribution's full video list (see ``fasbench.data.canonical``), or
        None when the dataset has none (generated data, a subset protocol)."""
        return None


# -- networks --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """What a network eats: square input size, colour encoding, depth-map size."""

    size: int = 256
    color: str = "rgb_hsv"  # "rgb" (3 channels) or "rgb_hsv" (6 channels, as the RF-Meta reference feeds)
    depth_size: int = 32

    @property
    def channels(self) -> int:
        return {"rgb": 3, "rgb_hsv": 6}[self.color]


class BackboneOutput(NamedTuple):
    """A backbone's two outputs: features for a classifier head and multi-scale features for a depth head."""

    features: Any  # torch.Tensor, B x C x h x w
    depth_features: Any  # torch.Tensor, B x D x depth_size x depth_size


class Backbone(ABC):
    """A network body; ``fasbench.learners.BackboneModule`` is this contract as a ``torch.nn.Module``.

    Declares ``input_spec`` (what the data pipeline delivers to it), ``feature_channels`` (C of
    ``features``), ``depth_channels`` (D of ``depth_features``) so learners size their heads without a
    dummy forward, and ``width``, the channel multiplier learners apply to their heads too (1.0 for a
    backbone without one). Built from a config ``{"type": name, **options}`` through the plugin registry.
    """

    input_spec: InputSpec
    feature_channels: int
    depth_channels: int
    width: float = 1.0

    @abstractmethod
    def forward(self, images: Any) -> BackboneOutput:
        """``images``: float B x channels x size x size in [0, 1]."""


@dataclass
class DomainBatch:
    """One source domain's share of a training step (k live + k spoof frames)."""

    images: Any  # torch.Tensor, float B x C x H x W
    depths: Any  # torch.Tensor, float B x 1 x h x w in [0, 1]
    labels: Any  # torch.Tensor, float B, 1 = live
    domain: int  # index of the source domain within the protocol

    def to(self, device: Any, non_blocking: bool = True) -> DomainBatch:
        return DomainBatch(
            self.images.to(device, non_blocking=non_blocking),
            self.depths.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            self.domain,
        )


# -- training --------------------------------------------------------------------------------------
def flatten_tensors(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every tensor in nested mappings and sequences (a ``state_dict``), by dotted path."""
    if hasattr(value, "is_floating_point"):
        return {prefix: value}
    found: dict[str, Any] = {}
    items = (
        value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    )
    for key, item in items:
        found.update(flatten_tensors(item, f"{prefix}.{key}" if prefix else str(key)))
    return found


Callback = Callable[[int, Mapping[str, Any]], None]


# Hyper-parameters every learner has, whatever its DEFAULTS say: the runner builds the data stream from them.
CORE_HPARAMS: Mapping[str, Any] = {"batch_per_class": 10}  # k live + k spoof frames per source domain and step


def resolve_hparams(name: str, defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults updated by overrides; an override the learner does not know is refused."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise FasbenchError(
            f"learner {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(defaults))}"
        )
    return {**defaults, **overrides}


class Learner(ABC):
    """A training method, DomainBed-style: ``update`` is one step on one batch per source domain.

    **Construction** (what the runner calls, through the plugin registry, with keyword arguments only)::

        Learner(backbone={"type": "rfmeta_cnn", ...}, num_domains=3, hparams={...}, device="cpu", seed=0,
                plugins=registry)

    ``backbone`` is a backbone config the learner builds with ``plugins`` (``fasbench.learners.build_backbone``);
    ``num_domains`` the number of source domains (2 or 3 for the built-in protocols: a learner must work
    for any number from ``min_domains`` up); ``seed`` seeds all of the learner's randomness, so two builds
    with the same arguments are identical. ``hparams`` override ``DEFAULTS`` and ``CORE_HPARAMS``.

    **The data stream** it receives is declared by ``batch_per_class`` (an int: k live then k spoof frames
    per source domain and step, in ``input_spec``) and ``input_spec``.

    **Scoring** (``score``) runs in evaluation mode and must not change any state: a frame's score depends
    on that frame only (not on the rest of the batch), and scoring never updates a BatchNorm statistic.

    ``DEFAULTS`` holds the paper's hyper-parameters (registry.yaml may override them); ``SEARCH_SPACE``
    maps a hyper-parameter to ``(distribution, low, high)`` for random search. The learner owns its
    networks, optimisers and step counter; ``state_dict`` holds all of it, RNG included, as tensors and
    plain containers, so a restored learner continues exactly as an uninterrupted one would.
    ``fasbench.testing.check_learner(name)`` checks all of this the way the runner builds.
    """

    name: ClassVar[str] = ""
    DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    SEARCH_SPACE: ClassVar[Mapping[str, tuple]] = {}
    BACKBONE: ClassVar[Mapping[str, Any]] = {}  # the method's backbone config (its options at their defaults)
    PAPER_WEIGHTS: ClassVar[str | None] = None  # the starting weights of the paper's backbone (None: from scratch)
    min_domains: ClassVar[int] = 1

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any] | None = None,
        num_domains: int = 1,
        hparams: Mapping[str, Any] | None = None,
        device: Any = "cpu",
        seed: int = 0,
        plugins: Any = None,
    ) -> None:
        self.hparams = resolve_hparams(self.name or type(self).__name__, self.all_defaults(), hparams)
        if isinstance(num_domains, bool) or not isinstance(num_domains, int) or num_domains < self.min_domains:
            raise FasbenchError(
                f"learner {self.name!r} needs at least {self.min_domains} source domain(s), got {num_domains!r}"
            )
        k = self.hparams["batch_per_class"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise FasbenchError(f"hparams.batch_per_class must be an integer >= 1, got {k!r}")
        self.batch_per_class: int = k
        self.num_domains = num_domains
        self.backbone_config = dict(backbone or {})
        self.device = device
        self.seed = seed
        self.plugins = plugins
        self.step = 0
        # The run's total steps, set by the runner (and ``fit``) before training, for schedules such as
        # Reptile's annealed outer step; None while unknown. Not part of the state: it comes with the run.
        self.budget: int | None = None

    @classmethod
    def all_defaults(cls) -> dict[str, Any]:
        """``CORE_HPARAMS`` updated by the learner's ``DEFAULTS``: every hyper-parameter it takes."""
        return {**CORE_HPARAMS, **cls.DEFAULTS}

    @property
    @abstractmethod
    def input_spec(self) -> InputSpec:
        """The input the data pipeline must deliver (size, colour encoding, depth size)."""

    @abstractmethod
    def update(self, domain_batches: Sequence[DomainBatch]) -> dict[str, Any]:
        """One training step; returns scalar logs (0-dim tensors allowed: no device sync is forced)."""

    @abstractmethod
    def score(self, images: Any) -> Any:
        """P(live) per frame: a float tensor of shape B in [0, 1]. Runs in evaluation mode, no grad."""

    def live_score(self, images: Any) -> Any:
        """``score`` with gradients: P(live) per frame in evaluation mode, differentiable with respect to
        ``images`` (the adversarial stress test, ``fasbench attack``, needs it; optional otherwise)."""
        raise FasbenchError(
            f"learner {type(self).__name__} has no differentiable live_score(images): `fasbench attack` needs one "
            "(fasbench.learners.NetworkLearner provides it; override it where score is computed differently)"
        )

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, optimisers, RNG state, step."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def check_finite(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Raise TrainingError if a loss since the start was not finite. The runner calls it at each
        logging step; learners that defer that check off the device (no sync per step) implement it."""

    def named_tensors(self) -> dict[str, Any]:
        """The tensors whose values determine the scores (parameters, BatchNorm statistics...), by name.

        The runner checks them for NaN and infinity at every logging step and before every checkpoint, so
        a diverged run stops (and is never recorded) even when its loss still looks finite. The default
        walks ``state_dict()``; a learner may return less (e.g. its networks only).
        """
        return flatten_tensors(self.state_dict())

    def optimizers(self) -> list[Any]:
        """The torch optimisers of the outer update. Under data parallelism the runner averages their
        parameters' gradients across ranks before each ``step``; a learner returning none cannot run
        data-parallel."""
        return []

    def fit(self, batches: Iterator[Sequence[DomainBatch]], budget: int, callbacks: Sequence[Callback] = ()) -> None:
        """Run ``update`` until ``self.step == budget``, calling each callback with (step, logs) after a step."""
        self.budget = budget
        while self.step < budget:
            logs = self.update(next(batches))
            self.step += 1
            for callback in callbacks:
                callback(self.step, logs)
        self.check_finite()


# -- evaluation ------------------------------------------------------------------------------------
class Metric(ABC):
    """A number computed from scores (P(live)) and labels (1 = live); pure numpy, no torch."""

    name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    @abstractmethod
    def compute(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        *,
        threshold: float | None = None,
        attack_types: np.ndarray | None = None,
    ) -> float:
        """The metric's value; a score >= threshold is accepted as live."""


# -- model selection -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evaluation:
    """One periodic evaluation of a run, as ``evals.jsonl`` records it."""

    step: int
    target: Mapping[str, float]  # AUC, EER, HTER (video level, threshold at the target's own EER)
    source_val: Mapping[str, float] | None  # AUC, EER of the source validation videos; None without validation
    metrics: Mapping[str, Mapping[str, Any]]  # "policy/level" -> {"metrics": {...}, "threshold": t}


class SelectionRule(ABC):
    """Chooses which evaluations of a run its numbers come from (a plugin kind, ``selections``).

    ``uses_target``: the rule looks at the target domain (an oracle): tables mark it, because it is not a
    domain-generalization result. ``needs_validation``: it reads source validation, which a convention
    without validation (``all_sources``) does not have.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    uses_target: ClassVar[bool] = False
    needs_validation: ClassVar[bool] = False

    @abstractmethod
    def select(self, evaluations: Sequence[Evaluation]) -> list[int]:
        """Positions (in ``evaluations``, ordered by step) of the evaluations whose metrics are reported."""
