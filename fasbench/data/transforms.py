"""Turning cached uint8 crops into network input: resize, RGB or RGB + HSV in [0, 1] (a learner that augments
does so on the device, inside its own step, from its own seeded generator).

Everything works on batched uint8 tensors on any device, so the same code runs in DataLoader workers
(CPU training) or on the GPU after a uint8 transfer (4x less to copy than float). The 6-channel input
is what the RF-Meta reference feeds: PIL's ``convert("HSV")`` of the RGB crop (each of H, S, V a uint8
scaled to [0, 1] by ``ToTensor``) stacked after RGB; ``rgb_to_hsv`` reproduces PIL's integer HSV exactly
(through small lookup tables computed with PIL's own float arithmetic; 2.5x faster than computing per pixel).
"""

from __future__ import annotations

import functools
from typing import Any

from fasbench.interfaces import InputSpec


def _pil_hue_bytes(red: Any, green: Any, blue: Any) -> Any:
    """PIL's hue byte of int32 RGB triples with max > min, replaying its C float arithmetic.

    rc, gc, bc are float32 ratios; ``2.0 + rc - bc`` sums them in double (C's promotion) into a float
    hue; ``fmod(h / 6.0 + 1.0, 1.0)`` folds it in double into a float; ``(int)(h * 255.0)`` truncates.
    """
    import torch

    maximum = torch.maximum(torch.maximum(red, green), blue)
    minimum = torch.minimum(torch.minimum(red, green), blue)
    chroma = (maximum - minimum).to(torch.float32)
    red_distance, green_distance, blue_distance = (
        ((maximum - channel).to(torch.float32) / chroma).to(torch.float64) for channel in (red, green, blue)
    )
    hue = torch.where(
        red == maximum,
        (blue_distance - green_distance).to(torch.float32).to(torch.float64),  # float - float in C
        torch.where(green == maximum, 2.0 + red_distance - blue_distance, 4.0 + green_distance - red_distance),
    ).to(torch.float32)
    hue = torch.fmod(hue.to(torch.float64) / 6.0 + 1.0, 1.0).to(torch.float32)
    return torch.clamp((hue.to(torch.float64) * 255.0).to(torch.int32), 0, 255)


@functools.cache
def _hsv_tables(device: str) -> tuple[Any, Any]:
    """Lookup tables of PIL's H and S bytes, on ``device``.

    The hue depends only on which channel is the maximum (0 = red wins ties, then green), the chroma
    c = max - min, and the signed difference n of the other two channels (g - b, b - r or r - g):
    3 x 256 x 511 entries. The saturation depends on (c, max): 256 x 256 entries.
    """
    import torch

    chroma, difference = torch.meshgrid(torch.arange(256), torch.arange(-255, 256), indexing="ij")
    valid = (difference.abs() <= chroma) & (chroma > 0)
    chroma, difference = torch.where(valid, chroma, 1), torch.where(valid, difference, 0)
    low = 255 - chroma  # a representative triple with max 255: only differences matter for the hue
    first = torch.where(difference <= 0, low, low + difference)
    second = first - difference
    top = torch.full_like(chroma, 255)
    triples = ((top, first, second), (second, top, first), (first, second, top))  # red, green, blue max
    hue = torch.stack([torch.where(valid, _pil_hue_bytes(*t), 0) for t in triples]).to(torch.uint8)
    chroma, maximum = torch.meshgrid(torch.arange(256), torch.arange(256), indexing="ij")
    ratio = chroma.to(torch.float32) / maximum.clamp(min=1).to(torch.float32)
    saturation = torch.clamp((ratio.to(torch.float64) * 255.0).to(torch.int32), 0, 255)
    saturation = torch.where(chroma <= maximum, saturation, 0).to(torch.uint8)
    return hue.reshape(-1).to(device), saturation.reshape(-1).to(device)


def rgb_to_hsv(images: Any) -> Any:
    """uint8 B x 3 x H x W RGB -> uint8 HSV, bit-exact with PIL's ``Image.convert("HSV")`` (V = max)."""
    import torch

    hue_table, saturation_table = _hsv_tables(str(images.device))
    red, green, blue = images.to(torch.int32).unbind(1)
    maximum = torch.maximum(torch.maximum(red, green), blue)
    chroma = maximum - torch.minimum(torch.minimum(red, green), blue)
    red_max, green_max = red == maximum, green == maximum
    branch = torch.where(red_max, 0, torch.where(green_max, 1, 2))
    difference = torch.where(red_max, green - blue, torch.where(green_max, blue - red, red - green))
    hue = hue_table[(branch * 256 + chroma) * 511 + difference + 255]
    saturation = saturation_table[chroma * 256 + maximum]
    return torch.stack([hue, saturation, maximum.to(torch.uint8)], dim=1)


def resize(images: Any, size: int) -> Any:
    """uint8 B x C x H x W -> uint8 B x C x size x size (bilinear, antialiased when shrinking, like PIL)."""
    import torch
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images
    resized = F.interpolate(images.to(torch.float32), size=(size, size), mode="bilinear", antialias=True)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def to_network_input(images: Any, spec: InputSpec) -> Any:
    """uint8 B x H x W x 3 (as cached) -> float B x channels x size x size in [0, 1] for ``spec``."""
    import torch

    batch = resize(images.permute(0, 3, 1, 2), spec.size)
    planes = [batch] if spec.color == "rgb" else [batch, rgb_to_hsv(batch)]
    return torch.cat(planes, dim=1).to(torch.float32).div_(255.0).contiguous()


def to_depth_target(depths: Any, size: int) -> Any:
    """uint8 B x d x d depth maps -> float B x 1 x size x size in [0, 1]."""
    import torch

    maps = resize(depths.unsqueeze(1), size)
    return maps.to(torch.float32).div_(255.0)
