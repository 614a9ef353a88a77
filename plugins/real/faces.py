"""Where the face is in a frame, and the aligned square crop around it.

Three built-in ways to find faces (option ``face``), never a silent fallback from one to another:

- ``annotations``: the dataset's own face annotations (Replay-Attack's face-location files, OULU-NPU's
  per-frame eye positions, MSU-MFSD's ``.face`` files), or any folder of them given as ``face_dir``.
- ``dlib``: dlib's HOG frontal-face detector (offline, weights inside the package; optional extra
  ``pip install 'fasbench[faces]'``), only when asked for.
- ``center``: the central square of the frame, for videos known to be framed on the face.

A third-party finder is ``face: package.module:Class`` (a ``FaceFinder`` subclass).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from fasbench_plugins.real.loading import resolve_component

from fasbench.errors import FasbenchError
from fasbench.interfaces import VideoRecord

if TYPE_CHECKING:
    from fasbench_plugins.real.base import VideoDataset

# Face box from the eye positions: side = EYE_BOX_SCALE x inter-ocular distance, the eye line at
# EYE_LINE_HEIGHT of the box from its top (typical of detector boxes that span brows to chin).
EYE_BOX_SCALE = 2.2
EYE_LINE_HEIGHT = 0.38
DETECT_MAX_SIDE = 640  # frames are shrunk to this before running a detector (speed; faces stay large)

FaceLookup = Callable[[int, np.ndarray], "FaceGeometry | None"]


@dataclass(frozen=True)
class FaceGeometry:
    """A square face region: centre, side (pixels) and in-plane tilt of the eye line (degrees, y down)."""

    cx: float
    cy: float
    size: float
    angle: float = 0.0

    @classmethod
    def from_box(cls, x: float, y: float, width: float, height: float) -> FaceGeometry:
        """The square around a box's centre with the box's larger side."""
        return cls(x + width / 2, y + height / 2, float(max(width, height)))

    @classmethod
    def from_eyes(cls, first: tuple[float, float], second: tuple[float, float]) -> FaceGeometry:
        """The face square implied by the two eye centres (in either order), tilted with the eye line."""
        (lx, ly), (rx, ry) = sorted([first, second])
        distance = math.hypot(rx - lx, ry - ly)
        angle = math.atan2(ry - ly, rx - lx)
        size = EYE_BOX_SCALE * distance
        down = (0.5 - EYE_LINE_HEIGHT) * size  # from the eye line to the box centre, along the face's "down"
        cx = (lx + rx) / 2 - math.sin(angle) * down
        cy = (ly + ry) / 2 + math.cos(angle) * down
        return cls(cx, cy, size, math.degrees(angle))


def crop_face(
    image: np.ndarray, face: FaceGeometry, *, margin: float, size: int, align: bool = True
) -> np.ndarray | None:
    """The ``size`` x ``size`` crop of side ``face.size * (1 + margin)`` around the face, eyes levelled.

    Parts outside the frame are black. Large downscales are area-averaged first (no aliasing).
    Returns None when the region lies entirely outside the frame.
    """
    side = face.size * (1.0 + margin)
    if side <= 1:
        return None
    height, width = image.shape[:2]
    reach = side * math.sqrt(0.5) + 1  # covers the square at any rotation
    x0, y0 = max(0, math.floor(face.cx - reach)), max(0, math.floor(face.cy - reach))
    x1, y1 = min(width, math.ceil(face.cx + reach)), min(height, math.ceil(face.cy + reach))
    if x0 >= x1 or y0 >= y1:
        return None
    region = image[y0:y1, x0:x1]
    scale = size / side
    pre_x = pre_y = 1.0
    if scale < 1.0:  # shrink with area averaging; the warp then only rotates and shifts
        shrunk_w, shrunk_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
        pre_x, pre_y = shrunk_w / (x1 - x0), shrunk_h / (y1 - y0)
        region = cv2.resize(region, (shrunk_w, shrunk_h), interpolation=cv2.INTER_AREA)
    theta = math.radians(face.angle) if align else 0.0
    cos, sin = math.cos(theta), math.sin(theta)
    linear = scale * np.array([[cos, sin], [-sin, cos]])  # maps the eye line onto the horizontal
    shift = np.array([size / 2, size / 2]) - linear @ np.array([face.cx, face.cy])
    # continuous frame coordinates -> region pixel indices: p = (q + 0.5) / pre + origin
    matrix = linear @ np.diag([1 / pre_x, 1 / pre_y])
    offset = linear @ (np.array([x0, y0]) + 0.5 / np.array([pre_x, pre_y])) + shift - 0.5
    return cv2.warpAffine(
        region,
        np.hstack([matrix, offset[:, None]]).astype(np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


# -- annotation files ------------------------------------------------------------------------------
_SEPARATORS = re.compile(r"[,\s]+")


def _rows(path: Path) -> list[list[float]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = [f for f in _SEPARATORS.split(line.strip()) if f]
        if not fields:
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError as error:
            raise ValueError(f"{path}:{number}: expected numbers, got {line.strip()!r}") from error
        if len(values) < 5:
            raise ValueError(f"{path}:{number}: expected frame and 4 coordinates, got {line.strip()!r}")
        rows.append(values)
    if rows and min(r[0] for r in rows) == 1:  # a file that counts frames from 1
        rows = [[r[0] - 1, *r[1:]] for r in rows]
    return rows


def read_box_file(path: Path, *, corners: bool = False) -> dict[int, FaceGeometry]:
    """Per-frame boxes ``frame x y width height`` (``frame x1 y1 x2 y2`` with ``corners``); empty boxes mean no face."""
    track = {}
    for frame, a, b, c, d, *_ in _rows(path):
        width, height = (c - a, d - b) if corners else (c, d)
        if width > 1 and height > 1:
            track[int(frame)] = FaceGeometry.from_box(a, b, width, height)
    return track


def read_eye_file(path: Path) -> dict[int, FaceGeometry]:
    """Per-frame eye centres ``frame x1 y1 x2 y2`` (OULU-NPU); all-zero rows mean no face."""
    track = {}
    for frame, x1, y1, x2, y2, *_ in _rows(path):
        if math.hypot(x2 - x1, y2 - y1) > 2:
            track[int(frame)] = FaceGeometry.from_eyes((x1, y1), (x2, y2))
    return track


def nearest_face(track: Mapping[int, FaceGeometry], index: int, gap: int) -> FaceGeometry | None:
    """The annotation of frame ``index``, else of the nearest frame at most ``gap`` frames away."""
    for distance in range(gap + 1):
        for candidate in (index - distance, index + distance):
            if candidate in track:
                return track[candidate]
    return None


# -- finders ---------------------------------------------------------------------------------------
class FaceFinder(ABC):
    """How the face of each sampled frame of a video is found (one instance per worker process)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    @abstractmethod
    def for_video(self, dataset: VideoDataset, record: VideoRecord) -> FaceLookup:
        """A function (frame index, RGB frame) -> FaceGeometry or None (no face in that frame)."""


