"""Train-time augmentations on the device, for learners whose papers augment (SSDG's flip, SA-FAS's views).

The frame cache holds fixed crops; a learner that augments does it itself, on the batch it is handed, on
the batch's device (no host round trip). Random parameters are drawn from the learner's own CPU generator
(checkpointed with it, so a resumed run draws the same), a few numbers per frame, and copied to the device
without a host-device sync. Images are B x C x H x W in [0, 1]; every channel group (RGB, HSV) moves alike.

``flip``: torchvision's RandomHorizontalFlip(p) per frame. ``rotated_resized_crop``: RandomRotation(degrees)
(no expand, black fill) followed by RandomResizedCrop(size, scale, ratio) and RandomHorizontalFlip, in one
``grid_sample``: each output pixel is mapped back through crop, flip and rotation to the input, so the frame
is resampled once (bilinear) instead of twice (torchvision: nearest for the rotation, bilinear for the crop).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _on(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(device=like.device, dtype=like.dtype, non_blocking=True)


def flip(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Each frame mirrored left-right with probability ``p`` (one draw per frame from ``generator``)."""
    chosen = _on(torch.rand(images.shape[0], generator=generator) < p, images).view(-1, 1, 1, 1)
    return torch.where(chosen.bool(), images.flip(-1), images)


def crop_parameters(
    count: int,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (1.0, 1.0),
    degrees: float = 180.0,
    p_flip: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Per frame (CPU tensors): rotation angle (radians), crop width and height as fractions of the frame,
    crop centre in [-1, 1] coordinates, and the flip sign.

    As RandomResizedCrop: area fraction ~ U(scale), log aspect ratio ~ U(log ratio); a box that does not fit
    (width or height over 1) is clipped to the frame (torchvision retries 10 times, then falls back to the
    central crop; with ratio (1, 1), the authors' setting, every box fits and the two agree)."""
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(degrees)
    area = scale[0] + torch.rand(count, generator=generator) * (scale[1] - scale[0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + torch.rand(count, generator=generator) * (log_high - log_low))
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (torch.rand(count, generator=generator) * 2 - 1) * (1 - width)
    centre_y = (torch.rand(count, generator=generator) * 2 - 1) * (1 - height)
    sign = torch.where(torch.rand(count, generator=generator) < p_flip, -1.0, 1.0)
    return {"angle": angle, "width": width, "height": height, "x": centre_x, "y": centre_y, "sign": sign}


def apply_crop(images: torch.Tensor, parameters: dict[str, torch.Tensor]) -> torch.Tensor:
    """Rotate, crop, resize (to the input size) and flip each frame as ``parameters`` say (one bilinear
    resampling; outside the rotated frame is black)."""
    p = {name: _on(value, images) for name, value in parameters.items()}
    cos, sin = torch.cos(p["angle"]), torch.sin(p["angle"])
    # Output (u, v) in [-1, 1]^2 -> crop box (flip on u) -> rotated frame -> input frame (inverse rotation).
    a, b = p["width"] * p["sign"], p["height"]
    theta = torch.stack(
        [
            torch.stack([cos * a, sin * b, cos * p["x"] + sin * p["y"]], dim=1),
            torch.stack([-sin * a, cos * b, -sin * p["x"] + cos * p["y"]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotated_resized_crop(images: torch.Tensor, generator: torch.Generator, **options: float) -> torch.Tensor:
    """One random view of each frame: ``crop_parameters(**options)`` drawn from ``generator``, then ``apply_crop``."""
    return apply_crop(images, crop_parameters(images.shape[0], generator, **options))


__all__ = ["apply_crop", "crop_parameters", "flip", "rotated_resized_crop"]
