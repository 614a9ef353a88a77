"""The user config file: dataset roots and default options, found via $FASBENCH_CONFIG or XDG, checked."""

from __future__ import annotations

import pytest

from fasbench.userconfig import UserConfigError, config_path, load_user_config


def test_location(tmp_path, monkeypatch):
    monkeypatch.delenv("FASBENCH_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "fasbench" / "config.yaml"
    monkeypatch.setenv("FASBENCH_CONFIG", str(tmp_path / "mine.yaml"))
    assert config_path() == tmp_path / "mine.yaml"


def test_missing_or_empty_file_is_an_empty_config(tmp_path):
    config = load_user_config(tmp_path / "absent.yaml")
    assert config.root("oulu") is None and config.dataset_options("oulu") == {}
    (tmp_path / "empty.yaml").write_text("")
    assert load_user_config(tmp_path / "empty.yaml").roots == {}


def test_roots_and_options(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "config.yaml"
    path.write_text("roots:\n  oulu: ~/data/Oulu_NPU\n  msu: /data/MSU\noptions:\n  casia: {face: dlib, every: 3}\n")
    config = load_user_config(path)
    assert config.root("oulu") == str(tmp_path / "data" / "Oulu_NPU")
    assert config.root("msu") == "/data/MSU" and config.root("replay") is None
    options = config.dataset_options("casia")
    assert options == {"face": "dlib", "every": 3}
    options["face"] = "center"  # a copy: the config is not changed
    assert config.dataset_options("casia")["face"] == "dlib"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roots: [oops", "cannot read the fasbench config file"),
        ("- a\n- b\n", "expected a mapping"),
        ("root:\n  oulu: /x\n", "unknown key 'root' \\(allowed: roots, options\\)"),
        ("roots:\n  oulu: 3\n", "roots.oulu must be a folder path"),
        ("roots: /data\n", "roots must be a mapping"),
        ("options:\n  casia: dlib\n", "options.casia must be a mapping"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(UserConfigError, match=message) as error:
        load_user_config(path)
    assert str(path) in str(error.value)
