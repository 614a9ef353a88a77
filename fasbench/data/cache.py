"""The frame cache: one HDF5 file per prepared domain, and its reader ``DomainCache``.

Layout of ``<cache_dir>/<dataset>-<hash12>.h5`` (``hash12`` = hash of the dataset name and its given options):

- ``images``  uint8 N x S x S x 3, RGB face crops, one chunk per frame (optionally compressed)
- ``depths``  uint8 N x d x d, pseudo-depth (255 = nearest; all zero for spoofs)
- ``frames/video`` int32 N (row of the video table), ``frames/index`` int64 N (frame index in the source video)
- ``videos/*`` one row per video: video_id, label, attack_type, subject, split, path, meta (JSON), start, count
- attributes: ``format``, ``format_version``, ``manifest`` (JSON: how it was made, content hash), ``complete``

A cache file only ever appears under its final name by an atomic rename after it was fully written, and the
reader refuses any file whose format, version or completion marker is wrong: a stale or partial file is
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from fasbench.errors import MissingDataError
from fasbench.interfaces import LIVE, SPLITS

FORMAT = "fasbench-frame-cache"
FORMAT_VERSION = 2  # 2: an XXH3-64 digest per frame, Fletcher-32 on the tables
CACHE_ENV = "FASBENCH_CACHE"
DEFAULT_CROP_SIZE = 256
DEFAULT_DEPTH_SIZE = 32
VIDEO_COLUMNS = ("video_id", "label", "attack_type", "subject", "split", "path", "meta", "start", "count")


class StaleCacheError(MissingDataError):
    """A file at a cache path that is not a complete cache of the current format (or was made differently)."""


# What h5py raises for a damaged file: OSError for a failed checksum or a bad block, KeyError or ValueError for
# damaged object headers, and JSON or Unicode errors for a damaged manifest.
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, UnicodeDecodeError)


class CacheCorruptError(MissingDataError):
    """A cache whose stored bytes fail their checksum: it was damaged after it was written."""


def damaged(path: Path, error: BaseException) -> CacheCorruptError:
    """The error for a cache whose chunk failed its checksum (or could not be read), naming the fix."""
    return CacheCorruptError(
        f"{path} is damaged: a stored chunk failed its checksum ({error}); nothing read from it is used. "
        f"Rebuild it with `fasbench prepare {dataset_name_of(path)} --force` (the same --option values), "
        "then rerun: a run stopped by this is marked failed, never recorded"
    )


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, no spaces) for hashing options and manifests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, allow_nan=False)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, unknown objects their ``str``), for manifests."""
    return json.loads(canonical_json(value))


def frame_checksum(image: np.ndarray, depth: np.ndarray) -> int:
    """XXH3-64 of one frame's image bytes followed by its depth map's bytes (C order)."""
    digest = xxhash.xxh3_64(np.ascontiguousarray(image).data)
    digest.update(np.ascontiguousarray(depth).data)
    return digest.intdigest()


def content_digest(table: Mapping[str, Any], crop_size: int, depth_size: int) -> Any:
    """The SHA-256 object of a cache's content, fed the video table and sizes; every video's images,
    depths and frame indices (int64) follow in order (``write_cache`` and ``DomainCache.verify``)."""
    return hashlib.sha256(canonical_json({"table": dict(table), "crop": crop_size, "depth": depth_size}).encode())


def default_cache_dir() -> Path:
    """``$FASBENCH_CACHE``, else ``~/.cache/fasbench``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/fasbench").expanduser()


def options_key(dataset_name: str, options: Mapping[str, Any]) -> str:
    """12 hex digits naming (dataset, given options): the same options always find the same file."""
    return hashlib.sha256(canonical_json({"dataset": dataset_name, "options": dict(options)}).encode()).hexdigest()[:12]


def cache_path(cache_dir: str | os.PathLike | None, dataset_name: str, options: Mapping[str, Any]) -> Path:
    """Where the cache of ``dataset_name`` prepared with ``options`` lives: ``<cache_dir>/<dataset>-<hash12>.h5``."""
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    safe_name = re.sub(r"[^A-Za-z0-9_\-]", "_", dataset_name)
    return directory / f"{safe_name}-{options_key(dataset_name, options)}.h5"


def dataset_name_of(path: Path) -> str:
    """The dataset name a cache file name starts with (for "run `fasbench prepare NAME`" messages)."""
    stem = path.name.removesuffix(".h5")
    return stem.rsplit("-", 1)[0] if "-" in stem else stem


@dataclass(frozen=True)
class CachedVideo:
    """One row of a cache's video table: the record as prepared, and where its frames are."""

    video_id: str
    label: int
    attack_type: str
    subject: str
    split: str
    path: str | None
    meta: Mapping[str, str]
    start: int  # first frame row
    count: int  # number of frames


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a complete cache file; ``StaleCacheError`` for anything else."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            _check_attributes(path, file.attrs)
            return json.loads(file.attrs["manifest"])
    except READ_ERRORS as error:
        raise StaleCacheError(f"{path} is not a readable frame cache ({type(error).__name__}: {error})") from error


