"""Transforms: PIL-exact HSV, resizing, and the network input the loaders deliver."""

import numpy as np
import pytest
import torch
from PIL import Image

from fasbench.data.transforms import resize, rgb_to_hsv, to_depth_target, to_network_input
from fasbench.interfaces import InputSpec


def _all_colours(red_step: int) -> np.ndarray:
    """Every (r, g, b) with r in range(0, 256, red_step), as an image of shape (n x 256) x 256 x 3."""
    red, green, blue = np.meshgrid(np.arange(0, 256, red_step), np.arange(256), np.arange(256), indexing="ij")
    return np.stack([red, green, blue], axis=-1).reshape(-1, 256, 3).astype(np.uint8)


def test_hsv_is_bit_exact_with_pil_over_the_colour_cube():
    image = _all_colours(red_step=5)  # 52 x 65,536 colours: every branch, tie and grey of PIL's code
    expected = np.asarray(Image.fromarray(image).convert("HSV"))
    got = rgb_to_hsv(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert got.dtype == np.uint8
    assert np.array_equal(got, expected), f"{(got != expected).any(-1).sum()} pixels differ from PIL"


def test_hsv_known_values():
    pixels = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [0, 4, 5]], dtype=torch.uint8)
    hsv = rgb_to_hsv(pixels.T.reshape(1, 3, 1, 5))[0, :, 0].T.tolist()
    # red h=0; green h=1/3 -> int(85.0)=85; blue h=2/3 -> 170; grey: no hue or saturation; (0,4,5): PIL gives 136
    assert hsv == [[0, 255, 255], [85, 255, 255], [170, 255, 255], [0, 0, 128], [136, 255, 5]]


def test_resize_matches_pil_bilinear_within_one_level():
    generator = np.random.default_rng(0)
    coarse = generator.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    image = np.array(Image.fromarray(coarse).resize((96, 96), Image.Resampling.BICUBIC))  # smooth content
    for size in (40, 150):
        expected = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)).astype(int)
        got = resize(torch.from_numpy(image).permute(2, 0, 1)[None], size)[0].permute(1, 2, 0).numpy().astype(int)
        assert np.abs(got - expected).max() <= 1 and np.abs(got - expected).mean() < 0.25


def test_network_input_is_rgb_then_pil_hsv_scaled_to_unit_range():
    generator = np.random.default_rng(1)
    image = generator.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    batch = to_network_input(torch.from_numpy(image), InputSpec(size=16, color="rgb_hsv"))
    assert batch.shape == (2, 6, 16, 16) and batch.dtype == torch.float32
    expected_hsv = np.asarray(Image.fromarray(image[1]).convert("HSV")).transpose(2, 0, 1) / 255.0
    assert np.allclose(batch[1, :3].numpy(), image[1].transpose(2, 0, 1) / 255.0)
    assert np.allclose(batch[1, 3:].numpy(), expected_hsv)
    rgb_only = to_network_input(torch.from_numpy(image), InputSpec(size=8, color="rgb"))
    assert rgb_only.shape == (2, 3, 8, 8) and 0 <= float(rgb_only.min()) and float(rgb_only.max()) <= 1


@pytest.mark.parametrize("size", [8, 32])
def test_zero_spoof_depth_stays_zero_after_resizing(size):
    assert float(to_depth_target(torch.zeros(3, 32, 32, dtype=torch.uint8), size).abs().max()) == 0.0
