"""The options every real-dataset plugin takes: typed, checked, and coerced from command-line strings.

``fasbench prepare oulu --option every=3`` passes ``"3"``; options are coerced to their declared type
so that the same setting always yields the same ``cache_options`` (and so the same cache).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fasbench.errors import FasbenchError


@dataclass(frozen=True)
class Option:
    """One option: its type, default, whether None is allowed, and a one-line help."""

    kind: type
    default: Any
    help: str
    optional: bool = False
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None


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

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def coerce(dataset: str, name: str, option: Option, value: Any) -> Any:
    """``value`` as the option's type (strings from the command line are parsed); errors name the option."""
    where = f"dataset {dataset!r} option {name!r}"
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if option.optional:
            return None
        raise FasbenchError(f"{where} cannot be empty ({option.help})")
    try:
        if option.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if option.kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            result = int(value)
        elif option.kind is float:
            result = float(value)
        else:
            result = str(value)
    except (TypeError, ValueError) as error:
        raise FasbenchError(f"{where} must be {option.kind.__name__}, got {value!r} ({option.help})") from error
    if option.minimum is not None and result < option.minimum:
        raise FasbenchError(f"{where} must be >= {option.minimum}, got {result!r} ({option.help})")
    if option.choices is not None and result not in option.choices:
        raise FasbenchError(f"{where} must be one of {', '.join(map(str, option.choices))}; got {result!r}")
    return result


def resolve_options(dataset: str, specs: Mapping[str, Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every option of ``specs``: the ``given`` ones coerced, the rest at their defaults.

    ``every`` and ``frames_per_video`` are alternatives: giving ``every`` turns the default
    ``frames_per_video`` off; giving both is refused.
    """
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise FasbenchError(
            f"dataset {dataset!r} has no option {', '.join(map(repr, unknown))}; known: {', '.join(sorted(specs))}"
        )
    resolved = {name: coerce(dataset, name, spec, given.get(name, spec.default)) for name, spec in specs.items()}
    if resolved["every"] is not None:
        if given.get("frames_per_video") is not None:
            raise FasbenchError(f"dataset {dataset!r}: give either every or frames_per_video, not both")
        resolved["frames_per_video"] = None
    elif resolved["frames_per_video"] is None:
        raise FasbenchError(f"dataset {dataset!r}: frame sampling needs every=K or frames_per_video=N")
    if not 0 < resolved["center_fraction"] <= 1:
        raise FasbenchError(f"dataset {dataset!r} option 'center_fraction' must be in (0, 1]")
    return resolved
