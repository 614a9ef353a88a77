"""The options every real-dataset plugin takes, declared with the core's ``fasbench.options.Option``.

``fasbench prepare oulu --option every=3`` passes ``"3"``; options are coerced to their declared type
so that the same setting always yields the same ``cache_options`` (and so the same cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fasbench.errors import FasbenchError
from fasbench.options import Option, resolve_options

COMMON_OPTIONS: dict[str, Option] = {
    "frames_per_video": Option(int, 10, "N frames evenly spaced per video (default 10)", optional=True, minimum=1),
    "every": Option(int, None, "keep every k-th frame instead of frames_per_video", optional=True, minimum=1),
    "crop_size": Option(int, 256, "side of the square face crop in pixels", minimum=8),
    "margin": Option(float, 0.2, "context around the face square: crop side = face side x (1 + margin)", minimum=0),
    "align": Option(bool, True, "rotate crops so that the eyes are level (where eye positions are known)"),
    "face": Option(str, "annotations", "how faces are found: annotations, dlib, center, or module:Class"),
    "face_dir": Option(str, None, "folder of face annotation files mirroring the video tree", optional=True),
    "face_gap": Option(int, 5, "a frame without annotation borrows the nearest one this many frames away", minimum=0),
    "center_fraction": Option(float, 0.8, "face=center: face square side as a fraction of the shorter side"),
    "depth": Option(str, "prior", "live depth labels: prior (3D face-shape prior), folder, or module:Class"),
    "depth_dir": Option(str, None, "depth=folder: folder of precomputed depth maps", optional=True),
    "depth_template": Option(str, "{video_id}/{frame}_depth.jpg", "depth=folder: file of one frame's map"),
    "depth_size": Option(int, 32, "side of the depth map in pixels", minimum=1),
}


def resolve_dataset_options(dataset: str, specs: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``specs`` (``fasbench.options.resolve_options``), then the rules between them.

    ``every`` and ``frames_per_video`` are alternatives: giving ``every`` turns the default
    ``frames_per_video`` off; giving both is refused.
    """
    resolved = resolve_options(f"dataset {dataset!r}", specs, given)
    if resolved["every"] is not None:
        if given.get("frames_per_video") is not None:
            raise FasbenchError(f"dataset {dataset!r}: give either every or frames_per_video, not both")
        resolved["frames_per_video"] = None
    elif resolved["frames_per_video"] is None:
        raise FasbenchError(f"dataset {dataset!r}: frame sampling needs every=K or frames_per_video=N")
    if not 0 < resolved["center_fraction"] <= 1:
        raise FasbenchError(f"dataset {dataset!r} option 'center_fraction' must be in (0, 1]")
    return resolved
