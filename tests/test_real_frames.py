"""Decoding, sampling, face cropping and depth labelling of the real-dataset plugins, on generated videos."""

from __future__ import annotations

import math
import pickle
import sys

import cv2
import numpy as np
import pytest
from fasbench_plugins.real import CasiaFASD, MsuMFSD, OuluNPU, ReplayAttack
from fasbench_plugins.real.depth import face_shape_prior
from fasbench_plugins.real.faces import FaceFinder, FaceGeometry, crop_face, nearest_face, read_box_file, read_eye_file
from fasbench_plugins.real.video import decode_frames, sample_indices
from fixtures_real import (
    BACKGROUND_RGB,
    FACE_BOX,
    SKIN_RGB,
    build_casia,
    build_msu,
    build_oulu,
    build_replay,
    write_box_file,
    write_video,
)

from fasbench.errors import FasbenchError, SkipVideo

LIVE_VIDEO = "train/real/client001_session01_webcam_authenticate_adverse_1"
SPOOF_VIDEO = "train/attack/hand/attack_print_client001_session01_highdef_photo_adverse"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "no-config.yaml"))


def near(pixel, rgb, tolerance=30):
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(rgb, int)) <= tolerance))


# -- sampling and decoding -------------------------------------------------------------------------
def test_sample_indices():
    assert sample_indices(10, every=3) == [0, 3, 6, 9]
    assert sample_indices(10, frames_per_video=4) == [1, 3, 6, 8]  # middle of each of 4 equal segments
    assert sample_indices(3, frames_per_video=5) == [0, 1, 2]
    assert sample_indices(0, every=1) == []
    with pytest.raises(FasbenchError, match="exactly one"):
        sample_indices(10, every=2, frames_per_video=2)


def test_decode_yields_the_sampled_frames_in_rgb(tmp_path):
    path = write_video(tmp_path / "v.avi", n_frames=7, shade_step=30)
    frames = list(decode_frames(path, every=3))
    assert [index for index, _ in frames] == [0, 3, 6]
    for index, image in frames:
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        expected = np.clip(np.array(BACKGROUND_RGB) + 30 * index, 0, 255)  # the right frame, in RGB order
        assert near(image[2, 2], expected, tolerance=10)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_corrupt_video_is_skipped_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.avi"
    path.write_bytes(content)
    with pytest.raises(SkipVideo, match="broken.avi: cannot open"):
        list(decode_frames(path, every=1))
    with pytest.raises(SkipVideo, match="gone.avi: video file is missing"):
        list(decode_frames(tmp_path / "gone.avi", every=1))


# -- annotations and crops -------------------------------------------------------------------------
def test_annotation_readers(tmp_path):
    boxes = tmp_path / "a.face"
    boxes.write_text("1 10 20 30 40\n2 0 0 0 0\n3 12 20 30 40\n")  # counts from 1: read as 1-based
    track = read_box_file(boxes)
    assert sorted(track) == [0, 2] and track[0] == FaceGeometry(25.0, 40.0, 40.0)
    corners = tmp_path / "b.face"
    corners.write_text("0,10,20,40,60\n")
    assert read_box_file(corners, corners=True)[0] == FaceGeometry(25.0, 40.0, 40.0)
    eyes = tmp_path / "e.txt"
    eyes.write_text("0, 60, 50, 40, 50\n1, 0, 0, 0, 0\n")
    face = read_eye_file(eyes)[0]
    assert (face.cx, face.size, face.angle) == (50.0, 44.0, 0.0)
    assert face.cy == pytest.approx(50 + 0.12 * 44)  # eye line at 38% of the box height
    eyes.write_text("0, 60, fifty, 40, 50\n")
    with pytest.raises(ValueError, match="e.txt:1: expected numbers"):
        read_eye_file(eyes)


def test_from_eyes_is_order_free_and_tilted():
    a = FaceGeometry.from_eyes((10, 10), (30, 30))
    assert a == FaceGeometry.from_eyes((30, 30), (10, 10))
    assert a.angle == pytest.approx(45.0) and a.size == pytest.approx(2.2 * math.hypot(20, 20))


