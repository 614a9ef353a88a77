"""The four synthetic domains, each a stand-in for one public dataset (see the package docstring).

A domain fixes its cameras, room lights, backgrounds, the skin-tone range of its subjects, how its
attackers' photos were taken, and its mix of print and replay instruments. They are chosen so that
the cues separating live from spoof differ between domains: e.g. spoofs are brighter than live faces in
I but darker in C and M, more saturated in O and M but less in C and I, with lifted blacks in O and I
but crushed ones in C and M; paper edges and bezels show in I but never in C; and C's low-quality
cameras blur away the halftone and moire that O's phones keep.
"""

from __future__ import annotations

from dataclasses import dataclass

from fasbench_plugins.synthetic.camera import Camera
from fasbench_plugins.synthetic.instruments import Colour, PrintInstrument, ReplayInstrument

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def _saturating(amount: float) -> tuple[tuple[float, float, float], ...]:
    """A colour matrix that scales saturation by ``1 + amount`` (rows sum to one: greys stay grey)."""
    off = -amount / 3
    on = 1 + 2 * amount / 3
    return ((on, off, off), (off, on, off), (off, off, on))


@dataclass(frozen=True)
class LightSetup:
    """A family of lights: ranges for the direction's x (either side) and y (z = 1 towards the camera), and the rest."""

    name: str
    x: tuple[float, float]  # magnitude; the side (sign) is drawn at random
    y: tuple[float, float]  # negative = from above
    colour: Colour
    intensity: tuple[float, float]
    ambient: tuple[float, float]
    specular: float = 0.12


@dataclass(frozen=True)
class Scene:
    """A background: base reflectance, per-video colour variation, texture and left-right gradient."""

    colour: Colour
    variation: float
    texture: float
    gradient: float


@dataclass(frozen=True)
class DomainProfile:
    letter: str
    stands_for: str
    cameras: tuple[Camera, ...]
    lights: tuple[LightSetup, ...]
    scenes: tuple[Scene, ...]
    tone_range: tuple[float, float]
    photo_light: LightSetup  # how the attackers' photos of the subjects were lit
    photo_backdrop: tuple[float, float]  # brightness range of the photos' backdrops relative to the face
    prints: tuple[PrintInstrument, ...]
    replays: tuple[ReplayInstrument, ...]
    motion: float  # frame-to-frame head / hand movement


def _camera(
    name: str,
    face_pixels: int,
    blur: float,
    noise: float,
    colour=IDENTITY,
    white=(1.0, 1.0, 1.0),
    contrast=1.0,
    jpeg=90,
) -> Camera:
    return Camera(name, face_pixels, blur, noise, noise * 0.6, colour, white, 2.2, contrast, 1.0, jpeg)


_OFFICE = (Scene((0.75, 0.72, 0.66), 0.05, 0.03, 0.1), Scene((0.62, 0.64, 0.66), 0.05, 0.02, 0.15))
_VARIED = (
    Scene((0.35, 0.3, 0.28), 0.15, 0.1, 0.2),
    Scene((0.55, 0.6, 0.45), 0.15, 0.08, 0.2),
    Scene((0.25, 0.3, 0.45), 0.15, 0.12, 0.3),
)

