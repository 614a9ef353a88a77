"""The on-device train-time augmentations: exact identities, flips and quarter turns, the crop box, determinism."""

from __future__ import annotations

import math

import torch

from fasbench.learners.augment import apply_crop, crop_parameters, flip, rotated_resized_crop


def frames(count=3, size=8, seed=0):
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def parameters(count, **values):
    base = {"angle": 0.0, "width": 1.0, "height": 1.0, "x": 0.0, "y": 0.0, "sign": 1.0}
    return {name: torch.full((count,), float(value)) for name, value in {**base, **values}.items()}


def test_the_whole_frame_unrotated_is_the_frame_and_a_negative_sign_mirrors_it():
    images = frames()
    torch.testing.assert_close(apply_crop(images, parameters(3)), images)
    torch.testing.assert_close(apply_crop(images, parameters(3, sign=-1)), images.flip(-1))


def test_a_quarter_turn_is_rot90_and_a_centred_half_box_is_the_upsampled_middle():
    images = frames()
    turned = apply_crop(images, parameters(3, angle=math.pi / 2))
    candidates = [torch.rot90(images, k, dims=(2, 3)) for k in (1, 3)]
    assert min(float((turned - c).abs().max()) for c in candidates) < 1e-5
    # a half-size box at the centre of an 8 px frame: the middle 4 x 4 pixels, bilinearly upsampled
    middle = apply_crop(images, parameters(3, width=0.5, height=0.5))
    want = torch.nn.functional.interpolate(images[:, :, 2:6, 2:6], size=8, mode="bilinear", align_corners=False)
    torch.testing.assert_close(middle[:, :, 1:-1, 1:-1], want[:, :, 1:-1, 1:-1])


def test_flip_mirrors_the_frames_its_generator_chooses():
    images = frames(count=16)
    chosen = torch.rand(16, generator=torch.Generator().manual_seed(5)) < 0.5
    flipped = flip(images, torch.Generator().manual_seed(5), 0.5)
    for i in range(16):
        assert torch.equal(flipped[i], images[i].flip(-1) if chosen[i] else images[i])
    assert 0 < int(chosen.sum()) < 16
    assert torch.equal(flip(images, torch.Generator().manual_seed(5), 0.0), images)


def test_crop_boxes_have_the_drawn_area_stay_inside_the_frame_and_repeat_with_the_seed():
    drawn = crop_parameters(1000, torch.Generator().manual_seed(1), scale=(0.2, 1.0), ratio=(1.0, 1.0), degrees=180)
    area = drawn["width"] * drawn["height"]
    assert float(area.min()) >= 0.2 - 1e-6 and float(area.max()) <= 1.0
    assert torch.allclose(drawn["width"], drawn["height"])  # ratio 1: square boxes
    assert bool(((drawn["x"].abs() + drawn["width"]) <= 1 + 1e-6).all())
    assert float(drawn["angle"].abs().max()) <= math.pi and float(drawn["angle"].abs().max()) > 3.0
    assert 400 < int((drawn["sign"] < 0).sum()) < 600
    images = frames()
    one = rotated_resized_crop(images, torch.Generator().manual_seed(2), degrees=180.0, scale=(0.2, 1.0))
    two = rotated_resized_crop(images, torch.Generator().manual_seed(2), degrees=180.0, scale=(0.2, 1.0))
    assert torch.equal(one, two) and not torch.allclose(one, images)
