"""``NetworkLearner``: the scaffold every network learner shares (public API, ``fasbench.learners``).

Networks, input checks, the outer optimiser, scoring, checkpoints. ``rfmeta`` and every baseline
subclass it; so can a plugin (README "Writing a plugin"). Each learner is built from a backbone config
and the same heads (``build_heads``: depth estimator, then classifier), so with one seed every learner
starts from identical backbone and classifier weights and table rows differ by method only. The
default score is ``sigmoid(classifier(backbone(x).features))``. Seeding, RNG capture, the optimiser,
bf16 autocast, the non-finite-loss guard and functional forwards come from ``fasbench.training``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from fasbench.errors import FasbenchError
from fasbench.interfaces import DomainBatch, InputSpec, Learner
from fasbench.learners.heads import build_heads
from fasbench.learners.modules import build_backbone
from fasbench.options import require_choice, require_flag, require_number
from fasbench.training import (
    AMP_MODES,
    OPTIMIZERS,
    FiniteLossGuard,
    autocast,
    build_optimizer,
    capture_rng_state,
    restore_rng_state,
    seed_everything,
    seeded_generator,
    set_train_mode,
)

# Every network learner: the classifier's BatchNorm momentum, precision and layout (k, batch_per_class, is one of
# the core's CORE_HPARAMS: every learner has it).
COMMON_DEFAULTS: dict[str, Any] = {
    "classifier_bn_momentum": 0.1,  # PyTorch's default; RF-Meta's meta learner uses the reference's 1
    "amp": "none",
    "channels_last": False,
}
# Learners with an ordinary outer optimiser use RF-Meta's (Adam, lr 1e-3, betas 0.9/0.999, no decay).
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "betas": [0.9, 0.999],
    "momentum": 0.9,  # SGD only
    "weight_decay": 0.0,
}
OPTIMIZER_SEARCH_SPACE: dict[str, tuple] = {"lr": ("log_uniform", 1e-4, 1e-2)}


class BinaryNetwork(nn.Module):
    """Backbone + classifier head as one module: ``images -> logit`` (what MLDG differentiates through)."""

    def __init__(self, backbone: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images).features)


def pool(batches: Sequence[DomainBatch]) -> DomainBatch:
    """Several domains' batches as one batch (domain -1)."""
    if len(batches) == 1:
        return batches[0]
    return DomainBatch(
        torch.cat([b.images for b in batches]),
        torch.cat([b.depths for b in batches]),
        torch.cat([b.labels for b in batches]),
        domain=-1,
    )


