"""The frame cache: layout, atomic writes, stale/partial detection, skipped videos, resumable preparation."""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from fasbench.data import (
    StaleCacheError,
    cache_path,
    ensure_prepared,
    open_cache,
    prepare_domain,
    read_manifest,
)
from fasbench.data import writer as writer_module
from fasbench.data.prepare import stale_reason
from fasbench.data.work import work_dir_of
from fasbench.errors import FasbenchError, MissingDataError, SkipVideo
from fasbench.interfaces import LIVE, SPOOF, Dataset, Frame, VideoRecord

CALLS: list[str] = []  # video ids whose frames were generated in this process


class Toy(Dataset):
    """Six videos of three subjects; options shape the frames, ``crash_at`` kills the process mid-video."""

    name = "toy"

    def cache_options(self):
        return {key: value for key, value in self.options.items() if key != "crash_at"}  # it changes no frame

    def records(self):
        count = self.options.get("videos", 6)
        return [
            VideoRecord(
                f"s{v // 2}/{'live' if v % 2 == 0 else 'print'}",
                LIVE if v % 2 == 0 else SPOOF,
                "live" if v % 2 == 0 else "print",
                f"s{v // 2}",
                ("train", "dev", "test")[(v // 2) % 3],
                path=f"/data/toy/{v}.avi",
            )
            for v in range(count)
        ]

    def frames(self, record):
        CALLS.append(record.video_id)
        position = [r.video_id for r in self.records()].index(record.video_id)
        size = self.options.get("image_size", 32)
        for index in range(self.options.get("frames", 3)):
            if position == self.options.get("crash_at") and index == 1:
                os._exit(3)  # a kill -9 in the middle of a video
            if record.video_id in self.options.get("skip", ()):
                raise SkipVideo(f"{record.path}: cannot decode")
            height = size + 1 if record.video_id in self.options.get("oblong", ()) else size
            value = (position * 40 + index * 7 + self.options.get("version", 0)) % 256
            image = np.full((height, size, 3), value, np.uint8)
            image[:, : size // 2, 0] = 255 - value  # some structure, so resizing is visible
            yield Frame(index * 5, image, np.full((8, 8), 200, np.uint8))


def _prepare(tmp_path: Path, name: str = "toy.h5", **options) -> Path:
    return prepare_domain(Toy(**options), tmp_path / name, progress=False, crop_size=16, depth_size=4)


def test_cache_path_is_named_by_dataset_and_options(tmp_path, monkeypatch):
    first = cache_path(tmp_path, "oulu", {"every": 2, "face": "dlib"})
    assert first == cache_path(tmp_path, "oulu", {"face": "dlib", "every": 2})
    assert first.parent == tmp_path and first.name.startswith("oulu-") and first.suffix == ".h5"
    assert first != cache_path(tmp_path, "oulu", {"every": 3, "face": "dlib"}) != cache_path(tmp_path, "casia", {})
    monkeypatch.setenv("FASBENCH_CACHE", str(tmp_path / "env"))
    assert cache_path(None, "oulu", {}).parent == tmp_path / "env"


def test_prepared_cache_holds_resized_frames_tables_and_manifest(tmp_path):
    cache = open_cache(_prepare(tmp_path, image_size=40))
    assert len(cache) == 18 and len(cache.records) == 6
    assert cache.image_shape == (16, 16, 3) and cache.depth_shape == (4, 4)
    assert cache.labels.tolist() == [1, 1, 1, 0, 0, 0] * 3
    assert cache.video_ids[3] == "s0/print" and cache.frame_indices[:3].tolist() == [0, 5, 10]
    assert cache.split_names == ("train", "dev", "test")
    test_videos = [r.video_id for r in cache.records if r.split == "test"]
    assert cache.video_rows(test_videos).tolist() == list(range(12, 18))
    assert cache.video_rows().tolist() == list(range(18))
    video = cache.records[2]
    assert (video.video_id, video.split, video.start, video.count, video.path) == (
        "s1/live",
        "dev",
        6,
        3,
        "/data/toy/2.avi",
    )
    images, depths = cache.read([7, 4, 7])  # any order, repeats allowed
    source = Toy(image_size=40).frames(Toy().records()[2])
    expected = np.asarray(Image.fromarray(next(source).image).resize((16, 16), Image.Resampling.BILINEAR))
    assert np.array_equal(images[0], images[2]) and np.array_equal(images[0], cache.read([7])[0][0])
    np.testing.assert_array_equal(cache.read([6])[0][0], expected)  # frame 0 of video 2, resized as PIL does
    assert depths[0].tolist() == np.full((4, 4), 200).tolist() and depths[1].max() == 0  # spoof depth is zeroed
    manifest = cache.manifest
    assert manifest["dataset"] == "toy" and manifest["crop_size"] == 16 and manifest["depth_size"] == 4
    assert manifest["cache_options"] == {"image_size": 40} and manifest["videos"] == 6 and manifest["frames"] == 18
    assert manifest["skipped"] == [] and len(manifest["content_sha256"]) == 64 and "h5py" in manifest["tools"]


def test_skipped_videos_are_named_and_counted(tmp_path):
    cache = open_cache(_prepare(tmp_path, skip=["s1/print"], oblong=["s2/live"]))
    assert [v.video_id for v in cache.records] == ["s0/live", "s0/print", "s1/live", "s2/print"]
    skipped = {s["video_id"]: s for s in cache.manifest["skipped"]}
    assert skipped["s1/print"] == {"video_id": "s1/print", "path": "/data/toy/3.avi",
                                   "reason": "SkipVideo: /data/toy/3.avi: cannot decode"}  # fmt: skip
    assert "not a square crop" in skipped["s2/live"]["reason"]


def test_a_dataset_whose_every_video_fails_writes_no_cache(tmp_path):
    with pytest.raises(FasbenchError, match="no video of 'toy' could be prepared"):
        _prepare(tmp_path, videos=2, skip=["s0/live", "s0/print"])
    assert not (tmp_path / "toy.h5").exists()


def test_missing_cache_says_how_to_prepare_it(tmp_path):
    with pytest.raises(MissingDataError, match=r"run `fasbench prepare oulu`"):
        open_cache(cache_path(tmp_path, "oulu", {}))


def test_foreign_and_incomplete_files_are_refused_then_rebuilt(tmp_path):
    target = tmp_path / "toy.h5"
    target.write_bytes(b"half a file")
    with pytest.raises(StaleCacheError):
        open_cache(target)
    assert len(open_cache(_prepare(tmp_path))) == 18  # rebuilt, not read
    with h5py.File(target, "a") as file:
        file.attrs["complete"] = False
    with pytest.raises(StaleCacheError, match="incomplete"):
        open_cache(target)


def test_a_crash_while_writing_leaves_no_cache_and_no_temporary(tmp_path, monkeypatch):
    original = writer_module.write_cache

    def crashing(target, videos, load, **kwargs):
        def load_then_fail(position):
            if position == 2:
                raise RuntimeError("disk full")
            return load(position)

        return original(target, videos, load_then_fail, **kwargs)

    monkeypatch.setattr("fasbench.data.prepare.write_cache", crashing)
    with pytest.raises(RuntimeError, match="disk full"):
        _prepare(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".toy.h5.lock", ".toy.h5.parts"]  # parts kept for a rerun


def test_a_killed_preparation_resumes_with_the_videos_not_yet_written(tmp_path):
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_cache import _prepare\n"
        f"_prepare(__import__('pathlib').Path({str(tmp_path)!r}), crash_at=3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 3, result.stderr.decode()[-2000:]
    with pytest.raises(MissingDataError, match="run `fasbench prepare toy`"):
        open_cache(tmp_path / "toy.h5")
    assert len(list(work_dir_of(tmp_path / "toy.h5").glob("*.npz"))) == 3  # videos 0-2 were completed
    CALLS.clear()
    resumed = open_cache(_prepare(tmp_path))
    assert CALLS == ["s1/print", "s2/live", "s2/print"]
    fresh = open_cache(_prepare(tmp_path, "fresh.h5"))
    assert resumed.manifest["content_sha256"] == fresh.manifest["content_sha256"]
    assert not work_dir_of(tmp_path / "toy.h5").exists()


def test_changed_options_trigger_a_rebuild_and_unchanged_ones_do_not(tmp_path):
    first = _prepare(tmp_path, version=1)
    first_hash = read_manifest(first)["content_sha256"]
    CALLS.clear()
    _prepare(tmp_path, version=1)
    assert CALLS == []  # up to date: nothing generated
    _prepare(tmp_path, version=2)
    assert len(CALLS) == 6
    assert read_manifest(first)["cache_options"] == {"version": 2}
    assert read_manifest(first)["content_sha256"] != first_hash
    CALLS.clear()
    prepare_domain(Toy(version=2), first, progress=False, crop_size=16, depth_size=4, force=True)
    assert len(CALLS) == 6


def test_worker_processes_write_the_same_cache(tmp_path):
    options = {"domain": "I", "subjects": 3, "videos_per_type": 1, "frames_per_video": 2, "crop_size": 32}
    serial = ensure_prepared("synthetic", options, tmp_path / "serial", progress=False)
    parallel = ensure_prepared("synthetic", options, tmp_path / "parallel", progress=False, workers=2)
    assert serial.name == parallel.name == cache_path(tmp_path, "synthetic", options).name
    assert serial.read_bytes() == parallel.read_bytes()
    modified = serial.stat().st_mtime_ns
    assert ensure_prepared("synthetic", options, tmp_path / "serial", progress=False) == serial
    assert serial.stat().st_mtime_ns == modified  # up to date: left alone


def test_an_unpicklable_dataset_is_refused_for_workers_with_advice(tmp_path):
    dataset = Toy()
    dataset.decoder = lambda path: path  # e.g. a handle or a closure
    with pytest.raises(FasbenchError, match="cannot be sent to worker processes.*--workers 0"):
        prepare_domain(dataset, tmp_path / "toy.h5", progress=False, workers=2)


def test_the_stale_reason_names_each_changed_option():
    expected = {"format_version": 1, "cache_options": {"every": 2, "face": "dlib"}, "crop_size": 256}
    manifest = {"format_version": 1, "cache_options": {"every": 3, "face": "dlib"}, "crop_size": 128}
    assert stale_reason(manifest, expected) == "cache_options.every was 3, now 2; crop_size was 128, now 256"
    assert stale_reason(expected, expected) is None
