"""Spoof instruments: how a photo of the subject becomes the scene in front of the camera.

A spoof is a re-capture: the attacker's photo (a live render of the subject under the photo's own
light, through a good source camera) is reproduced by an instrument, held in front of the domain's
camera, lit by the domain's room light, and captured. Both kinds are flat, so their depth is zero.

- Print: reduced colour gamut (ink black, paper white, desaturation), halftone dot screens (one angle per
  ink), paper fibre texture, a bend (horizontal curvature: geometric squeeze and a shading gradient),
  glossy sheen, the paper's white margin and edge, optionally cut-out eyes showing the attacker's own.
- Replay: display gamma, contrast and black-level glow, a white-point tint, emission brightness
  relative to the room, the screen's RGB sub-pixel grid (aliasing into moire at the camera), glass
  reflections and glare, and the device bezel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from fasbench_plugins.synthetic.camera import REFERENCE_SIZE
from fasbench_plugins.synthetic.face import Light
from fasbench_plugins.synthetic.imaging import gaussian, grid, sample, smooth_noise

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class PrintInstrument:
    """A printer and paper. Pixel-scale sizes are in reference-crop (128 px) pixels."""

    name: str  # the attack type it produces, e.g. "print_inkjet"
    halftone_period: float = 3.0
    halftone: float = 0.3  # strength of the dot pattern (0 = continuous tone)
    saturation: float = 0.8  # 1 = the photo's colours; < 1 a reduced gamut; > 1 vivid inks
    gamma: float = 1.0  # tone reproduction: > 1 crushes the darks, < 1 lifts them
    paper: Colour = (0.93, 0.93, 0.93)  # paper white (reflectance)
    ink: Colour = (0.1, 0.1, 0.1)  # darkest ink (reflectance)
    texture: float = 0.03  # paper fibre strength
    gloss: float = 0.1  # specular sheen of the surface
    bend: float = 0.0  # curvature (0 = flat)
    reach: float = 0.0  # how far (photo units) the paper's edge may come into the crop; 0 = never visible
    brightness: float = 1.0  # the printed face's luminance relative to the live face under the same light
    cut_eyes: bool = False

    kind = "print"


@dataclass(frozen=True)
class ReplayInstrument:
    """A display device. Pixel-scale sizes are in reference-crop (128 px) pixels."""

    name: str  # e.g. "replay_tablet"
    pixel_pitch: float = 2.0  # sub-pixel triplet period
    grid: float = 0.3  # depth of the sub-pixel modulation
    gamma: float = 1.0  # display gamma applied to the photo
    contrast: float = 1.0
    saturation: float = 1.0  # 1 = faithful; > 1 = a vivid display
    black: Colour = (0.04, 0.04, 0.05)  # emitted black level
    tint: Colour = (1.0, 1.0, 1.0)  # white point
    brightness: float = 1.0  # the displayed face's luminance relative to the live face under the same room light
    glare: float = 0.3  # strength of a reflected light spot
    reach: float = 0.0  # how far (photo units) the device's edge may come into the crop; 0 = never visible
    bezel_colour: Colour = (0.05, 0.05, 0.05)

    kind = "replay"


BORDER = 0.1  # width (photo units) of the paper's white margin or the screen's bezel inside the medium's edge


@dataclass(frozen=True)
class Placement:
    """Where the medium sits in the crop (shift, scale, roll) and where its edge shows, if anywhere."""

    x: float
    y: float
    scale: float
    roll: float
    edge_side: int  # 0..3: left, right, top, bottom
    edge: float  # photo-units distance of the medium's edge from that border of the photo; < 0 = outside the crop


def draw_placement(generator: np.random.Generator, reach: float) -> Placement:
    """A hand-held placement; ``reach`` is how far the medium's edge may come into the crop (0 = never)."""
    return Placement(
        x=generator.uniform(-0.03, 0.03),
        y=generator.uniform(-0.03, 0.03),
        scale=generator.uniform(0.97, 1.03),
        roll=generator.uniform(-0.04, 0.04),
        edge_side=int(generator.integers(4)),
        edge=generator.uniform(0.3, 1.0) * reach if reach > 0 else -1.0,
    )


@dataclass(frozen=True)
class Surface:
    """Per-video details of the medium: paper fibres (photo coordinates, so they move with it) and a glare spot."""

    fibres: np.ndarray  # size x size x 1, about [-1, 1]
    glare: tuple[float, float, float, float]  # centre x, y and spread x, y in photo units