# fmt: off  (the profiles read as tables)
OULU = DomainProfile(
    letter="O",
    stands_for="OULU-NPU: six phones' front cameras at 1080p, three sessions of light, two printers, two displays",
    cameras=(
        _camera("phone_a", 400, 0.5, 0.008, jpeg=92),
        _camera("phone_b", 400, 0.6, 0.012, white=(1.08, 1.0, 0.9), contrast=1.1, jpeg=90),
        _camera("phone_c", 400, 0.7, 0.01, colour=_saturating(0.25), white=(0.97, 1.03, 0.97), jpeg=88),
    ),
    lights=(
        LightSetup("ceiling", (0.0, 0.2), (-0.9, -0.5), (1.0, 0.96, 0.88), (1.0, 1.2), (0.4, 0.5)),
        LightSetup("window", (0.0, 0.9), (-0.3, 0.1), (0.95, 0.97, 1.0), (0.8, 1.1), (0.2, 0.3)),
        LightSetup("frontal", (0.0, 0.1), (-0.2, 0.0), (0.92, 0.96, 1.05), (1.1, 1.3), (0.5, 0.6)),
    ),
    scenes=_OFFICE,
    tone_range=(0.0, 0.45),
    photo_light=LightSetup("studio", (0.0, 0.3), (-0.2, 0.1), (1.0, 0.98, 0.95), (1.1, 1.2), (0.45, 0.55)),
    photo_backdrop=(1.3, 2.0),
    prints=(
        PrintInstrument(
            "print_1",
            halftone_period=2.6,
            halftone=0.5,
            saturation=1.25,
            gamma=0.8,
            texture=0.05,
            paper=(0.93, 0.88, 0.78),
            ink=(0.12, 0.12, 0.13),
            gloss=0.05,
            reach=0.35,
            brightness=1.15,
        ),
        PrintInstrument(
            "print_2",
            halftone_period=3.2,
            saturation=1.3,
            gamma=0.8,
            paper=(0.94, 0.9, 0.82),
            ink=(0.16, 0.16, 0.17),
            gloss=0.25,
            bend=0.35,
            reach=0.35,
            brightness=1.25,
        ),
    ),
    replays=(
        ReplayInstrument(
            "replay_1",
            pixel_pitch=2.4,
            grid=0.35,
            gamma=0.85,
            contrast=0.9,
            saturation=1.2,
            black=(0.07, 0.07, 0.1),
            tint=(0.85, 0.92, 1.1),
            brightness=1.1,
            reach=0.5,
        ),
        ReplayInstrument(
            "replay_2",
            pixel_pitch=1.7,
            grid=0.25,
            gamma=0.85,
            saturation=1.25,
            black=(0.06, 0.06, 0.08),
            tint=(0.88, 0.95, 1.1),
            brightness=1.15,
            glare=0.15,
        ),
    ),
    motion=0.01,
)

CASIA = DomainProfile(
    letter="C",
    stands_for="CASIA-FASD: low, normal and high quality cameras, varied scenes, warped and cut photos, an iPad",
    cameras=(
        _camera("low", 56, 1.3, 0.03, colour=_saturating(-0.2), white=(0.92, 1.0, 1.08), contrast=0.9, jpeg=60),
        _camera("normal", 100, 0.9, 0.02, colour=_saturating(-0.1), white=(0.95, 1.0, 1.05), jpeg=72),
        _camera("high", 240, 0.6, 0.012, white=(0.97, 1.0, 1.02), contrast=1.05, jpeg=85),
    ),
    lights=(
        LightSetup("indoor", (0.0, 0.6), (-0.7, 0.0), (1.0, 0.88, 0.72), (0.9, 1.2), (0.3, 0.45)),
        LightSetup("lamp", (0.3, 0.9), (-0.5, 0.0), (1.0, 0.8, 0.6), (0.9, 1.1), (0.2, 0.3)),
    ),
    scenes=_VARIED,
    tone_range=(0.25, 0.7),
    photo_light=LightSetup("flash", (0.0, 0.05), (-0.1, 0.0), (1.0, 1.0, 1.0), (1.2, 1.4), (0.5, 0.6), 0.25),
    photo_backdrop=(0.3, 0.7),
    prints=(
        PrintInstrument(
            "print_warped",
            halftone=0.2,
            saturation=0.7,
            gamma=1.6,
            paper=(0.8, 0.74, 0.62),
            ink=(0.02, 0.02, 0.02),
            gloss=0.2,
            bend=0.6,
            brightness=0.8,
        ),
        PrintInstrument(
            "print_cut",
            halftone=0.2,
            saturation=0.7,
            gamma=1.6,
            paper=(0.78, 0.72, 0.62),
            ink=(0.02, 0.02, 0.02),
            gloss=0.15,
            brightness=0.85,
            cut_eyes=True,
        ),
    ),
    replays=(
        ReplayInstrument(
            "replay",
            gamma=1.6,
            contrast=1.15,
            saturation=0.75,
            black=(0.01, 0.01, 0.01),
            tint=(1.3, 1.0, 0.65),
            brightness=0.75,
            glare=0.25,
        ),
    ),
    motion=0.02,
)