class AnnotationFaces(FaceFinder):
    """The dataset's own per-frame annotations; a frame without one borrows the nearest within ``face_gap``."""

    def for_video(self, dataset: VideoDataset, record: VideoRecord) -> FaceLookup:
        track = dataset.load_annotations(record)
        gap = int(self.options["face_gap"])
        return lambda index, image: nearest_face(track, index, gap)


class DlibFaces(FaceFinder):
    """dlib's HOG frontal-face detector on each frame (the largest face wins)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        try:
            import dlib
        except ImportError as error:
            raise FasbenchError(
                "face=dlib needs the optional offline detector: pip install 'fasbench[faces]' (dlib-bin); "
                "or choose face=annotations or face=center"
            ) from error
        self.detector = dlib.get_frontal_face_detector()

    def for_video(self, dataset: VideoDataset, record: VideoRecord) -> FaceLookup:
        return self.detect

    def detect(self, index: int, image: np.ndarray) -> FaceGeometry | None:
        """The largest face dlib finds in ``image`` (RGB), or None."""
        height, width = image.shape[:2]
        shrink = min(1.0, DETECT_MAX_SIDE / max(height, width))
        small = image if shrink == 1.0 else cv2.resize(image, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
        boxes = self.detector(np.ascontiguousarray(small), 1)
        if len(boxes) == 0:
            return None
        box = max(boxes, key=lambda b: b.width() * b.height())
        return FaceGeometry.from_box(
            box.left() / shrink, box.top() / shrink, box.width() / shrink, box.height() / shrink
        )


class CenterFaces(FaceFinder):
    """The central square of each frame, ``center_fraction`` of its shorter side (no detection at all)."""

    def for_video(self, dataset: VideoDataset, record: VideoRecord) -> FaceLookup:
        fraction = float(self.options["center_fraction"])

        def center(index: int, image: np.ndarray) -> FaceGeometry:
            height, width = image.shape[:2]
            return FaceGeometry(width / 2, height / 2, fraction * min(height, width))

        return center


FACE_FINDERS: dict[str, type[FaceFinder]] = {"annotations": AnnotationFaces, "dlib": DlibFaces, "center": CenterFaces}


def make_face_finder(options: Mapping[str, Any]) -> FaceFinder:
    """Build the finder the ``face`` option names (a built-in or ``module:Class``)."""
    finder = resolve_component(str(options["face"]), FACE_FINDERS, "face finder")
    if not (isinstance(finder, type) and issubclass(finder, FaceFinder)):
        raise FasbenchError(f"face finder {options['face']!r} must be a subclass of {FaceFinder.__qualname__}")
    return finder(options)
