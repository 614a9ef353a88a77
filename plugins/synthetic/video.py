"""Rendering one synthetic video: its scene, then each frame through the domain's camera.

Everything is drawn from generators keyed by (seed, domain, subject, kind, take, purpose), never from a
shared stream, so a video renders identically whichever process renders it and in whatever order.
A live video is rendered once and moved rigidly per frame (hand-held camera and head jitter); a spoof
video re-presents the attacker's photo on its instrument at each frame's hand-held placement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
from fasbench_plugins.synthetic.camera import Camera, capture
from fasbench_plugins.synthetic.domains import DomainProfile, LightSetup, Scene
from fasbench_plugins.synthetic.face import Light, Pose, Subject, render_face
from fasbench_plugins.synthetic.imaging import grid, resize, sample, smooth_noise, to_uint8
from fasbench_plugins.synthetic.instruments import draw_placement, draw_surface, present_print, present_replay

CALIBRATION_SIZE = 32  # resolution at which spoof and live face brightness are compared
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def rng(*keys: int | str) -> np.random.Generator:
    """A generator for one named piece of the suite."""
    return np.random.default_rng([k if isinstance(k, int) else int.from_bytes(k.encode(), "little") for k in keys])


def draw_light(setup: LightSetup, generator: np.random.Generator) -> Light:
    return Light(
        direction=(generator.uniform(*setup.x) * generator.choice([-1, 1]), generator.uniform(*setup.y), 1.0),
        colour=setup.colour,
        intensity=generator.uniform(*setup.intensity),
        ambient=generator.uniform(*setup.ambient),
        specular=setup.specular,
    )


def draw_pose(generator: np.random.Generator) -> Pose:
    """A head pose as a face detector's crop leaves it: roughly centred and scaled, free in yaw and pitch."""
    x, y, scale, roll, yaw, pitch = generator.uniform(-1, 1, 6) * np.array([0.04, 0.04, 0.1, 0.08, 0.3, 0.15])
    return Pose(x, 0.04 + y, 1 + scale, roll, yaw, pitch)


def draw_background(scene: Scene, light: Light, generator: np.random.Generator, size: int) -> np.ndarray:
    colour = np.clip(np.asarray(scene.colour, np.float32) * (1 + generator.uniform(-1, 1, 3) * scene.variation), 0, 1)
    x, _ = grid(size)
    shade = 1 + scene.gradient * x * generator.choice([-1, 1]) + scene.texture * smooth_noise(generator, size, 8)
    radiance = colour * shade[..., None] * np.asarray(light.colour, np.float32) * light.intensity
    return radiance * (light.ambient + (1 - light.ambient) * 0.7)


@dataclass(frozen=True)
class VideoSetup:
    """What a record fixes about its video."""

    profile: DomainProfile
    subject: Subject
    kind: str  # live, print or replay
    attack_type: str
    camera: Camera
    light_setup: LightSetup
    scene: Scene
    keys: tuple  # (seed, domain, subject index, kind, take)
    size: int
    depth_size: int
    frames: int


def _face_luminance(radiance: np.ndarray, face: np.ndarray) -> float:
    return float((resize(radiance, CALIBRATION_SIZE) @ LUMA)[face].mean())


def _jitter(setup: VideoSetup, index: int, generator: np.random.Generator) -> np.ndarray:
    """(dx, dy, droll) of frame ``index``: a slow sway plus a little shake."""
    phase = 2 * np.pi * index / max(setup.frames, 2) + np.arange(3)
    return setup.profile.motion * np.sin(phase) + generator.normal(0, 0.003, 3)


