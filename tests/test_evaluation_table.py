"""ScoreTable validation and video aggregation, and the scores file (both layouts)."""

import h5py
import numpy as np
import pytest

from fasbench.errors import FasbenchError, MissingDataError, UnknownNameError
from fasbench.evaluation import ScoreTable, read_scores, write_scores


def table(order=None):
    """Video 'a' (live): 0.6, 0.8; video 'b' (print): 0.2, 0.4, 0.9; video 'c' (replay): 0.3."""
    rows = [
        ("a", 0.6, 1, 0, "live"),
        ("a", 0.8, 1, 1, "live"),
        ("b", 0.2, 0, 0, "print"),
        ("b", 0.4, 0, 1, "print"),
        ("b", 0.9, 0, 2, "print"),
        ("c", 0.3, 0, 7, "replay"),
    ]
    rows = [rows[i] for i in (order or range(len(rows)))]
    video_id, score, label, frame_index, attack_type = map(np.array, zip(*rows, strict=True))
    return ScoreTable(score, label, video_id, frame_index, attack_type)


@pytest.mark.parametrize(
    ("reduce", "expected"), [("mean", [0.7, 0.5, 0.3]), ("median", [0.7, 0.4, 0.3]), ("max", [0.8, 0.9, 0.3])]
)
def test_by_video_hand_built(reduce, expected):
    videos = table().by_video(reduce)
    np.testing.assert_allclose(videos.score, expected)
    assert list(videos.video_id) == ["a", "b", "c"]
    assert list(videos.label) == [1, 0, 0] and list(videos.attack_type) == ["live", "print", "replay"]
    assert list(videos.frame_index) == [-1, -1, -1]


def test_by_video_does_not_depend_on_row_order():
    interleaved = table([4, 0, 2, 5, 1, 3])  # frames of a video not contiguous
    for reduce in ("mean", "median", "min"):
        np.testing.assert_allclose(interleaved.by_video(reduce).score, table().by_video(reduce).score)
    assert interleaved.n_videos == 3


def test_by_video_refuses_mixed_videos_and_unknown_reductions():
    mixed = ScoreTable([0.1, 0.2], [0, 0], ["v", "v"], [0, 1], ["print", "replay"])
    with pytest.raises(FasbenchError, match="video 'v' has frames with different attack_types"):
        mixed.by_video()
    with pytest.raises(UnknownNameError, match="did you mean 'mean'"):
        table().by_video("maen")


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (dict(score=[0.1, 0.2, 0.3]), "differ in length"),
        (dict(score=[], label=[], video_id=[], frame_index=[], attack_type=[]), "no frame was scored"),
        (dict(score=[0.1, np.nan]), "1 of 2 scores are NaN or infinite"),
        (dict(label=[0, 3], attack_type=["print", "print"]), "neither 0"),
        (dict(attack_type=["print", "print"]), "attack type 'live' goes with label 1"),
        (dict(score=[[0.1, 0.2]]), "one-dimensional"),
        (dict(frame_index=[0.5, 1.0]), "frame_index must hold integers"),
    ],
)
def test_table_validation(columns, message):
    good = dict(score=[0.1, 0.2], label=[0, 1], video_id=["s", "l"], frame_index=[0, 0], attack_type=["print", "live"])
    with pytest.raises(FasbenchError, match=message):
        ScoreTable(**{**good, **columns})


def test_scores_file_round_trip(tmp_path):
    original = ScoreTable([0.25, 0.75], [0, 1], ["O/vidéo-1", "O/2"], [3, 4], ["print", "live"])
    attrs = {"step": 7, "selection": "last", "config": {"lr": 0.001, "domains": ["I", "C"]}, "note": None}
    path = tmp_path / "scores" / "target.h5"
    write_scores(path, original, attrs)
    loaded, loaded_attrs = read_scores(path)
    for name in ("score", "label", "video_id", "frame_index", "attack_type"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded_attrs == {**attrs, "layout": "fasbench"}
    assert [p.name for p in path.parent.iterdir()] == ["target.h5"]  # no temporary file left


def test_seed_layout_is_read_with_one_video_per_frame(tmp_path):
    path = tmp_path / "Test_data.h5"
    with h5py.File(path, "w") as handle:  # the seed code stacks per-batch arrays: (batches, batch size)
        handle["score"] = np.array([[0.1, 0.9], [0.8, 0.3]])
        handle["label"] = np.array([[0, 1], [1, 0]])
    loaded, attrs = read_scores(path)
    np.testing.assert_array_equal(loaded.score, [0.1, 0.9, 0.8, 0.3])
    np.testing.assert_array_equal(loaded.label, [0, 1, 1, 0])
    assert attrs == {"layout": "seed"} and loaded.n_videos == 4
    assert list(loaded.attack_type) == ["spoof", "live", "live", "spoof"]


def test_bad_scores_files_are_refused(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        read_scores(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FasbenchError, match="not a readable HDF5"):
        read_scores(tmp_path / "text.h5")
    with h5py.File(tmp_path / "partial.h5", "w") as handle:
        handle["score"], handle["label"], handle["video_id"] = [0.1, 0.9], [0, 1], [b"a", b"b"]
    with pytest.raises(FasbenchError, match="lacks frame_index, attack_type"):
        read_scores(tmp_path / "partial.h5")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["logits"] = [0.1]
    with pytest.raises(FasbenchError, match=r"no 'score' and 'label' datasets \(it has: logits\)"):
        read_scores(tmp_path / "other.h5")
    with pytest.raises(FasbenchError, match="reserved"):
        write_scores(tmp_path / "x.h5", table(), {"layout": "mine"})