def _check_attributes(path: Path, attrs: Any) -> None:
    if attrs.get("format") != FORMAT:
        raise StaleCacheError(f"{path} is not a fasbench frame cache (no {FORMAT!r} format marker)")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise StaleCacheError(
            f"{path} has cache format version {attrs.get('format_version')}, this fasbench reads {FORMAT_VERSION}"
        )
    if not attrs.get("complete", False) or "manifest" not in attrs:
        raise StaleCacheError(f"{path} is an incomplete frame cache")


def _strings(dataset: Any) -> list[str]:
    return [str(value) for value in dataset.asstr()[()]]


class DomainCache:
    """Read access to one prepared domain: the video table and per-frame columns in memory, pixels on demand.

    The HDF5 file is opened lazily, once per process (so a cache object can be pickled into DataLoader
    workers); per-frame arrays are numpy arrays of length ``len(cache)``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import h5py

        self.path = Path(path)
        if not self.path.exists():
            name = dataset_name_of(self.path)
            raise MissingDataError(
                f"no prepared frame cache at {self.path}: run `fasbench prepare {name}` "
                "(with the same --option values and --cache-dir) first"
            )
        try:
            with h5py.File(self.path, "r") as file:
                _check_attributes(self.path, file.attrs)
                self.manifest: dict[str, Any] = json.loads(file.attrs["manifest"])
                videos = file["videos"]
                ids, attacks = _strings(videos["video_id"]), _strings(videos["attack_type"])
                subjects, splits = _strings(videos["subject"]), _strings(videos["split"])
                paths, metas = _strings(videos["path"]), _strings(videos["meta"])
                labels, starts, counts = (videos[name][()].astype(np.int64) for name in ("label", "start", "count"))
                self.frame_video = file["frames/video"][()].astype(np.int64)
                self.checksums = file["frames/checksum"][()]
                self.frame_indices = file["frames/index"][()].astype(np.int64)
                self.image_shape = tuple(int(n) for n in file["images"].shape[1:])
                self.depth_shape = tuple(int(n) for n in file["depths"].shape[1:])
                frame_count = int(file["images"].shape[0])
        except READ_ERRORS as error:
            raise StaleCacheError(
                f"{self.path} cannot be read as a frame cache ({type(error).__name__}: {error}); it is damaged or "
                f"not a cache: run `fasbench prepare {dataset_name_of(self.path)} --force` (the same --option values)"
            ) from error
        columns = (ids, labels.tolist(), attacks, subjects, splits, paths, metas, starts.tolist(), counts.tolist())
        if len({len(column) for column in columns}) != 1:
            raise StaleCacheError(f"{self.path}: the columns of its video table differ in length")
        self.records = tuple(
            CachedVideo(video, label, attack, subject, split, path or None, json.loads(meta), start, count)
            for video, label, attack, subject, split, path, meta, start, count in zip(*columns, strict=True)
        )
        if int(counts.sum()) != frame_count or len(self.frame_video) != frame_count:
            raise StaleCacheError(f"{self.path}: the video table does not match the {frame_count} frames stored")
        self.labels = labels[self.frame_video]
        self.video_ids = np.asarray(ids, dtype=str)[self.frame_video]
        self.attack_types = np.asarray(attacks, dtype=str)[self.frame_video]
        self.splits = np.asarray(splits, dtype=str)[self.frame_video]
        self._file: Any = None
        self._pid: int | None = None
        self._index: dict[str, int] | None = None
        self._verified = np.zeros(len(self.frame_video), bool)  # frames whose checksum this process checked

    # -- table -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame_video)

    def __repr__(self) -> str:
        live = int((self.labels == LIVE).sum())
        return f"DomainCache({str(self.path)!r}, {len(self.records)} videos, {len(self)} frames, {live} live)"

    @property
    def name(self) -> str:
        return str(self.manifest.get("dataset", dataset_name_of(self.path)))

    @property
    def split_names(self) -> tuple[str, ...]:
        """The official splits this domain has (from its videos), in SPLITS order: its split contract."""
        present = {record.split for record in self.records}
        return tuple(split for split in SPLITS if split in present)

    def video_rows(self, video_ids: Iterable[str] | None = None, frames_per_video: int | None = None) -> np.ndarray:
        """Row indices (ascending) of the frames of ``video_ids`` (every video when None).

        ``frames_per_video`` keeps that many evenly spaced frames of each video (all of a shorter one),
        chosen from the cached frames without preparing again.
        """
        if frames_per_video is not None and (isinstance(frames_per_video, bool) or frames_per_video < 1):
            raise MissingDataError(f"frames_per_video must be >= 1 or None, got {frames_per_video!r}")
        if video_ids is None:
            chosen = range(len(self.records))
        else:
            index = self._video_index()
            wanted = list(video_ids)
            unknown = [v for v in wanted if v not in index]
            if unknown:
                raise MissingDataError(
                    f"{self.path} has no video {unknown[0]!r}"
                    + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                    + f"; run `fasbench prepare {dataset_name_of(self.path)}` again"
                )
            chosen = sorted(index[v] for v in set(wanted))
        parts = []
        for position in chosen:
            video = self.records[position]
            if frames_per_video is None or video.count <= frames_per_video:
                parts.append(np.arange(video.start, video.start + video.count))
            else:
                spaced = np.round(np.linspace(0, video.count - 1, frames_per_video)).astype(np.int64)
                parts.append(video.start + spaced)
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def _video_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {record.video_id: position for position, record in enumerate(self.records)}
        return self._index

    # -- pixels ------------------------------------------------------------------------------------
    def _handle(self) -> Any:
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        """Close this process's file handle (it is reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = state["_pid"] = None
        state["_verified"] = np.zeros_like(self._verified)  # another process verifies what it reads itself
        return state

    def read(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images (n x S x S x 3) and depths (n x d x d) of the frames at ``indices``, in that order.

        Frames are read one chunk at a time in ascending file order (h5py's fancy indexing is far slower).
        """
        rows = np.asarray(indices, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"frame index out of range for {self.path} with {len(self)} frames")
        file = self._handle()
        images_dataset, depths_dataset = file["images"], file["depths"]
        images = np.empty((len(rows), *self.image_shape), np.uint8)
        depths = np.empty((len(rows), *self.depth_shape), np.uint8)
        try:
            for position in np.argsort(rows, kind="stable"):
                row = int(rows[position])
                images[position] = images_dataset[row]
                depths[position] = depths_dataset[row]
                if not self._verified[row]:
                    self._check_frame(row, images[position], depths[position])
        except READ_ERRORS as error:
            raise damaged(self.path, error) from error
        return images, depths

    def _check_frame(self, row: int, image: np.ndarray, depth: np.ndarray) -> None:
        """Compare a frame's bytes with the digest written with it (first read of the frame in this process)."""
        if frame_checksum(image, depth) != int(self.checksums[row]):
            video = self.records[int(self.frame_video[row])].video_id
            raise damaged(self.path, f"frame {row} (video {video!r}) does not match the checksum written with it")
        self._verified[row] = True

    def verify(self) -> None:
        """Read every stored byte (HDF5 checks each chunk's checksum) and recompute the content hash."""
        import h5py

        table = {
            "video_id": [r.video_id for r in self.records],
            "label": [r.label for r in self.records],
            "attack_type": [r.attack_type for r in self.records],
            "subject": [r.subject for r in self.records],
            "split": [r.split for r in self.records],
            "path": [r.path or "" for r in self.records],
            "meta": [canonical_json(dict(r.meta)) for r in self.records],
            "start": [r.start for r in self.records],
            "count": [r.count for r in self.records],
        }
        digest = content_digest(table, self.manifest["crop_size"], self.manifest["depth_size"])
        try:
            with h5py.File(self.path, "r") as file:
                for record in self.records:
                    rows = slice(record.start, record.start + record.count)
                    images, depths = file["images"][rows], file["depths"][rows]
                    for offset, (image, depth) in enumerate(zip(images, depths, strict=True)):
                        self._check_frame(record.start + offset, image, depth)
                    digest.update(np.ascontiguousarray(images).tobytes())
                    digest.update(np.ascontiguousarray(depths).tobytes())
                    digest.update(np.ascontiguousarray(file["frames/index"][rows].astype(np.int64)).tobytes())
        except READ_ERRORS as error:
            raise damaged(self.path, error) from error
        if digest.hexdigest() != self.manifest.get("content_sha256"):
            raise damaged(self.path, "its content hash differs from the one written at preparation")


def open_cache(path: str | os.PathLike) -> DomainCache:
    """Open a prepared domain; ``MissingDataError`` ("run `fasbench prepare NAME`") when it is missing,
    ``StaleCacheError`` for a partial, foreign or outdated file."""
    return DomainCache(path)