def _moved(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` moved rigidly in the image plane by (dx, dy, droll)."""
    x, y = grid(image.shape[0])
    dx, dy, roll = shift
    cos_roll, sin_roll = np.cos(roll), np.sin(roll)
    source_x = (x - dx) * cos_roll + (y - dy) * sin_roll
    source_y = -(x - dx) * sin_roll + (y - dy) * cos_roll
    return sample(image, source_x, source_y)


def render_video(setup: VideoSetup) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(frame index, uint8 RGB crop, uint8 depth map) for every frame of the video."""
    video = rng(*setup.keys, "video")
    light = draw_light(setup.light_setup, video)
    background = draw_background(setup.scene, light, video, setup.size)
    base = draw_pose(video)
    if setup.kind == "live":
        radiance, depth, _ = render_face(setup.subject, base, light, background, setup.size)
        layers = np.concatenate([radiance, depth[..., None]], axis=-1)
        for index in range(setup.frames):
            frame = rng(*setup.keys, "frame", index)
            moved = _moved(layers, _jitter(setup, index, frame))
            depth_map = to_uint8(np.clip(resize(moved[..., 3], setup.depth_size), 0, 1))
            yield index, capture(moved[..., :3], setup.camera, frame, setup.size), depth_map
        return
    attack = _Attack(setup, light, background, base, video)
    no_depth = np.zeros((setup.depth_size, setup.depth_size), np.uint8)
    for index in range(setup.frames):
        frame = rng(*setup.keys, "frame", index)
        yield index, capture(attack.render(_jitter(setup, index, frame)), setup.camera, frame, setup.size), no_depth


class _Attack:
    """One attack video: the attacker's photo, the instrument, its placement, and a brightness calibration.

    The medium is scaled so that the spoof face's luminance is ``instrument.brightness`` times the live
    face's under the same room light: that ratio, set per instrument, decides whether spoofs look
    brighter or darker than live faces in a domain.
    """

    def __init__(self, setup: VideoSetup, light: Light, background: np.ndarray, base: Pose, video) -> None:
        profile, size = setup.profile, setup.size
        self.instrument = next(i for i in (*profile.prints, *profile.replays) if i.name == setup.attack_type)
        self.light, self.background = light, background
        photo_light = draw_light(profile.photo_light, video)
        photo_pose = draw_pose(video)  # framed like the live videos: the face detector normalises the crop
        backdrop = profile.scenes[int(video.integers(len(profile.scenes)))]
        photo_background = draw_background(backdrop, photo_light, video, size) * video.uniform(*profile.photo_backdrop)
        photo, photo_depth, eye_mask = render_face(setup.subject, photo_pose, photo_light, photo_background, size)
        exposure = video.uniform(0.3, 0.5) / max(float((photo @ LUMA)[photo_depth > 0.3].mean()), 1e-3)
        self.photo = np.clip(photo * exposure, 0, 1) ** (1 / 2.2)  # the photo camera exposes for the face
        self.placement = draw_placement(video, self.instrument.reach)
        self.surface = draw_surface(video, size)
        small_background = resize(background, CALIBRATION_SIZE)
        live, depth, _ = render_face(setup.subject, base, light, small_background, CALIBRATION_SIZE)
        self.face = depth > 0.3
        self.live_luminance = _face_luminance(live, self.face)
        self.eyes = None
        if getattr(self.instrument, "cut_eyes", False):  # the attacker's own eyes behind the holes
            behind = replace(base, yaw=0.0, pitch=0.0)
            self.eyes = (render_face(setup.subject, behind, light, background, size)[0], eye_mask)
        self.gain: float | None = None

    def render(self, shift: np.ndarray) -> np.ndarray:
        placement = self.placement
        moved = replace(placement, x=placement.x + shift[0], y=placement.y + shift[1], roll=placement.roll + shift[2])
        if self.instrument.kind == "print":
            radiance, coverage = present_print(self.photo, self.instrument, self.light, moved, self.surface, self.eyes)
        else:
            radiance, coverage = present_replay(self.photo, self.instrument, self.light, moved, self.surface)
        if self.gain is None:  # calibrated on the first frame, then fixed for the video
            self.gain = (
                self.instrument.brightness * self.live_luminance / max(_face_luminance(radiance, self.face), 1e-4)
            )
        return self.background + (radiance * self.gain - self.background) * coverage[..., None]
