"""Small vectorised image operations the renderer needs (numpy float images in [0, 1], H x W x C)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

BILINEAR = Image.Resampling.BILINEAR


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: x grows rightwards, y downwards (each size x size, float32)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(axis, axis, indexing="xy")


def gaussian(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """An axis-aligned Gaussian bump of height 1 centred at (cx, cy)."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur (reflected borders) of an H x W or H x W x C float image."""
    if sigma < 0.3:
        return image
    kernel = _kernel(sigma)
    radius = len(kernel) // 2
    height, width = image.shape[:2]
    rest = [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, [(radius, radius), (0, 0), *rest], mode="reflect")
    rows = sum(weight * padded[offset : offset + height] for offset, weight in enumerate(kernel))
    padded = np.pad(rows, [(0, 0), (radius, radius), *rest], mode="reflect")
    return sum(weight * padded[:, offset : offset + width] for offset, weight in enumerate(kernel))


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a float H x W or H x W x C image to size x size."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    planes = image[..., None] if image.ndim == 2 else image
    resized = [
        np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c], np.float32)).resize((size, size), BILINEAR))
        for c in range(planes.shape[2])
    ]
    stacked = np.stack(resized, axis=-1)
    return stacked[..., 0] if image.ndim == 2 else stacked


def smooth_noise(generator: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in about [-1, 1]: a cells x cells random grid upsampled (bilinear) to size x size."""
    coarse = generator.standard_normal((cells, cells, channels)).astype(np.float32)
    return resize(coarse, size) if channels > 1 else resize(coarse[..., 0], size)


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` (H x W x C) at coordinates in [-1, 1] (the ``grid`` convention), clamped."""
    size_y, size_x, channels = image.shape
    column = np.clip((x + 1) / 2 * size_x - 0.5, 0, size_x - 1.001)
    row = np.clip((y + 1) / 2 * size_y - 0.5, 0, size_y - 1.001)
    left, top = column.astype(np.int32), row.astype(np.int32)
    fx, fy = (column - left)[..., None], (row - top)[..., None]
    flat = image.reshape(-1, channels)
    corner = top * size_x + left
    upper = flat[corner] + (flat[corner + 1] - flat[corner]) * fx
    lower = flat[corner + size_x] + (flat[corner + size_x + 1] - flat[corner + size_x]) * fx
    return upper + (lower - upper) * fy


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip a uint8 H x W x 3 image through JPEG at ``quality`` (PIL; deterministic)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))
