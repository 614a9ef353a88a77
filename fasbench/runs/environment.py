"""What a run record says about where it ran: versions, device, git revision of fasbench."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import fasbench
from fasbench.plugins import PluginRegistry


def git_revision(path: Path | None = None) -> dict[str, Any] | None:
    """The commit and dirty flag of the git checkout fasbench runs from; None for an installed copy."""
    where = path or Path(fasbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def describe_environment(device: str, plugins: PluginRegistry) -> dict[str, Any]:
    """Versions of everything that can change a number, and the device's name."""
    import h5py
    import numpy
    import timm
    import torch

    info: dict[str, Any] = {
        "fasbench": fasbench.__version__,
        "git": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "timm": timm.__version__,
        "h5py": h5py.__version__,
        "plugins": plugins.versions(),
        "device": device,
        "threads": torch.get_num_threads(),
    }
    if device == "cuda":
        info["cuda"] = torch.version.cuda
        info["gpu"] = torch.cuda.get_device_name()
        info["cudnn"] = torch.backends.cudnn.version()
    return info
