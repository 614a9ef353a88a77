"""The ``fasbench`` command: list, info, version, errors."""

import subprocess
import sys

import pytest
import yaml

from fasbench import __version__
from fasbench.benchmark import PACKAGED
from fasbench.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_list_protocols(capsys):
    status, out, _ = run(capsys, "list", "protocols")
    assert status == 0
    for name in ("OCI_M", "OMI_C", "OCM_I", "ICM_O", "MI_C", "MI_O"):
        assert name in out


def test_list_accepts_singular_and_suggests_on_typo(capsys):
    assert run(capsys, "list", "protocol")[0] == 0
    status, _, err = run(capsys, "list", "lerners")
    assert status == 2 and "did you mean 'learners'" in err


def test_info_protocol_and_unknown_name(capsys):
    status, out, _ = run(capsys, "info", "ICM_O")
    assert status == 0 and "train on I, C, M; test on O" in out
    status, _, err = run(capsys, "info", "ICM_Q")
    assert status == 2 and "did you mean 'ICM_O'" in err


def test_info_shows_every_kind_that_shares_a_name_and_list_modes(capsys):
    status, out, _ = run(capsys, "info", "ssdg")
    text = " ".join(out.split())
    assert status == 0
    assert "data convention ssdg" in text and "mode ssdg:" in text and "learner ssdg" in text
    assert "selection oracle, threshold policy test_eer; used by: ssdg" in text
    assert "'triplet_weight': 2.0" in text and "--mode paper (= --mode ssdg)" in text
    status, out, _ = run(capsys, "list", "modes")
    assert status == 0 and "ssdg" in out and "safas" in out


def test_registry_option_reads_a_user_file(capsys, tmp_path):
    data = yaml.safe_load(PACKAGED.read_text())
    data["protocols"] = {"CI_M": {"sources": ["C", "I"], "target": "M"}}
    data["leaderboard"].pop("protocols")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    status, _, err = run(capsys, "--benchmark", str(path), "list", "protocols")
    assert status == 2 and "learners.anrl.reported.protocols: unknown protocol 'ICM_O' (known: CI_M)" in " ".join(
        err.split()
    )
    for entry in data["learners"].values():  # per-protocol settings and numbers name declared protocols only
        entry.pop("reported", None)
    path.write_text(yaml.safe_dump(data))
    status, _, err = run(capsys, "--benchmark", str(path), "list", "protocols")
    assert status == 2 and "learners.safas.protocols: unknown protocol 'ICM_O' (known: CI_M)" in " ".join(err.split())
    for entry in data["learners"].values():
        entry.pop("protocols", None)
    path.write_text(yaml.safe_dump(data))
    status, out, _ = run(capsys, "--benchmark", str(path), "list", "protocols")
    assert status == 0 and "CI_M" in out and "ICM_O" not in out


def test_registry_errors_are_one_clean_line(capsys, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("domains: {}\nprotocols: {}\nsuites: {}\n")
    status, _, err = run(capsys, "--benchmark", str(path), "list", "protocols")
    assert status == 2 and "broken.yaml: domains: no domain declared" in err and "Traceback" not in err


def test_console_script_version():
    result = subprocess.run(
        [sys.executable, "-m", "fasbench.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"fasbench {__version__}"


def test_no_command_prints_help(capsys):
    status, _, err = run(capsys)
    assert status == 2 and "usage: fasbench" in err


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    info = tmp_path / "fbtest_cli_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fbtest-cli-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fasbench.plugins]\nbroken = fbtest_cli_broken\n")
    (tmp_path / "fbtest_cli_broken.py").write_text("raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_broken_plugin_warns_but_list_still_works(capsys, broken_plugin):
    status, out, err = run(capsys, "list", "learners")
    assert status == 0
    assert "learners (" in out
    assert "plugin 'broken' (fbtest-cli-broken 0.1) failed to load" in err and "needs libfoo" in err


def test_info_shows_a_datasets_options_and_its_module_notes(capsys):
    status, out, _ = run(capsys, "info", "msu")
    assert status == 0
    assert "MSU-MFSD (M)" in out and "bob.db.msu_mfsd_mod" in out  # class doc, then the module's naming notes
    assert "'frames_per_video': 10" in out and "'face_gap': 5" in out and "'depth': 'prior'" in out
