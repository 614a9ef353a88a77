"""Each real-dataset plugin prepared into the shared cache from a generated tree with broken and missing videos."""

from __future__ import annotations

import numpy as np
import pytest
from fasbench_plugins.real import CasiaFASD, MsuMFSD, OuluNPU, ReplayAttack
from fasbench_plugins.real.faces import FaceGeometry, crop_face
from fasbench_plugins.real.video import decode_frames
from fixtures_real import SKIN_RGB, build_casia, build_msu, build_oulu, build_replay, write_box_file, write_video

from fasbench.data import open_cache, prepare_domain
from fasbench.errors import FasbenchError, SkipVideo

SIZE = {"crop_size": 24, "depth_size": 8, "frames_per_video": 2}
OFF_CENTRE_BOX = (4, 6, 20, 26)  # x, y, width, height: well away from the frame centre (32, 24)


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "no-config.yaml"))


def _oulu(root):
    videos = ["Train_files/1_1_01_1", "Train_files/1_1_01_2", "Dev_files/6_2_21_4", "Test_files/3_3_36_1"]
    lists = {
        "Protocol_1/Train.txt": "+1,1_1_01_1\n-1,1_1_01_2\n+1,1_1_02_1\n",  # 1_1_02_1 is listed but absent
        "Protocol_1/Dev.txt": "-2,6_2_21_4\n",
        "Protocol_1/Test.txt": "+1,3_3_36_1\n",
    }
    build_oulu(root, videos, lists)
    (root / "Dev_files/6_2_21_4.avi").write_bytes(b"not a video" * 40)
    bad = {"Dev_files/6_2_21_4": "6_2_21_4.avi: cannot open the video", "Train_files/1_1_02_1": "video file is missing"}
    return OuluNPU(str(root), protocol="1", **SIZE), bad


def _casia(root):
    build_casia(root, ["train_release/1/1", "train_release/1/3", "test_release/1/HR_1", "test_release/1/HR_4"])
    (root / "test_release/1/HR_4.avi").write_bytes(b"not a video" * 40)
    return CasiaFASD(str(root), face="center", **SIZE), {"test_release/1/HR_4": "HR_4.avi: cannot open the video"}


REPLAY_LIVE = "train/real/client001_session01_webcam_authenticate_adverse_1"
REPLAY_PRINT = "devel/attack/hand/attack_print_client002_session01_highdef_photo_adverse"
REPLAY_VIDEO = "test/attack/fixed/attack_highdef_client003_session01_highdef_video_controlled"
REPLAY_MOBILE = "devel/attack/hand/attack_mobile_client002_session01_mobile_video_controlled"


def _replay(root):
    build_replay(root, [REPLAY_LIVE, REPLAY_PRINT, REPLAY_VIDEO, REPLAY_MOBILE])
    (root / f"{REPLAY_VIDEO}.mov").write_bytes(b"not a video" * 40)
    (root / "face-locations" / f"{REPLAY_PRINT}.face").unlink()
    bad = {
        REPLAY_VIDEO: "highdef_video_controlled.mov: cannot open the video",
        REPLAY_PRINT: "highdef_photo_adverse.face is missing",
    }
    return ReplayAttack(str(root), **SIZE), bad


def _msu(root):
    videos = [
        "scene01/real/real_client001_laptop_SD_scene01.mov",
        "scene01/attack/attack_client001_laptop_SD_printed_photo_scene01.mov",
        "scene01/attack/attack_client002_android_SD_ipad_video_scene01.mp4",
    ]
    build_msu(root, videos, train_subjects=["01"], test_subjects=["02"])
    (root / videos[2]).write_bytes(b"not a video" * 40)
    return MsuMFSD(str(root), **SIZE), {videos[2].rsplit(".", 1)[0]: "ipad_video_scene01.mp4: cannot open the video"}


@pytest.mark.parametrize("build", [_oulu, _casia, _replay, _msu], ids=["oulu", "casia", "replay", "msu"])
def test_prepared_cache_keeps_the_good_videos_and_lists_the_bad_ones(tmp_path, build):
    dataset, bad = build(tmp_path / "root")
    records = dataset.records()
    cache = open_cache(prepare_domain(dataset, tmp_path / "cache.h5", progress=False))
    good = [r for r in records if r.video_id not in bad]
    assert [r.video_id for r in cache.records] == [r.video_id for r in good]
    assert [(r.label, r.attack_type, r.subject, r.split) for r in cache.records] == [
        (r.label, r.attack_type, r.subject, r.split) for r in good
    ]
    assert len(cache) == 2 * len(good)  # frames_per_video=2 from every 6-frame video
    images, depths = cache.read(np.arange(len(cache)))
    assert images.shape == (len(cache), 24, 24, 3) and depths.shape == (len(cache), 8, 8)
    live = np.asarray(cache.labels) == 1
    assert live.any() and (~live).any() and depths[live].max() == 255 and depths[~live].max() == 0
    skipped = {entry["video_id"]: entry["reason"] for entry in cache.manifest["skipped"]}
    assert set(skipped) == set(bad)
    for video_id, reason in bad.items():
        assert reason in skipped[video_id], (video_id, skipped[video_id])


def _crop_of_first_frame(record, box, size=24, margin=0.2):
    index, image = next(decode_frames(record.path, every=1))
    return crop_face(image, FaceGeometry.from_box(*box), margin=margin, size=size, align=True)


