"""Video decoding and frame sampling with OpenCV (RGB frames, only the sampled ones converted).

Decoding is sequential (``grab`` every frame, ``retrieve`` only the sampled ones): frame-accurate for
every codec, unlike seeking, which lands on key frames in some containers. OpenCV applies rotation
metadata itself (phone videos, e.g. MSU-MFSD's Android clips), so frames come out upright.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from fasbench.errors import FasbenchError, SkipVideo


def sample_indices(n_frames: int, *, every: int | None = None, frames_per_video: int | None = None) -> list[int]:
    """Which frames of an ``n_frames`` long video to keep.

    ``every=k``: frames 0, k, 2k, ...; ``frames_per_video=N``: N frames evenly spaced, the middle
    frame of each of N equal segments (never the very first or last frame, which some encoders
    drop). Exactly one of the two must be given.
    """
    if (every is None) == (frames_per_video is None):
        raise FasbenchError("frame sampling: give exactly one of every=K or frames_per_video=N")
    if n_frames <= 0:
        return []
    if every is not None:
        if every < 1:
            raise FasbenchError(f"frame sampling: every must be >= 1, got {every}")
        return list(range(0, n_frames, every))
    if frames_per_video < 1:
        raise FasbenchError(f"frame sampling: frames_per_video must be >= 1, got {frames_per_video}")
    count = min(frames_per_video, n_frames)
    return [int((i + 0.5) * n_frames / count) for i in range(count)]


def frame_count(capture: cv2.VideoCapture) -> int:
    """The container's frame count; counted by grabbing (then rewound) when the container does not say."""
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    if reported > 0:
        return reported
    counted = 0
    while capture.grab():
        counted += 1
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return counted


def decode_frames(
    path: str | Path, *, every: int | None = None, frames_per_video: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame index, uint8 H x W x 3 RGB frame)`` for the sampled frames of a video.

    Raises ``SkipVideo`` naming the file when it is missing, cannot be opened, or yields no frame.
    A video that ends before its reported length yields the sampled frames it has.
    """
    path = Path(path)
    if not path.is_file():
        raise SkipVideo(f"{path}: video file is missing")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise SkipVideo(f"{path}: cannot open the video (corrupt file or unsupported codec)")
        wanted = sample_indices(frame_count(capture), every=every, frames_per_video=frames_per_video)
        if not wanted:
            raise SkipVideo(f"{path}: the video has no frames")
        decoded = 0
        index = -1
        for target in wanted:
            while index < target:
                if not capture.grab():
                    break
                index += 1
            if index < target:  # the stream ended early
                break
            ok, frame = capture.retrieve()
            if not ok or frame is None or frame.ndim != 3:
                continue
            decoded += 1
            yield target, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        if decoded == 0:
            raise SkipVideo(f"{path}: no frame could be decoded (corrupt or truncated video)")
    except cv2.error as error:
        raise SkipVideo(f"{path}: decoding failed: {error}") from error
    finally:
        capture.release()
