"""Planning a run before it trains: open every domain's frame cache and resolve every role of the protocol.

``plan_run`` is where a bad input known at a run's start stops it (a missing cache, a role left empty),
and where the run's identity gains the hash of the videos it will see.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fasbench import distributed
from fasbench.data.roles import ProtocolRoles, resolve_run_roles
from fasbench.errors import FasbenchError
from fasbench.plugins import PluginRegistry


def open_domains(
    config: Mapping[str, Any],
    plugins: PluginRegistry,
    cache_dir: str | None,
    progress: bool,
    opened: dict | None = None,
) -> dict:
    """The frame cache of every domain the run uses; generated datasets are prepared on demand.

    ``opened`` (path -> DomainCache) shares caches between the runs of one matrix."""
    from fasbench.data import cache_path, ensure_prepared, open_cache

    opened = {} if opened is None else opened
    caches = {}
    for letter, domain in config["domains"].items():
        dataset_class = plugins.get("datasets", domain["dataset"]).obj
        path = cache_path(cache_dir, domain["dataset"], domain["options"])
        if path not in opened:
            if getattr(dataset_class, "auto_prepare", False):
                ensure_prepared(domain["dataset"], domain["options"], cache_dir, plugins=plugins, progress=progress)
            opened[path] = open_cache(path)
        caches[letter] = opened[path]
    return caches


@dataclass(frozen=True)
class PlannedRun:
    """A run config whose domains are open and whose roles are resolved: what ``execute`` trains."""

    config: Mapping[str, Any]  # with data.videos_sha256: the run's identity says which videos it saw
    caches: Mapping[str, Any]
    roles: ProtocolRoles


def target_rows(config: Mapping[str, Any], caches: Mapping[str, Any], roles: ProtocolRoles) -> Any:
    """The target's scored frames: its target videos at the convention's ``eval_frames_per_video``."""
    return caches[config["target"]].video_rows(roles.target.target, config["data"]["eval_frames_per_video"])


def training_rows(config: Mapping[str, Any], caches: Mapping[str, Any], roles: ProtocolRoles) -> list[Any]:
    """Each source's training frames, in the order of ``config["sources"]``: what the runner trains on."""
    frames = config["data"]["train_frames_per_video"]
    return [caches[letter].video_rows(roles.sources[letter].train, frames) for letter in config["sources"]]


def plan_run(
    config: Mapping[str, Any],
    plugins: PluginRegistry,
    *,
    cache_dir: str | None = None,
    progress: bool = True,
    opened: dict | None = None,
) -> PlannedRun:
    """Open the run's domains and resolve every role: a role left empty stops here, before any training. The
    resolved videos' hash and each cache's content hash join the config: the run's identity says which videos
    it saw and exactly which frames (a cache re-prepared with other options is another run)."""
    if distributed.is_main():
        caches = open_domains(config, plugins, cache_dir, progress, opened)
    distributed.barrier()
    if not distributed.is_main():
        caches = open_domains(config, plugins, cache_dir, False, opened)
    roles = resolve_run_roles(config, caches)
    content = {letter: cache.manifest.get("content_sha256") for letter, cache in sorted(caches.items())}
    data = {**config["data"], "videos_sha256": roles.sha256, "caches_sha256": content}
    return PlannedRun({**config, "data": data, "weights": weights_identity(config["backbone"])}, caches, roles)


def weights_identity(backbone: Mapping[str, Any]) -> str:
    """Where the backbone's starting weights come from: "from scratch", "timm" (timm's download) or the SHA-256
    of the local file ``backbone.pretrained`` names (a run's identity includes it: other weights, another run)."""
    pretrained = backbone.get("pretrained")
    if pretrained is None:
        return "from scratch"
    if pretrained == "timm":
        return "timm"
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise FasbenchError(
            f"backbone.pretrained {str(path)!r} does not exist: fetch the weights file once (fasbench never downloads "
            "at run time) and give its path"
        )
    stat = path.stat()
    return f"sha256:{_file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}"


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file, once per (path, size, modification time): a matrix hashes its weights file once."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_learner(config: Mapping[str, Any], plugins: PluginRegistry, device: Any = None) -> Any:
    """The learner of a resolved run config, built exactly as the runner builds it (``fasbench.testing``
    checks learners through this very call)."""
    from fasbench.interfaces import Learner

    learner = plugins.build(
        "learners",
        {"type": config["learner"], "backbone": config["backbone"], "hparams": config["hparams"]},
        num_domains=len(config["sources"]),
        device=device if device is not None else config["device"],
        seed=config["seed"],
        plugins=plugins,
    )
    if not isinstance(learner, Learner):
        raise FasbenchError(
            f"learner {config['learner']!r} builds a {type(learner).__name__}, not a fasbench.interfaces.Learner"
        )
    return learner