def test_replay_boxes_are_x_y_width_height(tmp_path):
    root = build_replay(tmp_path / "replay", [REPLAY_LIVE], annotate=False)
    write_video(root / f"{REPLAY_LIVE}.mov", box=OFF_CENTRE_BOX)
    write_box_file(root / "face-locations" / f"{REPLAY_LIVE}.face", 6, OFF_CENTRE_BOX)
    dataset = ReplayAttack(str(root), every=6, crop_size=24)
    (record,) = dataset.records()
    (frame,) = dataset.frames(record)
    assert np.array_equal(frame.image, _crop_of_first_frame(record, OFF_CENTRE_BOX))
    assert np.abs(frame.image[12, 12].astype(int) - SKIN_RGB).max() <= 30


def test_msu_boxes_are_corners(tmp_path):
    video = "scene01/real/real_client001_laptop_SD_scene01.mov"
    root = build_msu(tmp_path / "msu", [], ["01"], [])
    path = write_video(root / video, box=OFF_CENTRE_BOX)
    write_box_file(path.with_suffix(".face"), 6, OFF_CENTRE_BOX, corners=True)
    dataset = MsuMFSD(str(root), every=6, crop_size=24)
    (record,) = dataset.records()
    (frame,) = dataset.frames(record)
    assert np.array_equal(frame.image, _crop_of_first_frame(record, OFF_CENTRE_BOX))
    assert np.abs(frame.image[12, 12].astype(int) - SKIN_RGB).max() <= 30


def test_a_missing_video_is_named_before_its_annotations(tmp_path):
    root = build_replay(tmp_path / "replay", [REPLAY_LIVE])
    dataset = ReplayAttack(str(root))
    (record,) = dataset.records()
    (root / f"{REPLAY_LIVE}.mov").unlink()
    (root / "face-locations" / f"{REPLAY_LIVE}.face").unlink()
    with pytest.raises(SkipVideo, match=r"authenticate_adverse_1\.mov: video file is missing"):
        list(dataset.frames(record))


def test_folder_depth_templates_may_use_stem_and_parent(tmp_path):
    import cv2

    video = "scene01/real/real_client001_laptop_SD_scene01.mov"
    root = build_msu(tmp_path / "msu", [video], ["01"], [])
    depth_dir = tmp_path / "depth"
    (depth_dir / "real" / "real_client001_laptop_SD_scene01").mkdir(parents=True)
    cv2.imwrite(str(depth_dir / "real/real_client001_laptop_SD_scene01/3_depth.jpg"), np.full((32, 32), 90, np.uint8))
    template = "{parent}/{stem}/{frame}_depth.jpg"  # RF-Meta's MSU-MFSD depth folders
    dataset = MsuMFSD(str(root), every=3, depth="folder", depth_dir=str(depth_dir), depth_template=template)
    (frame,) = dataset.frames(dataset.records()[0])  # frame 0 has no map: left out
    assert frame.index == 3 and abs(int(frame.depth.mean()) - 90) <= 2


def test_list_files_with_a_byte_order_mark_or_not_utf8(tmp_path):
    root = build_msu(tmp_path / "msu", ["scene01/real/real_client001_laptop_SD_scene01.mov"], ["01"], [])
    (root / "train_sub_list.txt").write_bytes("\ufeff01\n".encode())
    assert [r.split for r in MsuMFSD(str(root)).records()] == ["train"]
    (root / "train_sub_list.txt").write_bytes(b"\xff\xfe0\x001\x00")
    with pytest.raises(FasbenchError, match=r"train_sub_list.txt: not a UTF-8 text file"):
        MsuMFSD(str(root)).records()


def test_a_cache_follows_the_listed_videos_not_the_root_path(tmp_path):
    videos = ["train_release/1/1", "train_release/1/3"]
    first = build_casia(tmp_path / "a", videos)
    cache = tmp_path / "cache.h5"
    prepare_domain(CasiaFASD(str(first), face="center", **SIZE), cache, progress=False)
    stamp = cache.stat().st_mtime_ns
    moved = build_casia(tmp_path / "moved", videos)  # the same videos under another root: reused
    prepare_domain(CasiaFASD(str(moved), face="center", **SIZE), cache, progress=False)
    assert cache.stat().st_mtime_ns == stamp
    other = build_casia(tmp_path / "other", [*videos, "test_release/1/HR_1"])  # other videos: rebuilt
    prepare_domain(CasiaFASD(str(other), face="center", **SIZE), cache, progress=False)
    assert [r.video_id for r in open_cache(cache).records] == [
        "test_release/1/HR_1",
        "train_release/1/1",
        "train_release/1/3",
    ]


def test_a_protocol_listing_a_video_twice_is_refused(tmp_path):
    twice = {"Protocol_1/Train.txt": "+1,1_1_01_1\n+1,1_1_01_1\n"}
    root = build_oulu(tmp_path / "oulu", ["Train_files/1_1_01_1"], twice)
    for name in ("Dev.txt", "Test.txt"):
        (root / "Protocols" / "Protocol_1" / name).write_text("")
    with pytest.raises(FasbenchError, match="lists video 'Train_files/1_1_01_1' twice"):
        prepare_domain(OuluNPU(str(root), protocol="1", **SIZE), tmp_path / "cache.h5", progress=False)
    assert not (tmp_path / "cache.h5").exists()
