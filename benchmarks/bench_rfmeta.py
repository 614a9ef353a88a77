"""RF-Meta training-step speed: fasbench's learner against an eager re-implementation of the reference loop.

Same networks, same shapes (3 source domains x (k live + k spoof) frames), same optimiser. The
reference loop is written the way rshaojimmy/AAAI2020-RFMetaFAS core/train.py runs it: fp32, NCHW,
per-domain forwards, a hand-written functional meta learner on a cloned state dict, Adam, and six
``.item()`` reads per step for its logs. The variants are timed interleaved (``benchmarks/timing.py``).
Prints per variant: median ms per step with quartiles, images/s through the whole training step
(forwards, second-order backward, optimiser), peak memory of the variant alone (CUDA allocator peak, or
a child process's peak RSS on the CPU), speed-up over the reference loop, and the bf16 loss change
against fp32 on the same state and batch.

    python benchmarks/bench_rfmeta.py                       # CUDA: full size (256 px, width 1); CPU: 64 px, width 0.25
    python benchmarks/bench_rfmeta.py --compile             # add the torch.compile variant (default on CUDA)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from fasbench_plugins.rfmeta import RFMeta
from timing import interleaved

from fasbench.console import out
from fasbench.interfaces import DomainBatch
from fasbench.learners import build_backbone, build_heads


# -- the reference loop, eager ----------------------------------------------------------------------
class ReferenceLoop:
    """core/train.py's step: shuffled domains, per-domain inner steps on a cloned state dict, one Adam step."""

    def __init__(self, backbone_config: dict, device: torch.device) -> None:
        torch.manual_seed(0)
        self.extractor = build_backbone(backbone_config).to(device)
        self.depth_head, self.embedder = build_heads(self.extractor, classifier_bn_momentum=1.0)
        self.depth_head.to(device), self.embedder.to(device)
        self.optimizer = torch.optim.Adam(
            [p for m in (self.extractor, self.depth_head, self.embedder) for p in m.parameters()],
            lr=1e-3,
            betas=(0.9, 0.999),
        )

    def _embedder_forward(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """The reference's ``FeatEmbedder.forward(x, params)``: F.conv2d / F.batch_norm(training=True) / F.linear."""
        for conv, norm, pool in (("features.0", "features.1", True), ("features.4", "features.5", True)) + (
            ("features.8", "features.9", False),
        ):
            x = F.conv2d(x, params[f"{conv}.weight"], params[f"{conv}.bias"], padding=1)
            x = F.batch_norm(
                x,
                params[f"{norm}.running_mean"],
                params[f"{norm}.running_var"],
                params[f"{norm}.weight"],
                params[f"{norm}.bias"],
                momentum=1.0,
                training=True,
            )
            x = F.relu(x, inplace=True)
            x = F.max_pool2d(x, 2, ceil_mode=True) if pool else x
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return F.linear(x, params["fc.weight"], params["fc.bias"])

    def update(self, batches: list[DomainBatch]) -> dict[str, float]:
        for module in (self.extractor, self.depth_head, self.embedder):
            module.train()
        order = list(range(len(batches)))
        random.shuffle(order)
        meta_train, meta_test = order[:-1], order[-1]
        cls_train, dep_train, adapted = 0.0, 0.0, []
        for index in meta_train:
            batch = batches[index]
            shuffle = list(range(len(batch.labels)))
            random.shuffle(shuffle)
            images, labels, depths = batch.images[shuffle], batch.labels[shuffle], batch.depths[shuffle]
            features = self.extractor(images)
            logits = self.embedder(features.features)
            cls = F.binary_cross_entropy_with_logits(logits, labels)
            dep_train = dep_train + F.mse_loss(self.depth_head(features.depth_features), depths)
            cls_train = cls_train + cls
            grads = torch.autograd.grad(cls, list(self.embedder.parameters()), create_graph=True)
            fast = OrderedDict((key, value.clone()) for key, value in self.embedder.state_dict().items())
            for (name, param), grad in zip(self.embedder.named_parameters(), grads, strict=True):
                fast[name] = param - 1e-3 * grad
            adapted.append(fast)
        batch = batches[meta_test]
        shuffle = list(range(len(batch.labels)))
        random.shuffle(shuffle)
        images, labels, depths = batch.images[shuffle], batch.labels[shuffle], batch.depths[shuffle]
        features = self.extractor(images)
        dep_test = F.mse_loss(self.depth_head(features.depth_features), depths)
        cls_test = sum(
            F.binary_cross_entropy_with_logits(self._embedder_forward(features.features, p).squeeze(1), labels)
            for p in adapted
        )
        meta_train_loss = cls_train + 10 * dep_train
        meta_test_loss = cls_test + 10 * dep_test
        loss = meta_train_loss + 1 * meta_test_loss
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        logs = (meta_train_loss, meta_test_loss, cls_train, cls_test, dep_train / len(meta_train), dep_test)
        return {f"log{i}": value.item() for i, value in enumerate(logs)}  # the reference's per-step .item()s


# -- measuring ------------------------------------------------------------------------------------
def make_batches(spec, per_class: int, device: torch.device, seed: int) -> list[DomainBatch]:  # noqa: ANN001
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for domain in range(3):
        images = torch.rand(2 * per_class, spec.channels, spec.size, spec.size, generator=generator)
        depths = torch.rand(2 * per_class, 1, spec.depth_size, spec.depth_size, generator=generator)
        depths[per_class:] = 0
        labels = torch.cat([torch.ones(per_class), torch.zeros(per_class)])
        batches.append(DomainBatch(images, depths, labels, domain).to(device))
    return batches


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_variant(hparams: dict | None, backbone: dict, device: torch.device) -> tuple[Callable[[list], object], Any]:
    """The step of the reference loop (``hparams`` None) or of fasbench's learner; the step counter advances."""
    if hparams is None:
        reference = ReferenceLoop(backbone, device)
        return reference.update, reference
    learner = RFMeta(backbone=backbone, num_domains=3, hparams=hparams, device=device, seed=0)

    def step(batches: list) -> None:
        learner.update(batches)
        learner.step += 1

    return step, learner


def peak_memory_mib(hparams: dict | None, backbone: dict, per_class: int, device: torch.device, steps: int) -> float:
    """Peak memory of one variant alone: CUDA's allocator peak, or on the CPU the peak RSS of a child process."""
    if device.type == "cuda":
        step, _ = build_variant(hparams, backbone, device)
        batches = make_batches(RFMeta(backbone=backbone, num_domains=3).input_spec, per_class, device, seed=0)
        step(batches)  # allocations of the first step (cuDNN workspaces, optimiser state) included
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(steps):
            step(batches)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(_child_peak_rss, (hparams, backbone, per_class, steps, torch.get_num_threads()))


def _child_peak_rss(hparams: dict | None, backbone: dict, per_class: int, steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    step, _ = build_variant(hparams, backbone, device)
    batches = make_batches(RFMeta(backbone=backbone, num_domains=3).input_spec, per_class, device, seed=0)
    for _ in range(steps):
        step(batches)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bf16_loss_change(backbone: dict, batches: list, device: torch.device) -> float:
    """|loss(bf16) - loss(fp32)| / loss(fp32) for one step from the same state on the same batch."""
    losses = []
    for amp in ("none", "bf16"):
        learner = RFMeta(backbone=backbone, num_domains=3, hparams={"amp": amp}, device=device, seed=0)
        losses.append(float(learner.compute_losses(batches, [0, 1], 2).objective(10.0, 1.0)[0].detach()))
    return abs(losses[1] - losses[0]) / abs(losses[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=float, help="default: 1.0 on CUDA, 0.25 on the CPU")
    parser.add_argument("--input-size", type=int, help="default: 256 on CUDA, 64 on the CPU")
    parser.add_argument("--per-class", type=int, default=10, help="k: each domain batch is k live + k spoof")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: 10 on CUDA, 4 on the CPU)")
    parser.add_argument("--per-round", type=int, default=2, help="timed steps per variant and round")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 5 on CUDA, 1 on the CPU)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="default: on with CUDA")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    if cuda:
        torch.backends.cudnn.benchmark = True
    width = args.width or (1.0 if cuda else 0.25)
    size = args.input_size or (256 if cuda else 64)
    rounds = args.rounds or (10 if cuda else 4)
    warmup = args.warmup if args.warmup is not None else (5 if cuda else 1)
    compile_too = args.compile if args.compile is not None else cuda
    backbone = {"type": "rfmeta_cnn", "width": width, "input_size": size}
    images_per_step = 3 * 2 * args.per_class
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    out().print(
        f"RF-Meta step, {name}: 3 domains x {2 * args.per_class} frames at {size} px, width {width}; "
        f"median [quartiles] of {rounds * args.per_round} steps interleaved over {rounds} rounds, "
        f"after {warmup} warm-up",
        highlight=False,
        markup=False,
    )

    configurations: list[tuple[str, dict | None]] = [
        ("reference loop, eager fp32 (baseline)", None),
        ("fasbench rfmeta, fp32", {}),
    ]
    fast = {"amp": "bf16", "channels_last": True} if cuda else {"channels_last": True}
    configurations.append(("fasbench rfmeta, bf16 + channels_last" if cuda else "fasbench rfmeta, channels_last", fast))
    if compile_too:
        configurations.append((f"{configurations[-1][0]} + compile", {**fast, "compile": True}))
    batches = make_batches(RFMeta(backbone=backbone, num_domains=3).input_spec, args.per_class, device, seed=0)
    steps = {}
    for label, hparams in configurations:
        step, _ = build_variant(hparams, backbone, device)
        steps[label] = lambda step=step: step(batches)
    times = interleaved(
        steps, rounds=rounds, per_round=args.per_round, warmup=warmup, synchronize=lambda: synchronize(device)
    )
    baseline = times[configurations[0][0]].median
    for label, hparams in configurations:
        result = times[label]
        peak = peak_memory_mib(hparams, backbone, args.per_class, device, steps=2)
        out().print(
            f"{label:<48} {result.describe()}/step {images_per_step / result.median:8.1f} img/s (train step) "
            f"peak {peak:8.0f} MiB  x{baseline / result.median:.2f} vs reference",
            highlight=False,
            markup=False,
        )
    change = bf16_loss_change(backbone, batches, device)
    out().print(f"bf16 loss change against fp32 (same state and batch): {100 * change:.3f}%", highlight=False)


if __name__ == "__main__":
    main()
