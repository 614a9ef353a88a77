"""Tiny synthetic domains and a tiny preset, for tests that run the CLI end to end in seconds."""

from __future__ import annotations

from pathlib import Path

import yaml

from fasbench.benchmark import PACKAGED

TINY_DOMAIN = {"subjects": 4, "videos_per_type": 1, "frames_per_video": 2, "crop_size": 32, "depth_size": 4}
TINY_PRESET = {
    "description": "tests: 32 px, 1/16 width",
    "budget": 4,
    "eval_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "backbone": {"width": 0.0625, "input_size": 32},
}


def tiny_benchmark(folder: Path, preset: dict | None = None) -> Path:
    """The shipped registry.yaml with tiny synthetic domains and a ``tiny`` preset, written into ``folder``."""
    data = yaml.safe_load(PACKAGED.read_text())
    for letter, binding in data["suites"]["synthetic"]["domains"].items():
        binding["options"] = {"domain": letter, **TINY_DOMAIN}
    data["presets"]["tiny"] = preset or TINY_PRESET
    path = folder / "registry.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