def test_nearest_face_borrows_within_the_gap():
    track = {4: FaceGeometry(1, 1, 1), 9: FaceGeometry(2, 2, 2)}
    assert nearest_face(track, 6, 2) == track[4]
    assert nearest_face(track, 7, 2) == track[9]
    assert nearest_face(track, 0, 3) is None


def test_crop_centres_the_face_box_with_margin():
    image = np.zeros((48, 64, 3), np.uint8)
    image[:] = BACKGROUND_RGB
    x, y, w, h = 20, 10, 24, 24
    image[y : y + h, x : x + w] = SKIN_RGB
    crop = crop_face(image, FaceGeometry.from_box(x, y, w, h), margin=0.5, size=48)
    assert crop.shape == (48, 48, 3)
    # the 24-pixel box fills the middle 2/3 of the crop: pixels 8..40
    inside = crop[10:38, 10:38].reshape(-1, 3)
    assert np.abs(inside.astype(int) - SKIN_RGB).max() <= 2
    assert near(crop[4, 24], BACKGROUND_RGB, 2) and near(crop[24, 44], BACKGROUND_RGB, 2)


def test_crop_pads_outside_the_frame_and_refuses_faces_outside_it():
    image = np.full((40, 40, 3), 200, np.uint8)
    crop = crop_face(image, FaceGeometry(0, 20, 20), margin=0.0, size=20)
    assert crop[:, :8].max() == 0 and crop[:, 12:].min() == 200  # left half lies outside the frame: black
    assert crop_face(image, FaceGeometry(500, 500, 20), margin=0.2, size=20) is None


