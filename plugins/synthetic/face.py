"""Live faces: a 3D face-like height field per subject, shaded under a light, with skin texture.

The surface is a head ellipsoid plus Gaussian features (eye sockets, eyeballs, brow ridges, a nose
ridge and tip, cheeks, lips, chin) whose sizes and places vary per subject; pose (shift, scale, roll,
and a 2.5D yaw/pitch that moves features by their prominence) varies per frame. Shading is Lambert
plus ambient plus a Blinn-Phong highlight; albedo carries skin tone, pores, blotches, lips, eyes,
brows, hair and beard. The height field is the frame's true depth map.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from fasbench_plugins.synthetic.imaging import gaussian, grid, smooth_noise

LIGHT_SKIN = np.array([0.92, 0.74, 0.62], np.float32)
DARK_SKIN = np.array([0.36, 0.23, 0.16], np.float32)
HEAD_RELIEF = 0.55  # ellipsoid height relative to the head's half-width


@dataclass(frozen=True)
class Subject:
    """The shape and colouring of one synthetic person (drawn once, fixed across their videos)."""

    width: float  # head half-width (crop units: the crop spans [-1, 1])
    height: float  # head half-height
    eye_spacing: float  # eye centre offset from the midline, in head half-widths
    eye_level: float  # eye height, in head half-heights (negative = above centre)
    brow: float  # brow ridge prominence
    nose_length: float  # in head half-heights
    nose_size: float  # nose prominence
    cheeks: float
    mouth_width: float
    skin: tuple[float, float, float]
    lips: tuple[float, float, float]
    iris: tuple[float, float, float]
    hair: tuple[float, float, float]
    hairline: float  # in head half-heights above the centre
    beard: float  # 0 = none
    texture_seed: int


def draw_subject(generator: np.random.Generator, tone_range: tuple[float, float]) -> Subject:
    """A random person; ``tone_range`` bounds the skin tone (0 = lightest, 1 = darkest)."""
    tone = generator.uniform(*tone_range)
    skin = (1 - tone) * LIGHT_SKIN + tone * DARK_SKIN
    skin = skin * generator.uniform(0.94, 1.06, 3)
    hair_darkness = generator.uniform(0.05, 0.6) if tone < 0.5 else generator.uniform(0.03, 0.15)
    hair = np.array([0.55, 0.42, 0.3]) * hair_darkness / 0.6 + generator.uniform(0, 0.03, 3)
    iris = np.array([0.3, 0.2, 0.12]) * generator.uniform(0.3, 1.0) + np.array([0, 0.1, 0.2]) * generator.uniform(0, 1)
    return Subject(
        width=generator.uniform(0.6, 0.7),
        height=generator.uniform(0.8, 0.9),
        eye_spacing=generator.uniform(0.36, 0.44),
        eye_level=generator.uniform(-0.2, -0.1),
        brow=generator.uniform(0.5, 1.5),
        nose_length=generator.uniform(0.28, 0.4),
        nose_size=generator.uniform(0.7, 1.3),
        cheeks=generator.uniform(0.5, 1.5),
        mouth_width=generator.uniform(0.22, 0.32),
        skin=tuple(float(v) for v in np.clip(skin, 0, 1)),
        lips=tuple(float(v) for v in np.clip(skin * np.array([0.85, 0.55, 0.55]), 0, 1)),
        iris=tuple(float(v) for v in np.clip(iris, 0, 1)),
        hair=tuple(float(v) for v in np.clip(hair, 0, 1)),
        hairline=generator.uniform(0.45, 0.75),
        beard=float(generator.uniform(0.3, 0.8)) if generator.random() < 0.25 else 0.0,
        texture_seed=int(generator.integers(2**31)),
    )


@dataclass(frozen=True)
class Pose:
    """Where the head is in the crop: centre, scale, in-plane roll, and out-of-plane yaw/pitch (radians)."""

    x: float = 0.0
    y: float = 0.05
    scale: float = 1.0
    roll: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0


@dataclass(frozen=True)
class Light:
    """A directional light (towards the scene from ``direction``; z points to the camera) plus ambient."""

    direction: tuple[float, float, float]
    colour: tuple[float, float, float]
    intensity: float
    ambient: float
    specular: float


@functools.lru_cache(maxsize=32)
def _skin_texture(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-subject pores (fine) and blotches (coarse), fixed across frames."""
    generator = np.random.default_rng(seed)
    pores = generator.standard_normal((size, size)).astype(np.float32)
    blotches = smooth_noise(generator, size, 6)
    return pores, blotches


