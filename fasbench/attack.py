"""The adversarial stress test: white-box L-infinity PGD (FGSM at one step) on a trained learner's live score.

A stress test, not a presentation attack: digital perturbations of the captured frames are outside the
ISO/IEC 30107 presentation-attack threat model. It asks how far a small, bounded change of the pixels
moves a learner's P(live), in the attacker's direction (spoof frames pushed towards live) or the other
(live frames pushed towards spoof).

The perturbation lives in the network input's RGB pixels (after resizing, values in [0, 1]); eps is in
units of 1/255. PGD without a random start (BIM; deterministic): ``steps`` signed-gradient steps of
``eps / 4`` (``eps`` for FGSM), each projected onto the eps-ball and the valid pixel range; each frame
ends at its best iterate. Every budget is attacked from the clean frame (its numbers, under
``metrics_this_budget_alone``, do not depend on the other budgets asked for); the reported ``metrics`` at
eps take, per frame, the strongest of the attacks at the budgets asked for up to eps (each of those
perturbations lies inside the eps-ball), so they are monotone in eps, where fixed-step PGD alone is not
(its large steps overshoot). A learner fed
RGB + HSV sees its HSV planes move by the HSV change of the perturbed RGB (a differentiable HSV with the
same definition as the cached one), so at eps 0 the input, and the scores, are exactly the clean ones.
Metrics under attack use the clean run's threshold: the one its last evaluation chose under the policy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fasbench import atomic
from fasbench.errors import FasbenchError

DIRECTIONS = ("spoof_to_live", "live_to_spoof")
ATTACK_FILE = "attack.json"
KIND = (
    "adversarial stress test: white-box L-infinity PGD (FGSM at 1 step) on P(live), no random start; digital "
    "perturbations of the frames, outside the ISO/IEC 30107 presentation-attack threat model"
)
CLEAN_TOLERANCE = 1e-4  # the reproduced clean scores against the run's recorded ones (same device: ~1e-7)


def rgb_to_hsv_float(rgb: Any) -> Any:
    """Float B x 3 x H x W RGB in [0, 1] -> HSV in [0, 1], differentiable almost everywhere; the definition
    of PIL's ``convert("HSV")`` (and of ``fasbench.data.transforms.rgb_to_hsv``) without its rounding."""
    import torch

    red, green, blue = rgb.unbind(1)
    maximum = torch.maximum(torch.maximum(red, green), blue)
    chroma = maximum - torch.minimum(torch.minimum(red, green), blue)
    grey = chroma <= 0
    safe_chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    safe_maximum = torch.where(maximum <= 0, torch.ones_like(maximum), maximum)
    hue = torch.where(
        red == maximum,
        (green - blue) / safe_chroma,
        torch.where(green == maximum, 2.0 + (blue - red) / safe_chroma, 4.0 + (red - green) / safe_chroma),
    )
    hue = torch.where(grey, torch.zeros_like(hue), torch.remainder(hue / 6.0 + 1.0, 1.0))
    saturation = torch.where(grey, torch.zeros_like(chroma), chroma / safe_maximum)
    return torch.stack([hue, saturation, maximum], dim=1)


def perturbed_input(clean: Any, delta: Any) -> Any:
    """The network input of ``clean`` (B x 3 or 6 x H x W, RGB first) with ``delta`` added to its RGB planes;
    HSV planes, where present, move by the HSV change of the RGB (exactly ``clean`` at ``delta`` 0)."""
    import torch

    rgb = clean[:, :3]
    moved = rgb + delta
    if clean.shape[1] == 3:
        return moved
    hsv_change = rgb_to_hsv_float(moved) - rgb_to_hsv_float(rgb)
    return torch.cat([moved, clean[:, 3:] + hsv_change], dim=1)


def pgd(
    live_score: Callable[[Any], Any],
    clean: Any,
    *,
    eps: float,
    steps: int,
    direction: str,
    step_size: float | None,
) -> Any:
    """The perturbed input after ``steps`` signed-gradient steps on ``live_score`` (raising it for
    spoof_to_live, lowering it for live_to_spoof), within ``eps`` (a fraction of the pixel range) of ``clean``.

    Each frame keeps its best iterate (the clean frame included): a frame whose score a step made worse for
    the attacker ends at its best point so far, so it never ends worse for the attacker than it started
    (the kinks of ReLU, normalisation and hue make large steps overshoot)."""
    import torch

    if direction not in DIRECTIONS:
        raise FasbenchError(f"unknown attack direction {direction!r}; choose {' or '.join(DIRECTIONS)}")
    if eps < 0 or steps < 1:
        raise FasbenchError(f"PGD needs eps >= 0 and steps >= 1, got eps {eps} and steps {steps}")
    if eps == 0:
        return clean
    rgb = clean[:, :3].detach()
    delta = torch.zeros_like(rgb)
    step = eps if step_size is None else step_size
    sign = 1.0 if direction == "spoof_to_live" else -1.0
    best, best_objective = None, None
    for iteration in range(steps + 1):
        last = iteration == steps
        delta.requires_grad_(not last)
        moved = perturbed_input(clean, delta)
        with torch.set_grad_enabled(not last):
            objective = sign * live_score(moved).float()
        with torch.no_grad():
            if best_objective is None:
                best, best_objective = moved.detach(), objective.detach()
            else:
                better = objective.detach() > best_objective
                best_objective = torch.where(better, objective.detach(), best_objective)
                best = torch.where(better.view(-1, *([1] * (clean.dim() - 1))), moved.detach(), best)
        if last:
            break
        (gradient,) = torch.autograd.grad(objective.sum(), delta)
        with torch.no_grad():
            delta = (delta + step * gradient.sign()).clamp_(-eps, eps)
            delta = (rgb + delta).clamp_(0.0, 1.0) - rgb
    return best