REPLAY = DomainProfile(
    letter="I",
    stands_for="Idiap Replay-Attack: one 320x240 laptop webcam, controlled and adverse light, hand-held and "
    "fixed prints, iPhone and iPad replays",
    cameras=(
        _camera("webcam", 90, 1.0, 0.025, colour=_saturating(0.1), white=(0.95, 1.06, 0.95), contrast=1.2, jpeg=80),
    ),
    lights=(
        LightSetup("controlled", (0.0, 0.1), (-0.3, -0.1), (0.92, 0.97, 1.05), (1.1, 1.2), (0.55, 0.65), 0.08),
        LightSetup("adverse", (0.6, 1.0), (-0.3, 0.2), (1.0, 0.95, 0.85), (0.9, 1.2), (0.15, 0.25), 0.2),
    ),
    scenes=(Scene((0.85, 0.87, 0.9), 0.02, 0.0, 0.05), *_VARIED),
    tone_range=(0.0, 0.6),
    photo_light=LightSetup("overhead", (0.3, 0.6), (-1.0, -0.7), (1.0, 1.0, 1.0), (1.1, 1.3), (0.1, 0.2), 0.2),
    photo_backdrop=(0.3, 0.7),
    prints=(
        PrintInstrument(
            "print",
            halftone_period=2.2,
            halftone=0.5,
            saturation=0.55,
            gamma=0.8,
            texture=0.04,
            paper=(0.92, 0.93, 0.95),
            ink=(0.16, 0.16, 0.17),
            reach=0.6,
            brightness=1.25,
        ),
    ),
    replays=(
        ReplayInstrument(
            "replay_mobile",
            pixel_pitch=1.4,
            grid=0.35,
            gamma=0.9,
            saturation=0.8,
            black=(0.08, 0.08, 0.11),
            tint=(0.85, 0.9, 1.1),
            brightness=1.1,
            glare=0.25,
            reach=0.8,
            bezel_colour=(0.03, 0.03, 0.03),
        ),
        ReplayInstrument(
            "replay_highdef",
            pixel_pitch=2.2,
            gamma=0.85,
            contrast=0.95,
            saturation=0.85,
            black=(0.07, 0.07, 0.09),
            tint=(0.9, 0.95, 1.08),
            brightness=1.05,
            glare=0.35,
            reach=0.3,
        ),
    ),
    motion=0.015,
)

MSU = DomainProfile(
    letter="M",
    stands_for="MSU-MFSD: a laptop webcam and an Android phone, one office, large A3 photo prints, iPad and "
    "iPhone replays",
    cameras=(
        _camera("laptop", 160, 0.8, 0.015, white=(1.1, 1.0, 0.85), contrast=1.05, jpeg=85),
        _camera("android", 200, 0.6, 0.012, colour=_saturating(0.35), white=(1.04, 1.0, 0.92), jpeg=88),
    ),
    lights=(LightSetup("office", (0.0, 0.4), (-0.6, -0.2), (1.0, 0.95, 0.88), (1.0, 1.2), (0.4, 0.5)),),
    scenes=(Scene((0.8, 0.78, 0.72), 0.04, 0.02, 0.1),),
    tone_range=(0.1, 0.9),
    photo_light=LightSetup("skylight", (0.4, 0.8), (-1.0, -0.7), (1.0, 0.97, 0.92), (1.1, 1.3), (0.1, 0.2), 0.2),
    photo_backdrop=(1.3, 2.0),
    prints=(
        PrintInstrument(
            "print",
            halftone_period=4.0,
            halftone=0.1,
            saturation=1.4,
            gamma=1.6,
            texture=0.01,
            paper=(0.82, 0.76, 0.66),
            ink=(0.02, 0.02, 0.02),
            gloss=0.2,
            bend=0.15,
            brightness=0.85,
        ),
    ),
    replays=(
        ReplayInstrument(
            "replay_ipad",
            gamma=1.6,
            contrast=1.2,
            saturation=1.3,
            black=(0.01, 0.01, 0.01),
            tint=(1.2, 1.0, 0.75),
            brightness=0.8,
            glare=0.3,
        ),
        ReplayInstrument(
            "replay_iphone",
            pixel_pitch=1.3,
            grid=0.35,
            gamma=1.6,
            contrast=1.15,
            saturation=1.3,
            black=(0.01, 0.01, 0.015),
            tint=(1.15, 1.0, 0.8),
            brightness=0.85,
            glare=0.2,
            reach=0.6,
            bezel_colour=(0.7, 0.7, 0.72),
        ),
    ),
    motion=0.015,
)

# fmt: on

DOMAINS: dict[str, DomainProfile] = {profile.letter: profile for profile in (OULU, CASIA, REPLAY, MSU)}
