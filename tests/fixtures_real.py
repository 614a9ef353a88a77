"""Generate tiny stand-ins of the four real datasets: official folder layout, file names, lists, annotations.

Videos are a few 64 x 48 frames (MJPG .avi, mp4v .mov / .mp4) of a flat background with a drawn
face-like blob at a known box, so tests can check crops against the box. Nothing is committed: every
tree is written under the test's temporary folder. ``benchmarks/bench_prepare.py`` uses the same
writer at 640 x 480.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (64, 48)  # width, height
FACE_BOX = (20, 8, 24, 30)  # x, y, width, height of the face blob
SKIN_RGB = (210, 160, 120)
BACKGROUND_RGB = (30, 60, 150)
_FOURCC = {".avi": "MJPG", ".mov": "mp4v", ".mp4": "mp4v"}


def eye_centres(box: Sequence[float] = FACE_BOX) -> tuple[tuple[float, float], tuple[float, float]]:
    """Where the drawn eyes are: 30% and 70% across the box, 38% down."""
    x, y, w, h = box
    return (x + 0.3 * w, y + 0.38 * h), (x + 0.7 * w, y + 0.38 * h)


def face_frame(box: Sequence[float] = FACE_BOX, size: tuple[int, int] = FRAME_SIZE, shade: int = 0) -> np.ndarray:
    """One RGB frame: background (brightness offset ``shade``), skin ellipse filling ``box``, dark eyes."""
    width, height = size
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = np.clip(np.array(BACKGROUND_RGB) + shade, 0, 255)
    x, y, w, h = box
    cv2.ellipse(frame, (round(x + w / 2), round(y + h / 2)), (round(w / 2), round(h / 2)), 0, 0, 360, SKIN_RGB, -1)
    for ex, ey in eye_centres(box):
        cv2.circle(frame, (round(ex), round(ey)), max(1, round(w / 12)), (20, 20, 20), -1)
    return frame


def write_video(
    path: Path,
    n_frames: int = 6,
    box: Sequence[float] = FACE_BOX,
    size: tuple[int, int] = FRAME_SIZE,
    shade_step: int = 0,
) -> Path:
    """A short video of the face blob; frame i has background brightness + i * ``shade_step``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*_FOURCC[path.suffix]), 25, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for index in range(n_frames):
        writer.write(cv2.cvtColor(face_frame(box, size, index * shade_step), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_box_file(
    path: Path, n_frames: int, box: Sequence[float] = FACE_BOX, *, corners: bool = False, missing: Iterable[int] = ()
) -> None:
    """Replay-Attack style ``frame x y w h`` lines (MSU style ``frame,x1,y1,x2,y2`` with ``corners``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x, y, w, h = box
    missing = set(missing)
    lines = []
    for frame in range(n_frames):
        if corners:
            values = (0, 0, 0, 0) if frame in missing else (x, y, x + w, y + h)
            lines.append(",".join(str(v) for v in (frame, *values)))
        else:
            values = (0, 0, 0, 0) if frame in missing else (x, y, w, h)
            lines.append(" ".join(str(v) for v in (frame, *values)))
    path.write_text("\n".join(lines) + "\n")


def write_eye_file(path: Path, n_frames: int, box: Sequence[float] = FACE_BOX, *, first_frame: int = 0) -> None:
    """OULU-NPU style ``frame, x1, y1, x2, y2`` eye-position lines."""
    (lx, ly), (rx, ry) = eye_centres(box)
    rows = [f"{first_frame + i}, {lx:g}, {ly:g}, {rx:g}, {ry:g}" for i in range(n_frames)]
    path.write_text("\n".join(rows) + "\n")


# -- dataset trees -----------------------------------------------------------------------------------
def build_oulu(
    root: Path, videos: Iterable[str], protocol_files: dict[str, str] | None = None, n_frames: int = 6
) -> Path:
    """``videos`` like ``"Train_files/1_1_01_1"``; ``protocol_files`` maps a path under Protocols/ to its text."""
    for folder in ("Train_files", "Dev_files", "Test_files"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for video in videos:
        path = write_video(root / f"{video}.avi", n_frames)
        write_eye_file(path.with_suffix(".txt"), n_frames)
    for relative, text in (protocol_files or {}).items():
        (root / "Protocols" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "Protocols" / relative).write_text(text)
    return root


def build_casia(root: Path, videos: Iterable[str], n_frames: int = 6) -> Path:
    """``videos`` like ``"train_release/1/HR_1"`` (CASIA-FASD ships no annotations)."""
    for release in ("train_release", "test_release"):
        (root / release).mkdir(parents=True, exist_ok=True)
    for video in videos:
        write_video(root / f"{video}.avi", n_frames)
    return root


def build_replay(root: Path, videos: Iterable[str], n_frames: int = 6, annotate: bool = True) -> Path:
    """``videos`` like ``"train/real/client001_session01_webcam_authenticate_adverse_1"``; face-locations beside."""
    for split in ("train", "devel", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
    for video in videos:
        write_video(root / f"{video}.mov", n_frames)
        if annotate:
            write_box_file(root / "face-locations" / f"{video}.face", n_frames)
    return root


def build_msu(
    root: Path,
    videos: Iterable[str],
    train_subjects: Iterable[str],
    test_subjects: Iterable[str],
    n_frames: int = 6,
    annotate: bool = True,
) -> Path:
    """``videos`` like ``"scene01/real/real_client001_laptop_SD_scene01.mov"``; subject lists at the root."""
    for folder in ("scene01/real", "scene01/attack"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for video in videos:
        path = write_video(root / video, n_frames)
        if annotate:
            write_box_file(path.with_suffix(".face"), n_frames, corners=True)
    (root / "train_sub_list.txt").write_text("\n".join(train_subjects) + "\n")
    (root / "test_sub_list.txt").write_text("\n".join(test_subjects) + "\n")
    return root
