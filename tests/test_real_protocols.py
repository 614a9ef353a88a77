"""The real path end to end, as a user runs it: tiny trees in the four official layouts, `fasbench prepare
--suite real`, every protocol of registry.yaml under every data convention, then the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fixtures_real import build_casia, build_msu, build_oulu, build_replay

from fasbench.benchmark import PACKAGED
from fasbench.cli import main
from fasbench.data import read_manifest
from fasbench.results.store import ResultsStore

pytestmark = pytest.mark.usefixtures("one_thread")
SIZES = {"crop_size": 32, "depth_size": 4, "frames_per_video": 2}
TINY = {
    "description": "tests: 32 px, 1/16 width",
    "budget": 2,
    "eval_every": 2,
    "checkpoint_every": 2,
    "log_every": 1,
    "backbone": {"width": 0.0625, "input_size": 32},
    "hparams": {"batch_per_class": 2},
}
CONVENTIONS = ("fasbench", "all_sources", "official")
PROTOCOLS = ("OCI_M", "OMI_C", "OCM_I", "ICM_O", "MI_C", "MI_O")
REPLAY_ATTACK = "attack/{support}/attack_print_client{c}_session01_highdef_photo_adverse"


def _replay_videos():
    videos = []
    for split, clients in (("train", ("001", "002")), ("devel", ("003",)), ("test", ("009",))):
        for client in clients:
            videos.append(f"{split}/real/client{client}_session01_webcam_authenticate_adverse_1")
            videos.append(f"{split}/{REPLAY_ATTACK.format(support='fixed', c=client)}")
    return videos


def _msu_videos(clients):
    videos = []
    for client in clients:
        videos.append(f"scene01/real/real_client{client}_laptop_SD_scene01.mov")
        videos.append(f"scene01/attack/attack_client{client}_laptop_SD_printed_photo_scene01.mov")
    return videos


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """Four dataset trees, a user config naming them, a registry with small crops and a tiny preset, prepared."""
    folder = tmp_path_factory.mktemp("real")
    roots = {name: folder / name for name in ("oulu", "casia", "replay", "msu")}
    oulu_users = {"Train_files": ("01", "02"), "Dev_files": ("21",), "Test_files": ("36", "37")}
    build_oulu(
        roots["oulu"],
        [f"{d}/1_1_{u}_{a}" for d, users in oulu_users.items() for u in users for a in (1, 2)],
        n_frames=4,
    )
    casia = [
        f"{r}/{n}/{f}" for r, ns in (("train_release", (1, 2, 3)), ("test_release", (1, 2))) for n in ns for f in (1, 3)
    ]
    build_casia(roots["casia"], casia, n_frames=4)
    build_replay(roots["replay"], _replay_videos(), n_frames=4)
    build_msu(roots["msu"], _msu_videos(("002", "003", "001", "005")), ["02", "03"], ["01", "05"], n_frames=4)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"roots": {k: str(v) for k, v in roots.items()}}))
    data = yaml.safe_load(PACKAGED.read_text())
    for domain in data["domains"].values():
        domain["options"] = {**SIZES, **({"face": "center"} if domain["dataset"] == "casia" else {})}
    data["presets"]["tiny"] = TINY
    benchmark = folder / "registry.yaml"
    benchmark.write_text(yaml.safe_dump(data))
    setup = {"benchmark": str(benchmark), "cache": str(folder / "cache"), "config": str(config), "folder": folder}
    return setup


@pytest.fixture()
def cli(real, monkeypatch):
    monkeypatch.setenv("FASBENCH_CONFIG", real["config"])

    def call(*argv: str) -> int:
        return main(["--benchmark", real["benchmark"], *argv])

    return call


def run(cli, real, protocol: str, convention: str, out: Path) -> int:
    """``fasbench run binary_cnn`` on the real suite with the tiny preset, under ``convention``."""
    argv = ["run", "binary_cnn", "--protocol", protocol, "--suite", "real", "--preset", "tiny", "--seeds", "0"]
    argv += ["--out", str(out), "--cache-dir", real["cache"], "--no-progress"]
    return cli(*argv, "--cfg-options", f"data.convention={convention}")


def test_prepare_reports_the_copy_against_the_official_lists(real, cli, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one table line per domain
    assert cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress") == 0
    printed = capsys.readouterr()
    lines = {line.split()[1]: line for line in printed.out.splitlines() if "(" in line and "of" in line}
    assert "10 of 4,950 videos (4,940 missing)" in lines["O"]
    assert "10 of 600 videos (590 missing)" in lines["C"] and "8 of 1,200 videos (1,192 missing)" in lines["I"]
    # the tree puts MSU-MFSD client 005 in the test list; the official lists have it in train
    assert "8 of 280 videos (272 missing, 2 differing)" in lines["M"]
    warned = " ".join(printed.err.split())
    assert "msu: the copy has 8 of 280 videos" in warned and "with another label, split or attack type" in warned
    manifest = read_manifest(next(Path(real["cache"]).glob("msu-*.h5")))["canonical"]
    assert manifest["differing"] == [
        "scene01/attack/attack_client005_laptop_SD_printed_photo_scene01",
        "scene01/real/real_client005_laptop_SD_scene01",
    ]


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_every_protocol_runs_to_a_result_under_every_convention(real, cli, capsys, convention):
    cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress")
    out = real["folder"] / f"runs-{convention}"
    for protocol in PROTOCOLS:
        assert run(cli, real, protocol, convention, out) == 0, capsys.readouterr().err
    records = [json.loads(p.read_text()) for p in sorted(out.rglob("record.json"))]
    assert sorted(r["protocol"] for r in records) == sorted(PROTOCOLS)
    assert {r["convention"] for r in records} == {convention}
    store_rows = ResultsStore(out / "results.sqlite").rows(selection="last", threshold_policy="test_eer", level="video")
    assert len(store_rows) == len(PROTOCOLS) and {r.convention for r in store_rows} == {convention}
    capsys.readouterr()
    board = ["leaderboard", "--out", str(out), "--suite", "real", "--preset", "tiny", "--protocols", *PROTOCOLS]
    board += ["--format", "markdown"]
    assert cli(*board) == 0
    table = capsys.readouterr().out
    assert f"data convention {convention}:" in table and all(p.replace("_", "→") in table for p in PROTOCOLS)


def _videos(out: Path, protocol: str) -> dict:
    (path,) = (out / "binary_cnn").glob(f"{protocol}-real/*/videos.json")
    return json.loads(path.read_text())


def test_roles_and_held_out_videos_are_recorded_with_the_run(real, cli):
    cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress")
    for convention in CONVENTIONS:
        assert run(cli, real, "ICM_O", convention, real["folder"] / f"runs-{convention}") == 0
    fasbench = _videos(real["folder"] / "runs-fasbench", "ICM_O")
    counts = fasbench["counts"]
    # O is scored on all 10 videos; I validates on its devel split; C and M on held-out subjects
    assert counts["O"]["target"] == {"videos": 10, "live": 5, "spoof": 5}
    assert fasbench["domains"]["I"]["validation_from"] == "dev" and counts["I"]["validation"]["videos"] == 2
    casia = fasbench["domains"]["C"]
    assert casia["validation_from"] == "holdout" and len(casia["held_out_subjects"]) == 1
    assert not set(casia["validation"]) & set(casia["train"]) and len(casia["validation"]) == 2
    official = _videos(real["folder"] / "runs-official", "ICM_O")
    assert official["counts"]["O"]["target"]["videos"] == 4  # OULU's test split: users 36, 37
    assert official["counts"]["C"] == {
        "train": {"videos": 4, "live": 2, "spoof": 2},
        "validation": {"videos": 2, "live": 1, "spoof": 1},
    }
    everything = _videos(real["folder"] / "runs-all_sources", "ICM_O")
    assert everything["counts"]["C"] == {"train": {"videos": 10, "live": 5, "spoof": 5}}
    (record,) = (real["folder"] / "runs-fasbench" / "binary_cnn").glob("ICM_O-real/*/record.json")
    data = json.loads(record.read_text())["data"]
    assert data["canonical"]["O"]["present"] == 10 and data["canonical"]["O"]["expected"] == 4950
    assert len(data["videos_sha256"]) == 64


def test_without_source_validation_the_table_says_why_its_cells_are_empty(real, cli, capsys):
    cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress")
    out = real["folder"] / "runs-empty"
    assert run(cli, real, "MI_C", "all_sources", out) == 0
    (record,) = out.rglob("record.json")
    evaluations = json.loads(record.read_text())["evaluations"]
    assert {e["selection"] for e in evaluations} == {"last", "oracle", "oracle_auc_hter", "last_k_mean", "oracle_last"}
    assert "source_val" not in {e["policy"] for e in evaluations}
    capsys.readouterr()
    assert cli("leaderboard", "--out", str(out), "--preset", "tiny", "--selection", "source_val") == 2
    assert "no results for protocols OCI_M, OMI_C, OCM_I, ICM_O (the results hold MI_C)" in capsys.readouterr().err
    board = ["leaderboard", "--out", str(out), "--preset", "tiny", "--protocols", "MI_C", "--format", "markdown"]
    assert cli(*board, "--selection", "source_val") == 0
    table = capsys.readouterr().out
    assert "| binary_cnn | – |" in table and "Cells are empty: under convention all_sources" in table


def test_info_shows_the_counts_per_role_before_training(real, cli, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress")
    capsys.readouterr()
    assert cli("info", "ICM_O", "--suite", "real", "--convention", "official", "--cache-dir", real["cache"]) == 0
    shown = capsys.readouterr().out
    assert "validation (holdout)" in shown and "validation (dev)" in shown and "prepared cache" in shown
    empty = real["folder"] / "empty-cache"
    assert cli("info", "ICM_O", "--suite", "real", "--cache-dir", str(empty)) == 0
    assert "4950" in capsys.readouterr().out  # not prepared there: counted from OULU-NPU's official list


def test_a_convention_whose_role_is_empty_is_refused_before_training(real, cli, capsys, tmp_path):
    cli("prepare", "--suite", "real", "--cache-dir", real["cache"], "--no-progress")
    data = yaml.safe_load(Path(real["benchmark"]).read_text())
    data["conventions"]["dev_only"] = {
        "description": "trains on dev",
        "train": ["dev"],
        "validation": "holdout",
        "target": "all",
    }
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(data))
    out = tmp_path / "runs"
    argv = [
        "--benchmark",
        str(registry),
        "run",
        "binary_cnn",
        "--protocol",
        "OCI_M",
        "--suite",
        "real",
        "--preset",
        "tiny",
    ]
    capsys.readouterr()
    assert (
        main([*argv, "--out", str(out), "--cache-dir", real["cache"], "--cfg-options", "data.convention=dev_only"]) == 2
    )
    message = capsys.readouterr().err
    assert "source O (oulu) under convention 'dev_only': its split dev holds 1 subject(s)" in message
    assert "Traceback" not in message and "run 1/" not in message  # refused before the first run started
    assert not list(out.rglob("checkpoint.pt")) and not list(out.rglob("config.json"))


def test_a_cache_prepared_again_with_other_frames_is_another_run(real, cli, capsys, tmp_path, monkeypatch):
    """The cache file's name follows the benchmark's options, its frames also the user's config: when the frames
    change, the run's identity (the caches' content hashes) changes, so an old result is never taken for new."""
    cache = str(tmp_path / "cache")
    cli("prepare", "--suite", "real", "--cache-dir", cache, "--no-progress")
    out = tmp_path / "runs"
    argv = ["run", "binary_cnn", "--protocol", "MI_C", "--suite", "real", "--preset", "tiny", "--seeds", "0"]
    argv += ["--out", str(out), "--cache-dir", cache, "--no-progress"]
    assert cli(*argv) == 0
    config = yaml.safe_load(Path(real["config"]).read_text())
    changed = tmp_path / "config.yaml"
    changed.write_text(yaml.safe_dump({**config, "options": {"msu": {"margin": 0.6}}}))
    monkeypatch.setenv("FASBENCH_CONFIG", str(changed))
    assert cli("prepare", "msu", "--cache-dir", cache, "--no-progress") == 0  # same file name, other frames
    capsys.readouterr()
    assert cli(*argv) == 0
    assert "already finished" not in capsys.readouterr().err
    assert len(list(out.rglob("done"))) == 2