def test_large_downscale_averages_instead_of_aliasing():
    stripes = np.zeros((600, 600, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a point sampler returns 0 or 255, an average ~127
    crop = crop_face(stripes, FaceGeometry(300, 300, 400), margin=0.0, size=40)
    assert abs(float(crop[5:35, 5:35].mean()) - 127.5) < 5


def test_align_levels_the_eyes():
    image = np.full((200, 200, 3), 255, np.uint8)
    left, right = (80.0, 90.0), (80 + 40 * math.cos(math.radians(30)), 90 + 40 * math.sin(math.radians(30)))
    for cx, cy in (left, right):
        cv2.circle(image, (round(cx), round(cy)), 3, (0, 0, 0), -1)
    crop = crop_face(image, FaceGeometry.from_eyes(left, right), margin=0.0, size=88)
    ys, xs = np.nonzero(crop[:, :, 0] < 100)
    first, second = xs < 44, xs >= 44
    assert abs(ys[first].mean() - ys[second].mean()) < 1.0
    # 88 px show 2.2 x 40 px: the eyes are 40 px apart in the crop, on the line at 38% of its height
    assert xs[second].mean() - xs[first].mean() == pytest.approx(40, abs=1.5)
    assert ys.mean() == pytest.approx(0.38 * 88, abs=1.5)


# -- depth -------------------------------------------------------------------------------------------
def test_shape_prior_is_a_face_nose_nearest_zero_outside():
    prior = face_shape_prior(0.2, 32)
    assert prior.dtype == np.uint8 and prior.shape == (32, 32) and prior.max() == 255
    assert prior[0, 0] == prior[0, 31] == prior[31, 0] == 0  # corners are background
    peak_y, peak_x = np.unravel_index(np.argmax(prior), prior.shape)
    assert 14 <= peak_x <= 17 and 16 <= peak_y <= 22  # nose: centred, below the middle
    eye_row = round((1 + (-0.22) / 1.2) * 16)  # eye sockets lie lower than the nose ridge between them
    assert prior[eye_row, 9] < prior[eye_row, 16]


# -- the whole pipeline --------------------------------------------------------------------------------
def test_replay_frames_live_and_spoof(tmp_path):
    root = build_replay(tmp_path / "replay", [LIVE_VIDEO, SPOOF_VIDEO], n_frames=8)
    dataset = ReplayAttack(str(root), frames_per_video=3, crop_size=32, depth_size=16)
    spoof, live = dataset.records()
    frames = list(dataset.frames(live))
    assert [f.index for f in frames] == [1, 4, 6]
    assert frames[0].image.shape == (32, 32, 3) and near(frames[0].image[16, 16], SKIN_RGB)
    assert near(frames[0].image[1, 1], BACKGROUND_RGB)
    assert np.array_equal(frames[0].depth, face_shape_prior(0.2, 16))
    spoof_frames = list(dataset.frames(spoof))
    assert len(spoof_frames) == 3 and all(f.depth.shape == (16, 16) and f.depth.max() == 0 for f in spoof_frames)


def test_frames_without_face_are_left_out_and_a_faceless_video_skipped(tmp_path):
    root = build_replay(tmp_path / "replay", [LIVE_VIDEO, SPOOF_VIDEO], n_frames=6)
    write_box_file(root / "face-locations" / f"{LIVE_VIDEO}.face", 6, missing=[0, 1, 2])
    write_box_file(root / "face-locations" / f"{SPOOF_VIDEO}.face", 6, missing=range(6))
    dataset = ReplayAttack(str(root), every=1, face_gap=0, crop_size=16)
    spoof, live = dataset.records()
    assert [f.index for f in dataset.frames(live)] == [3, 4, 5]
    assert [f.index for f in ReplayAttack(str(root), every=1, face_gap=2, crop_size=16).frames(live)] == [1, 2, 3, 4, 5]
    with pytest.raises(SkipVideo, match=r"attack_print_client001.*\.mov: no usable frame \(6 sampled: 6 had no face\)"):
        list(dataset.frames(spoof))
    (root / "face-locations" / f"{LIVE_VIDEO}.face").unlink()
    with pytest.raises(SkipVideo, match=r"face annotation file .*authenticate_adverse_1.face is missing"):
        list(dataset.frames(live))


def test_unreadable_annotation_or_video_is_skipped(tmp_path):
    root = build_replay(tmp_path / "replay", [LIVE_VIDEO, SPOOF_VIDEO])
    (root / "face-locations" / f"{LIVE_VIDEO}.face").write_text("frame x y\n")
    (root / f"{SPOOF_VIDEO}.mov").write_bytes(b"\x00" * 100)
    dataset = ReplayAttack(str(root))
    spoof, live = dataset.records()
    with pytest.raises(SkipVideo, match="unreadable face annotation file"):
        list(dataset.frames(live))
    with pytest.raises(SkipVideo, match="attack_print.*cannot open the video"):
        list(dataset.frames(spoof))


def test_oulu_crops_from_eye_positions(tmp_path):
    root = build_oulu(tmp_path / "oulu", ["Train_files/1_1_01_1"])
    dataset = OuluNPU(str(root), frames_per_video=2, crop_size=44, margin=0.0)
    (frame, _) = list(dataset.frames(dataset.records()[0]))
    # the eye box is 2.2 x 9.6 px of the 24-px-wide blob: the crop is inside the skin, eyes dark on one row
    dark_y, dark_x = np.nonzero(frame.image.sum(axis=2) < 200)
    assert abs(dark_y[dark_x < 22].mean() - dark_y[dark_x >= 22].mean()) <= 1.0
    assert near(frame.image[40, 22], SKIN_RGB)


def test_msu_reads_corner_boxes_beside_the_video(tmp_path):
    root = build_msu(tmp_path / "msu", ["scene01/real/real_client001_laptop_SD_scene01.mov"], ["01"], [])
    dataset = MsuMFSD(str(root), frames_per_video=1, crop_size=24)
    (frame,) = dataset.frames(dataset.records()[0])
    assert near(frame.image[12, 12], SKIN_RGB) and frame.depth.max() == 255


def test_center_policy_and_folder_depth(tmp_path):
    root = build_casia(tmp_path / "casia", ["train_release/1/1"], n_frames=4)
    depth_dir = tmp_path / "depth"
    (depth_dir / "train_release/1/1").mkdir(parents=True)
    cv2.imwrite(str(depth_dir / "train_release/1/1/0_depth.jpg"), np.full((64, 64), 180, np.uint8))
    dataset = CasiaFASD(str(root), face="center", every=1, depth="folder", depth_dir=str(depth_dir), depth_size=8)
    (frame,) = dataset.frames(dataset.records()[0])  # frames 1-3 have no depth map: left out
    assert frame.index == 0 and frame.depth.shape == (8, 8) and abs(int(frame.depth.mean()) - 180) <= 2
    with pytest.raises(FasbenchError, match="is not a folder"):
        CasiaFASD(str(root), face="center", depth="folder", depth_dir=str(tmp_path / "nope")).records()


class FixedFinder(FaceFinder):
    """A third-party finder: the face is always the fixture's box."""

    def for_video(self, dataset, record):
        return lambda index, image: FaceGeometry.from_box(*FACE_BOX)


def test_third_party_face_finder_and_bad_names(tmp_path):
    root = build_casia(tmp_path / "casia", ["train_release/1/1"])
    dataset = CasiaFASD(str(root), face="test_real_frames:FixedFinder", frames_per_video=1, crop_size=16)
    (frame,) = dataset.frames(dataset.records()[0])
    assert near(frame.image[8, 8], SKIN_RGB)
    with pytest.raises(FasbenchError, match="unknown face finder 'mtcnn'; built-in: annotations, center, dlib"):
        CasiaFASD(str(root), face="mtcnn").records()
    with pytest.raises(FasbenchError, match="must be a subclass of FaceFinder"):
        CasiaFASD(str(root), face="test_real_frames:near").records()


def test_dlib_is_optional_with_a_clear_error(tmp_path, monkeypatch):
    root = build_casia(tmp_path / "casia", ["train_release/1/1"])
    monkeypatch.setitem(sys.modules, "dlib", None)  # as if not installed
    with pytest.raises(FasbenchError, match=r"pip install 'fasbench\[faces\]'"):
        CasiaFASD(str(root), face="dlib").records()


def test_dlib_finds_no_face_in_a_drawn_blob(tmp_path):
    pytest.importorskip("dlib")
    root = build_casia(tmp_path / "casia", ["train_release/1/1"])
    dataset = CasiaFASD(str(root), face="dlib", frames_per_video=2)
    with pytest.raises(SkipVideo, match="2 had no face"):
        list(dataset.frames(dataset.records()[0]))


# -- options and workers -------------------------------------------------------------------------------
def test_options_are_coerced_and_checked(tmp_path):
    dataset = ReplayAttack(str(tmp_path), every="2", align="false", margin="0.5", face_dir="none")
    assert (dataset.options["every"], dataset.options["align"], dataset.options["margin"]) == (2, False, 0.5)
    assert dataset.options["frames_per_video"] is None and dataset.options["face_dir"] is None
    assert dataset.cache_options()["dataset"] == "replay"
    with pytest.raises(FasbenchError, match="no option 'frame_size'; known: .*crop_size"):
        ReplayAttack(str(tmp_path), frame_size=3)
    with pytest.raises(FasbenchError, match="either every or frames_per_video"):
        ReplayAttack(str(tmp_path), every=2, frames_per_video=3)
    with pytest.raises(FasbenchError, match="'crop_size' must be int, got '2.5'"):
        ReplayAttack(str(tmp_path), crop_size="2.5")
    with pytest.raises(FasbenchError, match="'margin' must be >= 0"):
        ReplayAttack(str(tmp_path), margin=-1)


def test_dataset_and_records_survive_pickling_for_workers(tmp_path):
    root = build_replay(tmp_path / "replay", [LIVE_VIDEO])
    dataset = ReplayAttack(str(root), frames_per_video=2, crop_size=16)
    (record,) = dataset.records()  # builds the (unpicklable-in-general) finder and labeller
    clone, record_clone = pickle.loads(pickle.dumps((dataset, record)))
    expected = [(f.index, f.image.tobytes(), f.depth.tobytes()) for f in dataset.frames(record)]
    assert [(f.index, f.image.tobytes(), f.depth.tobytes()) for f in clone.frames(record_clone)] == expected
