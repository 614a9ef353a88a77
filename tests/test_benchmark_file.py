"""registry.yaml: the shipped file, and the schema check's refusals."""

import copy

import pytest
import yaml

from fasbench.benchmark import PACKAGED, load_benchmark, parse_benchmark
from fasbench.errors import FasbenchError, RegistryFileError, UnknownNameError


def shipped():
    return yaml.safe_load(PACKAGED.read_text())


def test_shipped_registry_declares_the_leave_one_out_protocols():
    spec = load_benchmark()
    expected = {"OCI_M": ("OCI", "M"), "OMI_C": ("OMI", "C"), "OCM_I": ("OCM", "I"), "ICM_O": ("ICM", "O")}
    for name, (sources, target) in expected.items():
        protocol = spec.protocol(name)
        assert "".join(protocol.sources) == sources and protocol.target == target
    assert spec.protocol("MI_C").sources == ("M", "I")
    assert {d.dataset for d in spec.suite("real").domains.values()} == {"oulu", "casia", "replay", "msu"}
    synthetic = spec.suite("synthetic").domains
    assert {k: (d.dataset, d.options["domain"]) for k, d in synthetic.items()} == {k: ("synthetic", k) for k in "OCIM"}
    assert synthetic["O"].name == "OULU-NPU"  # the human name is inherited from `domains`


def test_unknown_protocol_and_suite_suggest():
    spec = load_benchmark()
    with pytest.raises(UnknownNameError, match="did you mean 'ICM_O'"):
        spec.protocol("ICM-O")
    with pytest.raises(UnknownNameError, match="did you mean 'synthetic'"):
        spec.suite("synthetc")


def mutated(change):
    data = copy.deepcopy(shipped())
    change(data)
    return data


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.update(extra=1), r"top level: unknown key 'extra'"),
        (lambda d: d["protocols"]["OCI_M"].update(source=["O"]), r"protocols\.OCI_M: unknown key 'source'"),
        (lambda d: d["protocols"]["OCI_M"].update(sources=["O", "X"]), r"protocols\.OCI_M: unknown domain 'X'"),
        (lambda d: d["protocols"]["OCI_M"].update(target="O"), r"protocols\.OCI_M: target 'O' is also a source"),
        (lambda d: d["protocols"]["OCI_M"].update(sources=["O", "O"]), r"protocols\.OCI_M: a source domain is listed"),
        (lambda d: d["protocols"]["OCI_M"].pop("target"), r"protocols\.OCI_M: missing key 'target'"),
        (lambda d: d["domains"]["O"].pop("dataset"), r"domains\.O: missing key 'dataset'"),
        (lambda d: d["suites"]["synthetic"]["domains"].update(Z={"dataset": "x"}), r"suites\.synthetic\.domains"),
        (lambda d: d["defaults"].update(suite="nope"), r"defaults\.suite: unknown suite 'nope'"),
        (lambda d: d["defaults"].pop("budget"), r"defaults: missing key 'budget'"),
        (lambda d: d["defaults"]["data"].pop("workers"), r"defaults\.data: missing key 'workers'"),
        (lambda d: d["defaults"].update(eval_every=0), r"defaults\.eval_every: must be a positive integer"),
        (lambda d: d["leaderboard"].update(protocols=["OCI_M", "XYZ"]), r"leaderboard\.protocols: unknown protocol"),
        (lambda d: d["leaderboard"].update(seeds=[0, "1"]), r"leaderboard\.seeds: expected a list of integers"),
        (lambda d: d.update(version=2), r"version: unsupported version 2"),
        (
            lambda d: d["conventions"]["official"].update(target=["tst"]),
            r"conventions\.official\.target: expected 'all'",
        ),
        (
            lambda d: d["conventions"]["official"].update(validation="dev"),
            r"conventions\.official\.validation: must be",
        ),
        (
            lambda d: d["conventions"]["official"].update(holdout_fraction=1.0),
            r"conventions\.official: holdout_fraction",
        ),
        (lambda d: d["conventions"]["official"].pop("train"), r"conventions\.official: missing key 'train'"),
        (lambda d: d["defaults"]["data"].update(convention="paper"), r"defaults\.data\.convention: unknown convention"),
        (lambda d: d["modes"]["ssdg"].update(convention="nope"), r"modes\.ssdg\.convention: unknown convention 'nope'"),
        (lambda d: d["modes"]["ssdg"].pop("convention"), r"modes\.ssdg: missing key 'convention'"),
        (lambda d: d["modes"]["ssdg"].update(threshold="x"), r"modes\.ssdg: unknown key 'threshold'"),
        (lambda d: d["modes"].update(paper=d["modes"]["ssdg"]), r"modes\.paper: 'paper' is reserved"),
        (lambda d: d["learners"]["ssdg"].update(mode="nope"), r"learners\.ssdg\.mode: unknown mode 'nope'"),
        (
            lambda d: d["learners"]["ssdg"]["protocols"].update(XYZ={}),
            r"learners\.ssdg\.protocols: unknown protocol 'XYZ'",
        ),
        (
            lambda d: d["learners"]["ssdg"]["protocols"]["ICM_O"].update(lr=1),
            r"learners\.ssdg\.protocols\.ICM_O: unknown key 'lr'",
        ),
        (
            lambda d: d["learners"]["rfmeta"]["reported"]["protocols"]["ICM_O"].update(HTER=0.1645 * 1000),
            r"learners\.rfmeta\.reported\.protocols\.ICM_O\.HTER: expected a percentage, got 164\.5",
        ),
        (
            lambda d: d["learners"]["rfmeta"]["reported"]["protocols"].update(XYZ={"HTER": 1}),
            r"learners\.rfmeta\.reported\.protocols: unknown protocol 'XYZ'",
        ),
        (
            lambda d: d["learners"]["rfmeta"]["reported"].pop("source"),
            r"learners\.rfmeta\.reported: missing key 'source'",
        ),
    ],
)
def test_schema_refusals_name_file_and_entry(tmp_path, change, message):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(mutated(change)))
    with pytest.raises(RegistryFileError, match=rf"mine\.yaml: {message}"):
        load_benchmark(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("domains: [unclosed\n")
    with pytest.raises(RegistryFileError, match="not valid YAML"):
        load_benchmark(bad)
    with pytest.raises(RegistryFileError, match="does not exist"):
        load_benchmark(tmp_path / "absent.yaml")


def test_user_file_via_environment(tmp_path, monkeypatch):
    data = shipped()
    data["protocols"]["CI_M"] = {"sources": ["C", "I"], "target": "M"}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("FASBENCH_BENCHMARK", str(path))
    assert load_benchmark().protocol("CI_M").sources == ("C", "I")
    monkeypatch.delenv("FASBENCH_BENCHMARK")
    monkeypatch.setenv("FASBENCH_REGISTRY", str(path))  # the old name still works for one release, with a warning
    assert load_benchmark().protocol("CI_M").sources == ("C", "I")


def test_the_old_registry_flag_is_a_deprecated_alias(tmp_path, capsys):
    from fasbench.cli import main

    data = shipped()
    data["protocols"]["CI_M"] = {"sources": ["C", "I"], "target": "M"}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["--registry", str(path), "list", "protocols"]) == 0
    printed = capsys.readouterr()
    assert "CI_M" in printed.out and "--registry is deprecated" in printed.err


