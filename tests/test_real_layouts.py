"""The four real-dataset plugins parse generated official layouts into exactly the expected records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fasbench_plugins.real import CasiaFASD, MsuMFSD, OuluNPU, ReplayAttack
from fasbench_plugins.real.oulu import parse_protocol_line
from fixtures_real import build_casia, build_msu, build_oulu, build_replay

from fasbench.errors import FasbenchError, MissingDataError
from fasbench.plugins import installed_plugins


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "no-config.yaml"))


def summary(records):
    return [(r.video_id, r.label, r.attack_type, r.subject, r.split) for r in records]


# -- OULU-NPU ------------------------------------------------------------------------------------
OULU_VIDEOS = [
    "Train_files/1_1_01_1",
    "Train_files/1_1_01_2",
    "Train_files/2_2_01_4",
    "Dev_files/6_2_21_3",
    "Dev_files/6_2_21_5",
    "Test_files/3_3_36_1",
    "Test_files/3_3_36_4",
]
OULU_PROTOCOLS = {
    "Protocol_1/Train.txt": "+1,1_1_01_1\n-1,1_1_01_2\n",
    "Protocol_1/Dev.txt": "-1,6_2_21_3\n",
    "Protocol_1/Test.txt": "+1,3_3_36_1\n-2,3_3_36_4\n",
    "Protocol_3/Train_2.txt": "-1,1_1_01_2\n",
    "Protocol_3/Dev_2.txt": "-1,6_2_21_5\n",
    "Protocol_3/Test_2.txt": "-2,3_3_36_4\n",
}


def test_oulu_all_videos_split_by_folder(tmp_path):
    root = build_oulu(tmp_path / "oulu", OULU_VIDEOS, OULU_PROTOCOLS)
    (root / "Train_files" / "notes.avi").write_bytes(b"")  # not an official name: left out
    records = OuluNPU(str(root)).records()
    assert summary(records) == [
        ("Dev_files/6_2_21_3", 0, "print_2", "21", "dev"),
        ("Dev_files/6_2_21_5", 0, "replay_2", "21", "dev"),
        ("Test_files/3_3_36_1", 1, "live", "36", "test"),
        ("Test_files/3_3_36_4", 0, "replay_1", "36", "test"),
        ("Train_files/1_1_01_1", 1, "live", "01", "train"),
        ("Train_files/1_1_01_2", 0, "print_1", "01", "train"),
        ("Train_files/2_2_01_4", 0, "replay_1", "01", "train"),
    ]
    assert dict(records[0].meta) == {"phone": "6", "session": "2", "instrument": "printer 2", "protocol": "all"}
    assert records[4].path == str(root / "Train_files" / "1_1_01_1.avi")


def test_oulu_protocol_lists_choose_videos_and_splits(tmp_path):
    root = build_oulu(tmp_path / "oulu", OULU_VIDEOS, OULU_PROTOCOLS)
    assert summary(OuluNPU(str(root), protocol="1").records()) == [
        ("Dev_files/6_2_21_3", 0, "print_2", "21", "dev"),
        ("Test_files/3_3_36_1", 1, "live", "36", "test"),
        ("Test_files/3_3_36_4", 0, "replay_1", "36", "test"),
        ("Train_files/1_1_01_1", 1, "live", "01", "train"),
        ("Train_files/1_1_01_2", 0, "print_1", "01", "train"),
    ]
    assert [r.video_id for r in OuluNPU(str(root), protocol="3_2").records()] == [
        "Dev_files/6_2_21_5",
        "Test_files/3_3_36_4",
        "Train_files/1_1_01_2",
    ]
    with pytest.raises(FasbenchError, match=r"Protocol_2/Train.txt is missing"):
        OuluNPU(str(root), protocol="2").records()
    with pytest.raises(FasbenchError, match="protocol' must be one of"):
        OuluNPU(str(root), protocol="5")


@pytest.mark.parametrize(
    ("line", "message"),
    [("-1,1_1_01_1", "contradicts access type 1"), ("+1,1_1_01_3", "contradicts"), ("1_1_01_1", "expected 'label,")],
)
def test_oulu_protocol_line_errors_name_the_line(line, message):
    assert parse_protocol_line("-2,1_3_36_5", "x") == ("1_3_36_5", 0)
    with pytest.raises(FasbenchError, match=message):
        parse_protocol_line(line, "Protocols/Protocol_1/Train.txt:7")


def test_oulu_listed_but_missing_video_is_kept_for_the_manifest(tmp_path):
    root = build_oulu(tmp_path / "oulu", OULU_VIDEOS[:2], {"Protocol_1/Train.txt": "+1,1_1_02_1\n"})
    for name in ("Dev.txt", "Test.txt"):
        (root / "Protocols" / "Protocol_1" / name).write_text("")
    (record,) = OuluNPU(str(root), protocol="1", face="center").records()
    assert record.video_id == "Train_files/1_1_02_1" and not Path(record.path).exists()


# -- CASIA-FASD ----------------------------------------------------------------------------------
def test_casia_names_give_kind_quality_and_global_subject(tmp_path):
    root = build_casia(
        tmp_path / "casia",
        ["train_release/1/1", "train_release/1/4", "train_release/1/HR_3", "test_release/2/8", "test_release/2/HR_1"],
    )
    records = CasiaFASD(str(root), face="center").records()
    assert summary(records) == [
        ("test_release/2/8", 0, "replay", "22", "test"),
        ("test_release/2/HR_1", 1, "live", "22", "test"),
        ("train_release/1/1", 1, "live", "01", "train"),
        ("train_release/1/4", 0, "print_warped", "01", "train"),
        ("train_release/1/HR_3", 0, "print_cut", "01", "train"),
    ]
    assert [r.meta["quality"] for r in records] == ["low", "high", "normal", "low", "high"]


def test_casia_needs_an_explicit_face_policy(tmp_path):
    root = build_casia(tmp_path / "casia", ["train_release/1/1"])
    with pytest.raises(FasbenchError, match="CASIA-FASD ships no face annotations.*face=dlib.*face=center"):
        CasiaFASD(str(root)).records()


# -- Replay-Attack -------------------------------------------------------------------------------
def test_replay_folders_and_names(tmp_path, caplog):
    root = build_replay(
        tmp_path / "replay",
        [
            "train/real/client001_session01_webcam_authenticate_controlled_2",
            "train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse",
            "devel/attack/hand/attack_mobile_client003_session01_mobile_video_controlled",
            "test/attack/hand/attack_highdef_client101_session01_highdef_photo_adverse",
            "test/real/client101_session01_webcam_authenticate_adverse_1",
        ],
    )
    (root / "test" / "real" / "client101_session01_webcam_enroll_adverse.mov").write_bytes(b"")  # not read
    (root / "test" / "real" / "client101.mov").write_bytes(b"")  # not an official name: left out, named
    with caplog.at_level(logging.WARNING, logger="fasbench.real"):
        records = ReplayAttack(str(root)).records()
    assert "1 file(s) do not follow the official naming" in caplog.text and "client101.mov" in caplog.text
    assert summary(records) == [
        (
            "devel/attack/hand/attack_mobile_client003_session01_mobile_video_controlled",
            0,
            "replay_mobile_video",
            "003",
            "dev",
        ),
        (
            "test/attack/hand/attack_highdef_client101_session01_highdef_photo_adverse",
            0,
            "replay_highdef_photo",
            "101",
            "test",
        ),
        ("test/real/client101_session01_webcam_authenticate_adverse_1", 1, "live", "101", "test"),
        ("train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse", 0, "print", "001", "train"),
        ("train/real/client001_session01_webcam_authenticate_controlled_2", 1, "live", "001", "train"),
    ]
    assert dict(records[0].meta) == {
        "session": "01",
        "light": "controlled",
        "support": "hand",
        "device": "mobile",
        "sample": "mobile_video",
    }
    assert records[4].meta["take"] == "2"


def test_replay_without_face_locations_says_where_they_come_from(tmp_path):
    root = build_replay(
        tmp_path / "replay", ["train/real/client001_session01_webcam_authenticate_adverse_1"], annotate=False
    )
    with pytest.raises(FasbenchError, match="face-locations"):
        ReplayAttack(str(root)).records()
    assert len(ReplayAttack(str(root), face="center").records()) == 1


# -- MSU-MFSD ------------------------------------------------------------------------------------
def test_msu_names_and_subject_lists(tmp_path, caplog):
    root = build_msu(
        tmp_path / "msu",
        [
            "scene01/real/real_client002_android_SD_scene01.mp4",
            "scene01/real/real_client001_laptop_SD_scene01.mov",
            "scene01/attack/attack_client001_laptop_SD_printed_photo_scene01.mov",
            "scene01/attack/attack_client002_android_SD_ipad_video_scene01.mp4",
            "scene01/attack/attack_client002_android_SD_iphone_video_scene01.mp4",
            "scene01/attack/attack_client004_laptop_SD_ipad_video_scene01.mov",
        ],
        train_subjects=["02"],
        test_subjects=["01"],
    )
    with caplog.at_level(logging.WARNING, logger="fasbench.real"):
        records = MsuMFSD(str(root)).records()
    assert summary(records) == [
        ("scene01/attack/attack_client001_laptop_SD_printed_photo_scene01", 0, "print", "001", "test"),
        ("scene01/attack/attack_client002_android_SD_ipad_video_scene01", 0, "replay_ipad", "002", "train"),
        ("scene01/attack/attack_client002_android_SD_iphone_video_scene01", 0, "replay_iphone", "002", "train"),
        ("scene01/real/real_client001_laptop_SD_scene01", 1, "live", "001", "test"),
        ("scene01/real/real_client002_android_SD_scene01", 1, "live", "002", "train"),
    ]
    assert dict(records[4].meta) == {"device": "android", "scene": "01"}
    assert "subjects ['004'] are in neither subject list" in caplog.text


def test_msu_subject_list_errors(tmp_path):
    root = build_msu(tmp_path / "msu", ["scene01/real/real_client001_laptop_SD_scene01.mov"], ["01"], ["01"])
    with pytest.raises(FasbenchError, match="subject 1 is in both"):
        MsuMFSD(str(root)).records()
    (root / "test_sub_list.txt").unlink()
    with pytest.raises(MissingDataError, match="test_sub_list.txt is missing"):
        MsuMFSD(str(root)).records()


# -- roots ---------------------------------------------------------------------------------------
def test_missing_root_tells_both_ways_to_give_it(tmp_path):
    with pytest.raises(MissingDataError, match=r"(?s)--root DIR.*no-config.yaml.*roots:\n    oulu:"):
        OuluNPU().records()
    with pytest.raises(MissingDataError, match="does not exist"):
        OuluNPU(str(tmp_path / "nowhere")).records()


@pytest.mark.parametrize(
    ("cls", "missing"),
    [(OuluNPU, "Train_files"), (CasiaFASD, "train_release"), (ReplayAttack, "train"), (MsuMFSD, "scene01/real")],
)
def test_root_of_another_dataset_is_refused_naming_what_is_missing(tmp_path, cls, missing):
    (tmp_path / "not_it" / "videos").mkdir(parents=True)
    with pytest.raises(MissingDataError, match=f"does not look like {cls.title}: '{missing}' is missing"):
        cls(str(tmp_path / "not_it")).records()


def test_official_layout_without_videos_is_refused(tmp_path):
    root = build_oulu(tmp_path / "oulu", [])
    with pytest.raises(MissingDataError, match="no OULU-NPU video found"):
        OuluNPU(str(root)).records()


def test_root_and_options_from_the_user_config(tmp_path, monkeypatch):
    root = build_casia(tmp_path / "casia", ["train_release/3/2"])
    config = tmp_path / "config.yaml"
    config.write_text(f"roots:\n  casia: {root}\noptions:\n  casia: {{face: center, every: '4'}}\n")
    monkeypatch.setenv("FASBENCH_CONFIG", str(config))
    dataset = CasiaFASD()
    assert [r.video_id for r in dataset.records()] == ["train_release/3/2"]
    assert dataset.options["every"] == 4 and dataset.options["frames_per_video"] is None
    assert CasiaFASD(face="dlib").options["face"] == "dlib"  # an explicit option wins


def test_plugins_are_registered_under_the_domain_names():
    plugins = installed_plugins()
    assert {"oulu", "casia", "replay", "msu"} <= set(plugins.names("datasets"))
    assert plugins.get("datasets", "replay").obj is ReplayAttack