def attack_run(
    run_dir: str | Path,
    plugins: Any,
    *,
    eps: Sequence[float],
    steps: int = 10,
    directions: Sequence[str] = DIRECTIONS,
    threshold_policy: str = "test_eer",
    level: str = "video",
    cache_dir: str | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Attack the final checkpoint of a finished run on its target frames (on ``device``, default the run's):
    each batch's clean scores are first checked against the run's recorded ones. Merge the results into the
    run's ``attack.json`` (atomic) and return that file's content."""
    import torch

    from fasbench.evaluation import ScoreTable, evaluate, read_scores
    from fasbench.runs import files
    from fasbench.runs.plan import build_learner, plan_run, target_rows
    from fasbench.runs.scoring import eval_scores_path

    directory = Path(run_dir)
    if not (directory / files.DONE).exists():
        raise FasbenchError(f"{directory} is not a finished run directory (no `done` marker): finish the run first")
    for direction in directions:
        if direction not in DIRECTIONS:
            raise FasbenchError(f"unknown --direction {direction!r}; choose from {', '.join(DIRECTIONS)}")
    if any(e < 0 for e in eps) or steps < 1:
        raise FasbenchError(f"--eps must be >= 0 (units of 1/255) and --steps >= 1, got {list(eps)} and {steps}")
    record = files.read_record(directory)
    clean_result = next(
        (
            e
            for e in record["evaluations"]
            if (e["selection"], e["policy"], e["level"]) == ("last", threshold_policy, level)
        ),
        None,
    )
    if clean_result is None:
        raise FasbenchError(f"{directory} recorded no evaluation under threshold policy {threshold_policy!r}, {level}")
    threshold = float(clean_result["threshold"])
    config = {k: v for k, v in files.read_json(directory / "config.json", "rerun with --restart").items()}
    config.pop("run_id", None)
    if device is None:
        from fasbench.commands.run import resolve_device

        device = resolve_device(str(config["device"]))
    planned = plan_run(config, plugins, cache_dir=cache_dir, progress=False)
    for key in ("videos_sha256", "caches_sha256"):
        if planned.config["data"].get(key) != config["data"].get(key):
            raise FasbenchError(
                f"the frame caches under {cache_dir or 'the default cache directory'} are not the ones {directory} "
                f"was scored on (data.{key} differs); give the run's --cache-dir"
            )
    learner = build_learner(config, plugins, device)
    checkpoint = files.load_checkpoint(directory / files.CHECKPOINT)
    if checkpoint is None:
        raise FasbenchError(f"{directory} has no {files.CHECKPOINT}: the attacked model is the run's final checkpoint")
    learner.load_state_dict(checkpoint["learner"])
    if learner.step != record["steps"]:
        raise FasbenchError(f"{directory}: its checkpoint is at step {learner.step}, its record at {record['steps']}")
    recorded, _ = read_scores(eval_scores_path(directory, learner.step, "target"))

    from fasbench.data import eval_batches

    target = config["target"]
    data = config["data"]
    rows = target_rows(planned.config, planned.caches, planned.roles)
    budgets = sorted({float(e) for e in eps})
    clean_scores: list[np.ndarray] = []
    single: dict[tuple[str, float], list[np.ndarray]] = {(d, e): [] for d in directions for e in budgets}
    meta_parts: dict[str, list[np.ndarray]] = {"label": [], "video_id": [], "frame_index": [], "attack_type": []}
    difference, offset = 0.0, 0
    started = time.monotonic()
    for images, meta in eval_batches(
        planned.caches[target],
        rows,
        input_spec=learner.input_spec,
        batch_size=int(data["eval_batch_size"]),
        device=device,
    ):
        clean = learner.score(images).float().cpu().numpy()
        # before any attack on this batch: is this the model and are these the frames the run scored?
        expected = slice(offset, offset + len(clean))
        offset += len(clean)
        if not np.array_equal(recorded.video_id[expected], [f"{target}/{v}" for v in meta["video_id"]]):
            raise FasbenchError(f"{directory}: the target frames differ from those the run recorded; rerun it")
        difference = max(difference, float(np.max(np.abs(clean - recorded.score[expected]))))
        if difference > CLEAN_TOLERANCE:
            raise FasbenchError(
                f"{directory}: the checkpoint's clean scores differ from the run's recorded ones by up to "
                f"{difference:.2e} (more than {CLEAN_TOLERANCE:g}); attack on the device the run was trained on "
                "(--device)"
            )
        clean_scores.append(clean)
        labels = np.asarray(meta["label"])
        for key in meta_parts:
            meta_parts[key].append(np.asarray(meta[key]))
        for direction in directions:
            chosen = np.flatnonzero(labels == (0 if direction == "spoof_to_live" else 1))
            subset = images[torch.as_tensor(chosen, device=images.device)] if len(chosen) else None
            for e in budgets:
                scores = clean.copy()
                if subset is not None and e > 0:
                    step_size = None if steps == 1 else e / 4 / 255
                    moved = pgd(
                        learner.live_score, subset, eps=e / 255, steps=steps, direction=direction, step_size=step_size
                    )
                    scores[chosen] = learner.score(moved).float().cpu().numpy()
                single[(direction, e)].append(scores)
        if progress is not None:
            progress(f"{offset} of {len(rows)} frames")
    if offset != len(recorded.score):
        raise FasbenchError(f"{directory}: the target frames differ from those the run recorded; rerun it")

    parts = {key: np.concatenate(values) for key, values in meta_parts.items()}
    table_of = lambda scores: ScoreTable(  # noqa: E731
        score=np.asarray(scores, dtype=np.float64),
        label=parts["label"].astype(np.int64),
        video_id=np.asarray([f"{target}/{v}" for v in parts["video_id"]]),
        frame_index=parts["frame_index"].astype(np.int64),
        attack_type=parts["attack_type"],
    )
    clean_table = table_of(np.concatenate(clean_scores))

    def metrics(table: ScoreTable) -> dict[str, float]:
        return evaluate(table, policy=threshold_policy, level=level, plugins=plugins, threshold=threshold)["metrics"]

    results = []
    for direction in directions:
        attacked_class = 0 if direction == "spoof_to_live" else 1
        mask = clean_table.label == attacked_class
        strongest = np.maximum if direction == "spoof_to_live" else np.minimum
        envelope = clean_table.score
        for e in budgets:
            scores = np.concatenate(single[(direction, e)])
            envelope = strongest(envelope, scores)  # every smaller budget's perturbation lies in this ball too
            results.append(
                {
                    "direction": direction,
                    "eps": e,
                    "steps": steps,
                    "attack": "FGSM" if steps == 1 else "PGD",
                    "step_size": e if steps == 1 else e / 4,
                    "envelope_of": [b for b in budgets if b <= e],
                    "threshold_policy": threshold_policy,
                    "level": level,
                    "threshold": threshold,
                    "mean_score_before": float(clean_table.score[mask].mean()) if mask.any() else None,
                    "mean_score_after": float(envelope[mask].mean()) if mask.any() else None,
                    "metrics": metrics(table_of(envelope)),
                    "metrics_this_budget_alone": metrics(table_of(scores)),
                }
            )
    document = _merge(
        directory / ATTACK_FILE,
        {
            "kind": KIND,
            "eps_unit": "1/255 of the pixel range",
            "run_id": record["run_id"],
            **{key: record[key] for key in ("learner", "protocol", "suite", "seed", "convention")},
            "checkpoint_step": learner.step,
            "device": str(device),
            "frames": len(clean_table.score),
            "clean_max_abs_difference": difference,
            "clean": {f"{threshold_policy}/{level}": {"threshold": threshold, "metrics": metrics(clean_table)}},
        },
        results,
    )
    document["seconds"] = round(time.monotonic() - started, 3)
    atomic.write_json(directory / ATTACK_FILE, document)
    return document


def _merge(path: Path, header: Mapping[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The attack file's new content. An attack replaces the earlier results of its (direction, steps,
    policy, level) groups whole (a group's reported metrics are an envelope over its budgets) and keeps the
    other groups; a file of another run or checkpoint is replaced whole."""
    kept: list[dict[str, Any]] = []
    clean = dict(header["clean"])
    if path.exists():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            earlier = {}
        if all(earlier.get(k) == header[k] for k in ("run_id", "checkpoint_step")):
            group = lambda r: (r["direction"], r["steps"], r["threshold_policy"], r["level"])  # noqa: E731
            replaced = {group(r) for r in results}
            kept = [r for r in earlier.get("results", []) if group(r) not in replaced]
            clean = {**earlier.get("clean", {}), **clean}
    ordered = sorted(
        kept + results, key=lambda r: (r["direction"], r["threshold_policy"], r["level"], r["steps"], r["eps"])
    )
    return {**header, "clean": clean, "results": ordered}


def read_attack(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's ``attack.json`` (None when it has none)."""
    path = Path(run_dir) / ATTACK_FILE
    if not path.exists():
        return None
    from fasbench.runs.files import read_json

    return read_json(path, f"remove it and rerun `fasbench attack {run_dir}`")
