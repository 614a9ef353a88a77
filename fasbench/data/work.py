"""Resumable preparation: a work folder of per-video part files beside the cache being prepared.

Each video's prepared frames land in ``<cache>.parts/<position>.npz`` (or a ``.skip.json`` saying why it
was skipped), each written atomically; a part's existence is that video's completion marker. An
interrupted prepare (Ctrl-C, kill) therefore continues with the videos that have no part yet. The work
folder is bound to a key (what determines the content); a folder made with another key is discarded.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fasbench import atomic
from fasbench.console import get_logger
from fasbench.data.writer import VideoFrames
from fasbench.errors import FasbenchError
from fasbench.interfaces import LIVE, Frame, VideoRecord

KEY_FILE = "work.json"
log = get_logger("fasbench.data")


def work_dir_of(target: Path) -> Path:
    """The hidden work folder of the cache file ``target``."""
    return target.with_name(f".{target.name}.parts")


@contextmanager
def exclusive(target: Path) -> Iterator[None]:
    """Hold a lock on ``target``'s preparation, so two processes never prepare the same cache at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(f".{target.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class WorkDir:
    """Part files of one preparation, keyed so that a folder from different options is never reused."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        key_file = path / KEY_FILE
        if path.exists():
            try:
                found = json.loads(key_file.read_text())["key"]
            except (OSError, ValueError, KeyError):
                found = None
            if found != key:
                log.info("discarding the work folder %s (made with other options)", path)
                shutil.rmtree(path)
        if not path.exists():
            path.mkdir(parents=True)
            atomic.write_json(key_file, {"key": key})
        self.key = key

    def _part(self, position: int) -> Path:
        return self.path / f"{position:07d}.npz"

    def _skip(self, position: int) -> Path:
        return self.path / f"{position:07d}.skip.json"

    def status(self, position: int) -> int | str | None:
        """Frames written for the video at ``position``, its skip reason, or None when it is not done yet."""
        if self._skip(position).exists():
            return str(json.loads(self._skip(position).read_text())["reason"])
        part = self._part(position)
        if part.exists():
            try:
                with np.load(part) as arrays:
                    return int(arrays["indices"].shape[0])
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                log.warning("redoing video %d: its part file %s is unreadable (%s)", position, part, error)
                part.unlink()
        return None

    def write(self, position: int, frames: VideoFrames) -> None:
        with atomic.atomic_path(self._part(position)) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, images=frames.images, depths=frames.depths, indices=frames.indices)

    def write_skip(self, position: int, reason: str) -> None:
        atomic.write_json(self._skip(position), {"reason": reason})

    def load(self, position: int) -> VideoFrames:
        with np.load(self._part(position)) as part:
            return VideoFrames(part["images"], part["depths"], part["indices"])

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _resized(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[0] == size and array.shape[1] == size:
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BILINEAR))


def normalise_frame(record: VideoRecord, frame: Frame, crop_size: int, depth_size: int) -> tuple[np.ndarray, ...]:
    """A frame at the cache's sizes: checked types, square crop resized, spoof depth forced to zero."""
    image, depth = np.asarray(frame.image), np.asarray(frame.depth)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise FasbenchError(f"frame {frame.index}: image must be uint8 H x W x 3, got {image.dtype} {image.shape}")
    if image.shape[0] != image.shape[1]:
        raise FasbenchError(f"frame {frame.index}: image is {image.shape[0]} x {image.shape[1]}, not a square crop")
    if depth.dtype != np.uint8 or depth.ndim != 2:
        raise FasbenchError(f"frame {frame.index}: depth must be a uint8 h x w map, got {depth.dtype} {depth.shape}")
    if record.label == LIVE:
        depth = _resized(depth, depth_size)
    else:
        depth = np.zeros((depth_size, depth_size), np.uint8)  # the convention: spoofs have no depth
    return _resized(image, crop_size), depth


def prepare_video(dataset: Any, record: VideoRecord, crop_size: int, depth_size: int) -> VideoFrames | str:
    """Run ``dataset.frames(record)`` into arrays, or return why the video is skipped.

    Any exception from the plugin (``SkipVideo``, a corrupt file, a bad frame) skips the video; the
    reason names the file. KeyboardInterrupt and SystemExit pass through.
    """
    images, depths, indices = [], [], []
    try:
        for frame in dataset.frames(record):
            image, depth = normalise_frame(record, frame, crop_size, depth_size)
            images.append(image)
            depths.append(depth)
            indices.append(int(frame.index))
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    if not images:
        return "the dataset yielded no frame"
    return VideoFrames(np.stack(images), np.stack(depths), np.asarray(indices, np.int64))