def live_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(live) from a classifier's output: sigmoid of one logit (B), or softmax index 1 of two (B x 2)."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.ndim == 1 else torch.softmax(logits, dim=1)[:, 1]


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of one-logit outputs against float labels (1 = live), computed in fp32."""
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())


class NetworkLearner(Learner):
    """A learner on the RF-Meta networks. Subclasses set ``name``, ``DEFAULTS``, ``uses_depth`` and ``update``.

    Hooks: ``check_hparams`` (validate their own hyper-parameters), ``build_extra`` (more networks before
    the optimiser is made), ``trainable`` (what the outer optimiser updates), ``build_optimizers``.
    """

    uses_depth: ClassVar[bool] = False
    BACKBONE: ClassVar[Mapping[str, Any]] = {"type": "rfmeta_cnn"}  # RF-Meta's feature extractor
    CLASSIFIER_OUTPUTS: ClassVar[int] = 1  # 1: one logit, P(live) = sigmoid; 2: two logits, P(live) = softmax[1]

    def __init__(
        self,
        *,
        backbone: Mapping[str, Any],
        num_domains: int,
        hparams: Mapping[str, Any] | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        plugins: Any = None,
    ) -> None:
        super().__init__(
            backbone=backbone, num_domains=num_domains, hparams=hparams, device=device, seed=seed, plugins=plugins
        )
        self.device = torch.device(device)
        self._check_common_hparams()
        self.check_hparams()
        seed_everything(seed)
        self.build_networks()
        memory_format = torch.channels_last if self.hparams["channels_last"] else torch.preserve_format
        for module in self.networks().values():
            module.to(device=self.device, memory_format=memory_format)
        self._optimizers = self.build_optimizers()
        self.generator = seeded_generator(seed)
        self._finite_guard = FiniteLossGuard()

    # -- hooks -------------------------------------------------------------------------------------
    def build_networks(self) -> None:
        """Build every network (before they move to the device and the optimisers are made). The default is
        the RF-Meta family's: ``backbone`` from the run's config, ``build_heads``, ``binary_network``, then
        ``build_extra``; a learner with other networks overrides this, ``networks`` and ``score``."""
        self.backbone = build_backbone(self.backbone_config, self.plugins)
        depth_head, self.classifier = build_heads(
            self.backbone,
            classifier_bn_momentum=float(self.hparams["classifier_bn_momentum"]),
            outputs=self.CLASSIFIER_OUTPUTS,
        )
        self.depth_head = depth_head if self.uses_depth else None
        self.binary_network = BinaryNetwork(self.backbone, self.classifier)
        self.build_extra()

    def check_hparams(self) -> None:
        """Validate the learner's own hyper-parameters (raise FasbenchError naming the bad one)."""

    def build_extra(self) -> None:
        """Build networks beyond backbone, classifier and depth head (they must appear in ``networks``)."""

    def networks(self) -> dict[str, nn.Module]:
        """Every network of the learner by name: what is moved to the device and checkpointed."""
        found: dict[str, nn.Module] = {"backbone": self.backbone, "classifier": self.classifier}
        if self.depth_head is not None:
            found["depth_head"] = self.depth_head
        return found

    def trainable(self) -> list[nn.Parameter]:
        """The parameters the outer optimiser updates: every network's by default."""
        return [p for module in self.networks().values() for p in module.parameters()]

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name; the default is RF-Meta's outer optimiser over ``trainable()``."""
        return {"outer": self.outer_optimizer(self.trainable())}

    # -- shared pieces ----------------------------------------------------------------------------
    def outer_optimizer(self, parameters: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
        """RF-Meta's outer optimiser as the hyper-parameters configure it (``optimizer``, ``lr``, ...)."""
        hp = self.hparams
        return build_optimizer(
            parameters,
            name=hp["optimizer"],
            lr=hp["lr"],
            betas=hp["betas"],
            momentum=hp["momentum"],
            weight_decay=hp["weight_decay"],
        )

    def _check_common_hparams(self) -> None:
        hp = self.hparams
        if "classifier_bn_momentum" in hp:
            require_number("hparams.classifier_bn_momentum", hp["classifier_bn_momentum"])
        require_choice("hparams.amp", hp["amp"], AMP_MODES)
        require_flag("hparams.channels_last", hp["channels_last"])
        if "optimizer" in self.DEFAULTS:
            require_choice("hparams.optimizer", hp["optimizer"], OPTIMIZERS)
            for name in ("lr", "momentum", "weight_decay"):
                require_number(f"hparams.{name}", hp[name])

    @property
    def input_spec(self) -> InputSpec:
        return self.backbone.input_spec

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return list(self._optimizers.values())

    def named_tensors(self) -> dict[str, torch.Tensor]:
        """Every network's parameters and buffers (what scoring reads), as ``network.name``."""
        return {
            f"{network}.{name}": tensor
            for network, module in self.networks().items()
            for name, tensor in (*module.named_parameters(), *module.named_buffers())
        }

    def autocast(self) -> Any:
        return autocast(self.device, self.hparams["amp"])

    def train_mode(self) -> None:
        set_train_mode(self.networks().values(), True)

    def observe(self, losses: Mapping[str, torch.Tensor]) -> None:
        """Record the step's losses; a non-finite one raises TrainingError (at once on the CPU, else at
        the runner's next ``check_finite``: no host-device sync inside the step)."""
        self._finite_guard.observe(losses, self.step + 1)

    def check_finite(self) -> None:
        self._finite_guard.raise_if_bad()

    def set_learning_rate(self, lr: float, optimizer: str = "outer") -> None:
        """Every param group of the named optimiser at ``lr``. A schedule computed from ``self.step`` at every
        update needs no scheduler state: a resumed run continues bit-exactly."""
        for group in self._optimizers[optimizer].param_groups:
            group["lr"] = lr

    def domain_indices(self, batches: Sequence[DomainBatch]) -> torch.Tensor:
        """The source-domain index of every frame of ``pool(batches)`` (long, on the learner's device), for
        learners with per-domain heads or domain losses; a batch whose ``domain`` is not in [0, num_domains)
        is refused."""
        for batch in batches:
            if not 0 <= batch.domain < self.num_domains:
                raise FasbenchError(
                    f"{self.name} has {self.num_domains} source domains but got a batch of domain {batch.domain}"
                )
        index = torch.cat([torch.full((len(batch.labels),), batch.domain, dtype=torch.long) for batch in batches])
        return index.to(self.device, non_blocking=True)

    def outer_step(self, loss: torch.Tensor, optimizer: str = "outer") -> None:
        """One step of the named optimiser on ``loss``."""
        chosen = self._optimizers[optimizer]
        chosen.zero_grad(set_to_none=True)
        loss.backward()
        chosen.step()

    def checked(self, domain_batches: Sequence[DomainBatch]) -> list[DomainBatch]:
        """The batches on the learner's device, after checking their number and shapes."""
        if len(domain_batches) != self.num_domains:
            raise FasbenchError(
                f"{self.name} was built for {self.num_domains} source domains but update() got "
                f"{len(domain_batches)} batches"
            )
        return [self._checked(batch) for batch in domain_batches]

    def _checked(self, batch: DomainBatch) -> DomainBatch:
        spec = self.input_spec
        want = (spec.channels, spec.size, spec.size)
        if tuple(batch.images.shape[1:]) != want:
            raise FasbenchError(
                f"domain {batch.domain}: images are {tuple(batch.images.shape)}, the backbone wants B x "
                f"{' x '.join(map(str, want))} ({spec.color} at {spec.size} px)"
            )
        if tuple(batch.depths.shape[1:]) != (1, spec.depth_size, spec.depth_size):
            raise FasbenchError(
                f"domain {batch.domain}: depth maps are {tuple(batch.depths.shape)}, the backbone wants B x 1 x "
                f"{spec.depth_size} x {spec.depth_size}"
            )
        if tuple(batch.labels.shape) != tuple(batch.images.shape[:1]):
            raise FasbenchError(
                f"domain {batch.domain}: {len(batch.images)} images but labels of shape {tuple(batch.labels.shape)}"
            )
        depths, labels = (_floating(t).to(self.device, non_blocking=True) for t in (batch.depths, batch.labels))
        return DomainBatch(self._images(batch.images), depths, labels, batch.domain)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.hparams["channels_last"]:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    # -- scoring and checkpoints -------------------------------------------------------------------
    def score(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.live_score(images)

    def live_score(self, images: torch.Tensor) -> torch.Tensor:
        """P(live) per frame in evaluation mode, differentiable with respect to ``images`` (``score`` is this
        without gradients; ``fasbench attack`` differentiates it). A learner overrides this, not ``score``."""
        set_train_mode(self.networks().values(), False)
        with self.autocast():
            logits = self.binary_network(self._images(images))
        return live_probability(logits)

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {name: module.state_dict() for name, module in self.networks().items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self._optimizers.items()},
            "rng": capture_rng_state({"learner": self.generator}),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted({"networks", "optimizers", "rng", "step"} - set(state))
        if missing:
            raise FasbenchError(f"not a {self.name} checkpoint: it lacks {', '.join(missing)}")
        for kind, ours in (("networks", self.networks()), ("optimizers", self._optimizers)):
            if set(state[kind]) != set(ours):
                raise FasbenchError(
                    f"not a {self.name} checkpoint: its {kind} are {sorted(state[kind])}, expected {sorted(ours)}"
                )
            for name, value in ours.items():
                value.load_state_dict(state[kind][name])
        restore_rng_state(state["rng"], {"learner": self.generator})
        self.step = int(state["step"])


def _floating(values: torch.Tensor) -> torch.Tensor:
    """Targets as floats (float32 unless already floating: tests run steps in float64)."""
    return values if values.is_floating_point() else values.float()