def test_learner_spec_defaults_to_empty_for_unlisted_learners():
    spec = parse_benchmark(shipped(), PACKAGED)
    assert spec.learner("not_in_yaml").hparams == {}


def test_learner_entries_hold_only_what_differs_from_the_code():
    """One source of truth: registry.yaml never restates a learner's DEFAULTS or its backbone's own defaults."""
    import inspect

    from fasbench.plugins import installed_plugins

    plugins = installed_plugins()
    for name, entry in load_benchmark().learners.items():
        assert entry.cite, f"learners.{name} needs a cite"
        learner_class = plugins.get("learners", name).obj
        defaults = learner_class.all_defaults()
        for key, value in entry.hparams.items():
            assert defaults[key] != value, f"learners.{name}.hparams.{key} restates the default {value!r}"
        backbone = {**learner_class.BACKBONE, **entry.backbone}
        parameters = inspect.signature(plugins.get("backbones", backbone["type"]).obj).parameters
        for key, value in entry.backbone.items():
            if key != "type":
                assert parameters[key].default != value, f"learners.{name}.backbone.{key} restates {value!r}"


def test_per_protocol_settings_overlay_the_learners_and_paper_mode_is_the_learners_own():
    spec = load_benchmark()
    ssdg = spec.learner("ssdg")
    assert ssdg.settings("ICM_O")[1] == {"lr_drop_step": 1500, "triplet_weight": 2.0, "adversarial_weight": 0.1}
    assert ssdg.settings("OMI_C") == ({}, {}) and ssdg.settings(None) == ({}, {})
    assert spec.mode_for(None, ["ssdg"]) is None
    assert spec.mode_for("paper", ["ssdg"]).name == "ssdg"
    assert (spec.mode("safas").convention, spec.mode("safas").selection) == ("all_sources", "oracle_auc_hter")
    with pytest.raises(FasbenchError, match=r"different modes \(safas: safas, ssdg: ssdg\)"):
        spec.mode_for("paper", ["ssdg", "safas"])
    with pytest.raises(FasbenchError, match=r"rfmeta declare\(s\) no paper mode.*learners that do: safas, ssdg"):
        spec.mode_for("paper", ["rfmeta", "ssdg"])
    with pytest.raises(UnknownNameError, match="mode"):
        spec.mode_for("ssgd", ["rfmeta"])


def test_per_protocol_learner_settings_differ_from_the_learners_own():
    """A protocols entry that restates what the learner already has is noise (and hides the real differences)."""
    from fasbench.plugins import installed_plugins

    plugins = installed_plugins()
    for name, entry in load_benchmark().learners.items():
        defaults = {**plugins.get("learners", name).obj.all_defaults(), **entry.hparams}
        for protocol, own in entry.protocols.items():
            for key, value in own.get("hparams", {}).items():
                assert defaults[key] != value, f"learners.{name}.protocols.{protocol}.hparams.{key} restates {value!r}"


def test_reported_numbers_are_fractions_with_their_source_and_papers_evaluate_on_the_target():
    spec = load_benchmark()
    rfmeta = spec.learner("rfmeta").reported
    assert rfmeta.source == "Shao, Lan, Yuen, AAAI 2020, Table 1"
    assert rfmeta.values["ICM_O"] == {"HTER": pytest.approx(0.1645), "AUC": pytest.approx(0.9116)}
    assert spec.learner("metapattern").reported is None  # not quoted until checked against the paper
    oracle = spec.paper_evaluation("rfmeta")
    assert (oracle.convention, oracle.selection, oracle.threshold_policy) == ("fasbench", "oracle", "test_eer")
    assert spec.paper_evaluation("ssdg") == spec.mode("ssdg")
