"""Pseudo-depth labels for live faces (spoofs always get an all-zero map; the dataset base sees to that).

Built-in labellers (option ``depth``):

- ``prior`` (default, no dependency): a generic 3D face shape (ellipsoid head, nose, brow ridge, eye
  sockets, cheeks, lips) placed where the crop puts the face. Every crop is centred on the face square
  and scaled to it, so the map depends only on the crop margin: a coarse but consistent "this is a
  3D face" target, the role PRNet maps play in RF-Meta's reference code.
- ``folder``: precomputed maps (e.g. PRNet's, as RF-Meta's seed code ships in its ``depth/`` folders),
  one image per frame at ``depth_dir / depth_template.format(video_id=..., frame=...)``; the default
  template ``{video_id}/{frame}_depth.jpg`` follows RF-Meta's ``<frame>_depth.jpg`` naming. Besides
  ``{video_id}`` and ``{frame}`` a template may use ``{stem}`` (the video's file name without suffix) and
  ``{parent}`` (its folder's name): RF-Meta's OULU-NPU maps are ``{stem}/{frame}_depth.jpg``, its MSU-MFSD
  maps ``{parent}/{stem}/{frame}_depth.jpg``. The map must have been computed on the same face crop; it
  is only resized.

A third-party labeller is ``depth: package.module:Class`` (a ``DepthLabeller`` subclass).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fasbench_plugins.real.loading import resolve_component

from fasbench.errors import FasbenchError
from fasbench.interfaces import VideoRecord

# (centre x, centre y, sigma x, sigma y, height) of each feature in face-square units: the face square
# spans [-1, 1] on both axes, y points down, the eye line lies near y = -0.24 (see faces.EYE_LINE_HEIGHT).
_FEATURES = (
    (0.0, 0.10, 0.10, 0.28, 0.30),  # nose, bridge to tip
    (0.0, 0.30, 0.16, 0.10, 0.12),  # nose tip
    (0.0, -0.42, 0.50, 0.08, 0.10),  # brow ridge
    (-0.40, -0.22, 0.14, 0.10, -0.14),  # eye sockets
    (0.40, -0.22, 0.14, 0.10, -0.14),
    (-0.45, 0.20, 0.20, 0.18, 0.07),  # cheekbones
    (0.45, 0.20, 0.20, 0.18, 0.07),
    (0.0, 0.60, 0.24, 0.08, 0.07),  # lips
)
_HEAD = (0.0, 0.05, 0.88, 1.08)  # head ellipsoid: centre x, centre y, semi-axis x, semi-axis y


@lru_cache(maxsize=16)
def face_shape_prior(margin: float, size: int) -> np.ndarray:
    """The prior depth map (uint8 ``size`` x ``size``, 255 = nearest) for a crop with ``margin``."""
    half_extent = 1.0 + margin  # the crop spans [-half_extent, half_extent] face-square units
    axis = (np.arange(size) + 0.5) / size * 2 * half_extent - half_extent
    x, y = np.meshgrid(axis, axis)
    cx, cy, ax, ay = _HEAD
    inside = 1.0 - ((x - cx) / ax) ** 2 - ((y - cy) / ay) ** 2
    head = 0.7 * np.sqrt(np.clip(inside, 0.0, None))
    bumps = sum(h * np.exp(-0.5 * (((x - fx) / sx) ** 2 + ((y - fy) / sy) ** 2)) for fx, fy, sx, sy, h in _FEATURES)
    depth = np.where(inside > 0, np.clip(head + bumps * np.sqrt(np.clip(inside, 0, 1)), 0.0, None), 0.0)
    return np.round(255 * depth / depth.max()).astype(np.uint8)


class DepthLabeller(ABC):
    """Makes the depth map of one live face crop (one instance per worker process)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options
        self.size = int(options["depth_size"])

    @abstractmethod
    def depth(self, record: VideoRecord, frame_index: int, crop: np.ndarray) -> np.ndarray | None:
        """uint8 ``depth_size`` x ``depth_size`` map (255 = nearest) of a live crop, or None if there is none."""


class ShapePriorDepth(DepthLabeller):
    """The generic 3D face-shape prior, identical for every aligned crop."""

    def depth(self, record: VideoRecord, frame_index: int, crop: np.ndarray) -> np.ndarray:
        return face_shape_prior(float(self.options["margin"]), self.size)


class FolderDepth(DepthLabeller):
    """Precomputed depth images, one per frame, in ``depth_dir`` following ``depth_template``."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        if not options.get("depth_dir"):
            raise FasbenchError("depth=folder needs depth_dir=FOLDER (the precomputed depth maps)")
        self.folder = Path(str(options["depth_dir"])).expanduser()
        if not self.folder.is_dir():
            raise FasbenchError(f"depth_dir {self.folder} is not a folder")
        self.template = str(options["depth_template"])

    def path(self, record: VideoRecord, frame_index: int) -> Path:
        """Where the depth map of one frame is expected."""
        try:
            video = Path(record.path)
            fields = {"video_id": record.video_id, "stem": video.stem, "parent": video.parent.name}
            relative = self.template.format(**fields, frame=frame_index)
        except (KeyError, IndexError, ValueError) as error:
            raise FasbenchError(
                f"depth_template {self.template!r} is invalid ({error}); it may use {{video_id}}, {{stem}} "
                "(the video's file name without suffix), {parent} (its folder's name) and {frame}"
            ) from error
        return self.folder / relative

    def depth(self, record: VideoRecord, frame_index: int, crop: np.ndarray) -> np.ndarray | None:
        path = self.path(record, frame_index)
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
        if image is None:
            return None
        return cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)


DEPTH_LABELLERS: dict[str, type[DepthLabeller]] = {"prior": ShapePriorDepth, "folder": FolderDepth}


def make_depth_labeller(options: Mapping[str, Any]) -> DepthLabeller:
    """Build the labeller the ``depth`` option names (a built-in or ``module:Class``)."""
    labeller = resolve_component(str(options["depth"]), DEPTH_LABELLERS, "depth labeller")
    if not (isinstance(labeller, type) and issubclass(labeller, DepthLabeller)):
        raise FasbenchError(f"depth labeller {options['depth']!r} must be a subclass of {DepthLabeller.__qualname__}")
    return labeller(options)
