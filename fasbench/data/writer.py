"""Writing a complete frame cache file in one go, atomically, with a content hash.

Called by ``prepare`` once every video is prepared: the file is written under a temporary name beside
the target, marked complete, fsynced and renamed, so a reader never meets a half-written cache.
Nothing time-dependent is stored, so the same content gives a byte-identical file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fasbench import atomic
from fasbench.data.cache import FORMAT, FORMAT_VERSION, canonical_json, content_digest, frame_checksum
from fasbench.errors import FasbenchError
from fasbench.interfaces import VideoRecord

COMPRESSIONS = (None, "lzf", "gzip")
# The tables carry HDF5's Fletcher-32 checksum per chunk (verified by HDF5 on every read); the pixels carry
# an XXH3-64 digest per frame (``frames/checksum``, over the image then the depth bytes) that
# ``DomainCache.read`` verifies the first time a process reads the frame: a damaged frame is an error naming
# the file, never a silently different number, at a cost a training run does not notice
# (benchmarks/bench_guards.py; HDF5's Fletcher-32 on the pixels would cost 50 % of every read).
CHECKED = {"fletcher32": True, "track_times": False}
RAW = {"track_times": False}
DEPTH_CHUNK = 64  # frames per depth chunk (depth maps are small)


class VideoFrames(NamedTuple):
    """The prepared frames of one video, already at the cache's sizes."""

    images: np.ndarray  # uint8 n x S x S x 3
    depths: np.ndarray  # uint8 n x d x d
    indices: np.ndarray  # int64 n, frame index in the source video


def _compression_arguments(compression: str | None) -> dict[str, Any]:
    if compression not in COMPRESSIONS:
        raise FasbenchError(f"unknown cache compression {compression!r}; choose one of {COMPRESSIONS}")
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4}
    return {"compression": compression} if compression else {}


def _group(file: Any, name: str) -> Any:
    """A group without creation/modification times (they would make identical caches differ in bytes)."""
    import h5py

    properties = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    properties.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(file.id, name.encode(), gcpl=properties))


def _strings(group: Any, name: str, values: Sequence[str]) -> None:
    """Fixed-length UTF-8 (variable-length strings cannot carry HDF5's checksum filter)."""
    import h5py

    encoded = [value.encode("utf-8") for value in values]
    width = max(1, *(len(value) for value in encoded))
    data = np.asarray(encoded, dtype=f"S{width}").astype(h5py.string_dtype("utf-8", width))
    group.create_dataset(name, data=data, **CHECKED)


def _numbers(group: Any, name: str, values: np.ndarray) -> None:
    group.create_dataset(name, data=values, **CHECKED)


def write_cache(
    target: str | Path,
    videos: Sequence[tuple[VideoRecord, int]],
    load: Callable[[int], VideoFrames],
    *,
    crop_size: int,
    depth_size: int,
    manifest: Mapping[str, Any],
    compression: str | None = None,
) -> str:
    """Write ``videos`` (record, frame count), whose frames ``load(position)`` returns, to ``target`` atomically.

    Returns the content hash (SHA-256 of the video table, the sizes and every frame's bytes, in order),
    which is also stored in the manifest as ``content_sha256``.
    """
    import h5py

    compression_arguments = _compression_arguments(compression)
    total = sum(count for _, count in videos)
    starts = np.concatenate([[0], np.cumsum([count for _, count in videos])]).astype(np.int64)
    table = {
        "video_id": [r.video_id for r, _ in videos],
        "label": [r.label for r, _ in videos],
        "attack_type": [r.attack_type for r, _ in videos],
        "subject": [r.subject for r, _ in videos],
        "split": [r.split for r, _ in videos],
        "path": [r.path or "" for r, _ in videos],
        "meta": [canonical_json(dict(r.meta)) for r, _ in videos],
        "start": starts[:-1].tolist(),
        "count": [count for _, count in videos],
    }
    digest = content_digest(table, crop_size, depth_size)
    with atomic.atomic_path(target) as temporary, h5py.File(temporary, "w", track_order=False) as file:
        images = file.create_dataset(
            "images",
            (total, crop_size, crop_size, 3),
            np.uint8,
            chunks=(1, crop_size, crop_size, 3),
            **RAW,
            **compression_arguments,
        )
        depths = file.create_dataset(
            "depths",
            (total, depth_size, depth_size),
            np.uint8,
            chunks=(max(1, min(DEPTH_CHUNK, total)), depth_size, depth_size),
            **RAW,
        )
        frame_video = np.repeat(np.arange(len(videos), dtype=np.int32), table["count"])
        frame_index = np.empty(total, np.int64)
        checksums = np.empty(total, np.uint64)
        for position, (record, count) in enumerate(videos):
            frames = load(position)
            if len(frames.images) != count:
                raise FasbenchError(
                    f"video {record.video_id!r}: expected {count} prepared frames, found {len(frames.images)}"
                )
            start, stop = int(starts[position]), int(starts[position + 1])
            images[start:stop] = frames.images
            depths[start:stop] = frames.depths
            frame_index[start:stop] = frames.indices
            checksums[start:stop] = [frame_checksum(i, d) for i, d in zip(frames.images, frames.depths, strict=True)]
            for array in (frames.images, frames.depths, frames.indices.astype(np.int64)):
                digest.update(np.ascontiguousarray(array).tobytes())
        frames_group = _group(file, "frames")
        _numbers(frames_group, "video", frame_video)
        _numbers(frames_group, "index", frame_index)
        _numbers(frames_group, "checksum", checksums)
        videos_group = _group(file, "videos")
        for name in ("video_id", "attack_type", "subject", "split", "path", "meta"):
            _strings(videos_group, name, table[name])
        _numbers(videos_group, "label", np.asarray(table["label"], np.int8))
        _numbers(videos_group, "start", starts[:-1])
        _numbers(videos_group, "count", np.asarray(table["count"], np.int64))
        content_hash = digest.hexdigest()
        file.attrs["format"] = FORMAT
        file.attrs["format_version"] = FORMAT_VERSION
        file.attrs["manifest"] = json.dumps({**manifest, "content_sha256": content_hash}, sort_keys=True, indent=1)
        file.attrs["complete"] = True  # last: a reader requires it
        os.chmod(temporary, 0o666 & ~_umask())  # a cache is shared like any file (mkstemp made it private)
    return content_hash


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