def render_face(
    subject: Subject, pose: Pose, light: Light, background: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear radiance (size x size x 3), depth in [0, 1] (1 = nearest, 0 off the face), and an eye mask."""
    x, y = grid(size)
    cos_roll, sin_roll = np.cos(pose.roll), np.sin(pose.roll)
    dx, dy = x - pose.x, y - pose.y
    u = (dx * cos_roll + dy * sin_roll) / pose.scale
    v = (-dx * sin_roll + dy * cos_roll) / pose.scale
    a, b, s = subject.width, subject.height, subject
    yaw, pitch = pose.yaw, pose.pitch

    def feature(cx: float, cy: float, prominence: float) -> tuple[float, float]:
        """Feature centre moved by the 2.5D head rotation, more for more prominent features."""
        return cx + yaw * prominence * a, cy + pitch * prominence * b

    hu, hv = feature(0, 0, 0.15)
    radius2 = ((u - hu) / a) ** 2 + ((v - hv) / b) ** 2
    inside = np.clip((1 - radius2) * 12, 0, 1)
    relief = np.sqrt(np.clip(1 - radius2, 0, None)) * HEAD_RELIEF
    eye_y = s.eye_level * b
    eyes = np.zeros_like(u)
    for side in (-1, 1):
        ex, ey = feature(side * s.eye_spacing * a, eye_y, 0.4)
        relief += -0.09 * gaussian(u, v, ex, ey, 0.16 * a, 0.1 * b) + 0.05 * gaussian(u, v, ex, ey, 0.07 * a, 0.05 * b)
        bx, by = feature(side * s.eye_spacing * a, eye_y - 0.15 * b, 0.5)
        relief += 0.05 * s.brow * gaussian(u, v, bx, by, 0.2 * a, 0.045 * b)
        eyes = np.maximum(eyes, gaussian(u, v, ex, ey, 0.13 * a, 0.06 * b))
        cx, cy = feature(side * 0.45 * a, 0.12 * b, 0.4)
        relief += 0.05 * s.cheeks * gaussian(u, v, cx, cy, 0.2 * a, 0.17 * b)
    tip_y = eye_y + s.nose_length * 2 * b
    along = np.clip((v - eye_y) / (tip_y - eye_y), 0, 1)
    ridge_x = yaw * a * (0.5 + 0.5 * along)
    ridge = along * np.exp(-0.5 * ((u - ridge_x) / (0.07 * a * (0.7 + 0.6 * along))) ** 2)
    ridge *= np.exp(-0.5 * (np.clip(v - tip_y, 0, None) / (0.04 * b)) ** 2)
    nx, ny = feature(0, tip_y, 1.0)
    relief += s.nose_size * (0.16 * ridge + 0.06 * gaussian(u, v, nx, ny, 0.1 * a, 0.07 * b))
    mouth_y = tip_y + 0.22 * b
    mx, my = feature(0, mouth_y, 0.5)
    lips = gaussian(u, v, mx, my, s.mouth_width * a, 0.05 * b)
    relief += 0.03 * lips - 0.02 * gaussian(u, v, mx, my, s.mouth_width * a, 0.012 * b)
    chin_x, chin_y = feature(0, 0.8 * b, 0.4)
    relief += 0.04 * gaussian(u, v, chin_x, chin_y, 0.25 * a, 0.1 * b)
    depth_field = np.clip(relief, 0, None) * inside

    # normals and shading
    spacing = 2.0 / size
    gradient_y, gradient_x = np.gradient(depth_field * pose.scale, spacing)
    normals = np.stack([-gradient_x, -gradient_y, np.ones_like(u)], axis=-1)
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    direction = np.asarray(light.direction, np.float32)
    direction = direction / np.linalg.norm(direction)
    diffuse = np.clip(normals @ direction, 0, None)
    halfway = direction + np.array([0, 0, 1], np.float32)
    highlight = np.clip(normals @ (halfway / np.linalg.norm(halfway)), 0, None) ** 24

    # albedo
    pores, blotches = _skin_texture(s.texture_seed, size)
    skin = np.asarray(s.skin, np.float32) * (1 + 0.035 * pores[..., None])
    skin = skin * (1 + 0.06 * blotches[..., None] * np.array([0.3, -0.6, -0.6], np.float32))
    albedo = skin
    albedo = _blend(albedo, s.lips, np.clip(lips * 1.6 - 0.3, 0, 1))
    sclera = np.clip(eyes * 2.2 - 1.1, 0, 1)
    albedo = _blend(albedo, (0.8, 0.78, 0.76), sclera)
    for side in (-1, 1):
        ex, ey = feature(side * s.eye_spacing * a, eye_y, 0.55)
        iris = gaussian(u, v, ex, ey, 0.045 * a, 0.045 * a)
        albedo = _blend(albedo, s.iris, np.clip(iris * 3 - 1.2, 0, 1) * sclera)
        bx, by = feature(side * s.eye_spacing * a, eye_y - 0.16 * b, 0.5)
        albedo = _blend(albedo, s.hair, 0.85 * np.clip(gaussian(u, v, bx, by, 0.17 * a, 0.03 * b) * 2 - 0.5, 0, 1))
    hair_edge = -s.hairline * b + 0.06 * b * np.cos(u / a * 3 + s.texture_seed % 7)
    hair = np.clip((hair_edge - v) / (0.05 * b), 0, 1) * np.clip((1.15 - radius2) * 10, 0, 1)
    hair_texture = 1 + 0.25 * np.sin(u / a * 40 + 3 * blotches) * pores.clip(-1, 1) * 0.5
    albedo = _blend(albedo, np.asarray(s.hair, np.float32) * hair_texture[..., None], hair)
    if s.beard:
        beard = np.clip((v - (mouth_y - 0.1 * b)) / (0.1 * b), 0, 1) * inside * s.beard
        albedo = _blend(albedo, np.asarray(s.hair, np.float32) * (1 + 0.3 * pores[..., None]), beard * 0.8)

    colour = np.asarray(light.colour, np.float32) * light.intensity
    shading = light.ambient + (1 - light.ambient) * diffuse
    face = albedo * shading[..., None] * colour + light.specular * highlight[..., None] * colour * (1 - hair[..., None])
    neck = np.clip((0.32 * a - np.abs(u - hu * 0.5)) / (0.03 * a), 0, 1) * np.clip((v - 0.5 * b) / 0.05, 0, 1)
    shirt = np.clip((v - (b * 1.15 + 0.25 * np.abs(u) ** 2)) / 0.04, 0, 1)
    backdrop = _blend(background, np.asarray(s.skin, np.float32) * 0.8 * colour * (light.ambient + 0.4), neck)
    backdrop = _blend(backdrop, np.asarray(s.lips, np.float32)[::-1] * 0.6 * colour * (light.ambient + 0.5), shirt)
    cover = np.clip(np.maximum(inside, hair), 0, 1)
    radiance = _blend(backdrop, face, cover)
    top = depth_field.max()
    depth = depth_field / top if top > 0 else depth_field
    return radiance.astype(np.float32), depth.astype(np.float32), (eyes > 0.2).astype(np.float32)


def _blend(base: np.ndarray, over: np.ndarray | tuple, weight: np.ndarray) -> np.ndarray:
    over = np.asarray(over, np.float32)
    return base + (over - base) * weight[..., None]