def draw_surface(generator: np.random.Generator, size: int) -> Surface:
    fibres = smooth_noise(generator, size, max(4, size // 3))[..., None]
    spot = (*generator.uniform(-0.8, 0.8, 2), generator.uniform(0.15, 0.4), generator.uniform(0.1, 0.3))
    return Surface(fibres, tuple(float(value) for value in spot))


def _medium_coordinates(size: int, placement: Placement, bend: float) -> tuple[np.ndarray, ...]:
    """Photo coordinates of every crop pixel, the surface slope (for shading), medium and border masks."""
    x, y = grid(size)
    cos_roll, sin_roll = np.cos(placement.roll), np.sin(placement.roll)
    dx, dy = x - placement.x, y - placement.y
    u = (dx * cos_roll + dy * sin_roll) / placement.scale
    v = (-dx * sin_roll + dy * cos_roll) / placement.scale
    slope = np.zeros_like(u)
    if bend:
        u = np.arcsin(np.clip(u * bend, -0.999, 0.999)) / bend  # a cylinder seen from the front
        slope = u * bend
    inset = (u + 1, 1 - u, v + 1, 1 - v)[placement.edge_side] - placement.edge
    pixel = 2 / size
    on_medium = np.clip(inset / pixel + 0.5, 0, 1)
    border = np.clip((BORDER - inset) / pixel + 0.5, 0, 1) * (placement.edge >= 0)
    return u, v, slope, on_medium, border


def present_print(
    photo: np.ndarray,
    instrument: PrintInstrument,
    light: Light,
    placement: Placement,
    surface: Surface,
    eyes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Radiance of the printed ``photo`` (display-referred, size x size x 3) and where the paper covers the crop.

    ``eyes`` = (live radiance, eye mask) of the attacker, shown through cut-out eye holes.
    """
    size = photo.shape[0]
    u, v, slope, on_medium, border = _medium_coordinates(size, placement, instrument.bend)
    image = sample(photo, u, v)
    grey = image.mean(axis=-1, keepdims=True)
    image = grey + (image - grey) * instrument.saturation
    if instrument.halftone:
        period = instrument.halftone_period * size / REFERENCE_SIZE
        x, y = u * size / 2, v * size / 2
        screens = []
        for angle in (0.26, 1.31, 0.0):  # 15, 75, 0 degrees: one screen per ink
            along, across = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
            screens.append(np.cos(2 * np.pi * along / period) * np.cos(2 * np.pi * across / period))
        threshold = 0.5 + 0.45 * np.stack(screens, axis=-1)
        dots = np.clip((image - threshold) * 6 + 0.5, 0, 1)
        image = image + (dots - image) * instrument.halftone
    paper, ink = np.asarray(instrument.paper, np.float32), np.asarray(instrument.ink, np.float32)
    reflectance = ink + (paper - ink) * np.clip(image, 0, 1) ** (2.2 * instrument.gamma)
    reflectance = reflectance * (1 + instrument.texture * sample(surface.fibres, u, v))
    if eyes is not None and instrument.cut_eyes:
        live, mask = eyes
        hole = np.clip(sample(mask[..., None], u, v)[..., 0] * 1.5, 0, 1)
    reflectance = reflectance + (paper - reflectance) * border[..., None]  # the print's white margin
    direction = np.asarray(light.direction, np.float32) / np.linalg.norm(light.direction)
    facing = np.clip(direction[2] * np.sqrt(1 - slope**2) - direction[0] * slope, 0, None)
    colour = np.asarray(light.colour, np.float32) * light.intensity
    shading = (light.ambient + (1 - light.ambient) * facing)[..., None] * colour
    sheen = instrument.gloss * gaussian(slope, v, -direction[0] * 0.6, -direction[1], 0.15, 0.3)
    radiance = reflectance * shading + sheen[..., None] * colour
    if eyes is not None and instrument.cut_eyes:
        radiance = radiance + (live * 0.85 - radiance) * hole[..., None]  # recessed: a little darker
    return radiance, on_medium


def present_replay(
    photo: np.ndarray,
    instrument: ReplayInstrument,
    light: Light,
    placement: Placement,
    surface: Surface,
) -> tuple[np.ndarray, np.ndarray]:
    """Radiance of a screen showing ``photo`` and where the device covers the crop."""
    size = photo.shape[0]
    u, v, _, on_medium, border = _medium_coordinates(size, placement, 0.0)
    image = np.clip(sample(photo, u, v), 0, 1)
    grey = image.mean(axis=-1, keepdims=True)
    image = np.clip(grey + (image - grey) * instrument.saturation, 0, 1)
    image = np.clip(0.5 + (image - 0.5) * instrument.contrast, 0, 1) ** instrument.gamma
    emitted = np.asarray(instrument.black, np.float32) + image * np.asarray(instrument.tint, np.float32)
    period = instrument.pixel_pitch * size / REFERENCE_SIZE
    x, y = u * size / 2, v * size / 2
    phase = 2 * np.pi * x / period
    subpixels = np.stack([np.cos(phase - shift) for shift in (0.0, 2.09, 4.19)], axis=-1)
    rows = 0.5 + 0.5 * np.cos(2 * np.pi * y / period)
    emitted = emitted * (1 - instrument.grid * (0.5 - 0.5 * subpixels)) * (1 - 0.3 * instrument.grid * rows)[..., None]
    colour = np.asarray(light.colour, np.float32) * light.intensity
    screen = emitted + 0.03 * light.ambient * colour  # emissive: the room light barely matters
    glare = instrument.glare * gaussian(u, v, *surface.glare)
    screen = screen + glare[..., None] * colour
    bezel = np.asarray(instrument.bezel_colour, np.float32) * colour * (light.ambient + 0.3)
    screen = screen + (bezel - screen) * border[..., None]
    return screen, on_medium
