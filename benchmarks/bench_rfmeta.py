"""RF-Meta training-step speed: fasbench's learner against an eager re-implementation of the reference loop.

Same networks, same shapes (3 source domains x (k live + k spoof) frames), same optimiser. The
reference loop is written the way rshaojimmy/AAAI2020-RFMetaFAS core/train.py runs it: fp32, NCHW,
per-domain forwards, a hand-written functional meta learner on a cloned state dict, Adam, and six
``.item()`` reads per step for its logs. Prints per variant: ms per step, forward+backward images/s,
peak memory, speed-up over the reference loop, and (for bf16) the loss change against fp32 on the
same state and batch.

    python benchmarks/bench_rfmeta.py                       # CUDA: full size (256 px, width 1); CPU: 64 px, width 0.25
    python benchmarks/bench_rfmeta.py --compile             # add the torch.compile variant (default on CUDA)
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from fasbench_plugins.networks import build_backbone, build_heads
from fasbench_plugins.rfmeta import RFMeta

from fasbench.console import out
from fasbench.interfaces import DomainBatch


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


def measure(update: Callable, batches: list, device: torch.device, warmup: int, steps: int) -> dict[str, float]:
    """Median ms per step (each step synchronised at its end), and peak memory in MiB."""
    for _ in range(warmup):
        update(batches)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        update(batches)
        synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:  # the process's peak resident set so far (monotone across variants)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ms": 1000 * statistics.median(times), "peak_mib": peak}


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
    parser.add_argument("--steps", type=int, help="timed steps (default: 20 on CUDA, 5 on the CPU)")
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
    steps, warmup = args.steps or (20 if cuda else 5), args.warmup if args.warmup is not None else (5 if cuda else 1)
    compile_too = args.compile if args.compile is not None else cuda
    backbone = {"type": "rfmeta_cnn", "width": width, "input_size": size}
    images_per_step = 3 * 2 * args.per_class
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    out().print(
        f"RF-Meta step, {name}: 3 domains x {2 * args.per_class} frames at {size} px, width {width}; "
        f"median of {steps} steps after {warmup} warm-up",
        highlight=False,
    )

    reference = ReferenceLoop(backbone, device)
    batches = make_batches(reference.extractor.input_spec, args.per_class, device, seed=0)
    variants: list[tuple[str, Callable]] = [("reference loop, eager fp32 (baseline)", reference.update)]
    configurations = [("fasbench rfmeta, fp32", {})]
    if cuda:
        configurations.append(("fasbench rfmeta, bf16 + channels_last", {"amp": "bf16", "channels_last": True}))
    else:
        configurations.append(("fasbench rfmeta, channels_last", {"channels_last": True}))
    if compile_too:
        extra = {"amp": "bf16", "channels_last": True} if cuda else {"channels_last": True}
        configurations.append((f"{configurations[-1][0]} + compile", {**extra, "compile": True}))
    for label, hparams in configurations:
        learner = RFMeta(backbone=backbone, num_domains=3, hparams=hparams, device=device, seed=0)
        variants.append((label, learner.update))

    baseline_ms = None
    for label, update in variants:
        result = measure(update, batches, device, warmup, steps)
        baseline_ms = baseline_ms or result["ms"]
        out().print(
            f"{label:<48} {result['ms']:9.1f} ms/step {images_per_step / result['ms'] * 1000:8.1f} img/s "
            f"peak {result['peak_mib']:8.0f} MiB  x{baseline_ms / result['ms']:.2f} vs reference",
            highlight=False,
        )
    change = bf16_loss_change(backbone, batches, device)
    out().print(f"bf16 loss change against fp32 (same state and batch): {100 * change:.3f}%", highlight=False)


if __name__ == "__main__":
    main()
