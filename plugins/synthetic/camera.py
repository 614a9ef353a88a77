"""The capturing camera of a domain: optics, sensor resolution, colour response, noise, tone curve, JPEG.

Every frame, live or spoof, goes through the domain's camera last, as it would in a real dataset; what a
spoof instrument leaves in the image survives only as far as this camera lets it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from fasbench_plugins.synthetic.imaging import gaussian_blur, jpeg, resize, to_uint8

REFERENCE_SIZE = 128  # pixel-scale parameters are given for a 128-pixel crop and scaled with the crop size


@dataclass(frozen=True)
class Camera:
    """One camera model. ``face_pixels``: how many sensor pixels the face crop spans in the source video."""

    name: str
    face_pixels: int
    blur: float  # optical blur sigma, in reference-crop pixels
    read_noise: float  # sensor noise std (linear units)
    shot_noise: float  # signal-dependent noise factor
    colour: tuple[tuple[float, float, float], ...]  # 3 x 3 colour matrix (rows: output R, G, B)
    white_balance: tuple[float, float, float]
    gamma: float  # encoding gamma (2.2 ~ sRGB)
    contrast: float  # S-curve strength around mid-grey (1 = none)
    exposure: float
    jpeg_quality: int


@functools.cache
def _tone_curve(gamma: float, contrast: float, steps: int = 16384) -> np.ndarray:
    """uint8 output of the camera's encoding gamma and S-curve for ``steps`` linear input levels."""
    encoded = np.linspace(0, 1, steps) ** (1 / gamma)
    encoded = 0.5 + (encoded - 0.5) * contrast - (contrast - 1) * (encoded - 0.5) ** 3 * 2
    return to_uint8(np.clip(encoded, 0, 1))


def capture(radiance: np.ndarray, camera: Camera, generator: np.random.Generator, size: int) -> np.ndarray:
    """Linear scene radiance (size x size x 3) -> the uint8 RGB crop this camera would deliver."""
    scale = size / REFERENCE_SIZE
    image = gaussian_blur(radiance * camera.exposure, camera.blur * scale)
    native = int(min(size, max(16, camera.face_pixels)))
    image = resize(image, native)
    image = image @ np.asarray(camera.colour, np.float32).T * np.asarray(camera.white_balance, np.float32)
    image = np.clip(image, 0, None)
    noise = generator.standard_normal(image.shape, dtype=np.float32)
    image = image + noise * (camera.read_noise + camera.shot_noise * np.sqrt(image))
    levels = _tone_curve(camera.gamma, camera.contrast)
    encoded = levels[(np.clip(image, 0, 1) * (len(levels) - 1)).astype(np.int32)]
    frame = jpeg(encoded, camera.jpeg_quality)
    if native == size:
        return frame
    return to_uint8(np.clip(resize(frame.astype(np.float32) / 255, size), 0, 1))
