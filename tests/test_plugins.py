"""Plugin discovery and the per-kind plugins."""

import sys
import textwrap
import types

import pytest

from fasbench import hookimpl
from fasbench.errors import DuplicateNameError, FasbenchError, UnknownNameError
from fasbench.plugins import PluginInfo, PluginRegistry, discover_plugins


class Widget:
    """A widget: stands in for any registered class."""

    def __init__(self, size=1, variant=None):
        self.size, self.variant = size, variant


def make_plugin(name, *entries, fail=None):
    """A plugin module registering (kind, name, obj) entries, or raising ``fail`` in its hook."""
    module = types.ModuleType(name)

    @hookimpl
    def fasbench_register(registry):
        for entry in entries:
            registry.add(*entry)
        if fail is not None:
            raise fail

    module.fasbench_register = fasbench_register
    return module, PluginInfo(name, f"{name}:module")


def test_build_from_config_dict_passes_kwargs_and_defaults():
    plugins = PluginRegistry()
    plugins.add_plugin(*make_plugin("p", ("learners", "widget", Widget)))
    built = plugins.build("learners", {"type": "widget", "size": 3})
    assert isinstance(built, Widget) and built.size == 3
    assert plugins.build("learners", {"type": "widget"}, size=5).size == 5
    assert plugins.build("learners", {"type": "widget", "size": 2}, size=5).size == 2


def test_family_name_builds_with_variant():
    plugins = PluginRegistry()
    plugins.add_plugin(*make_plugin("p", ("backbones", "timm:", Widget)))
    built = plugins.build("backbones", {"type": "timm:resnet18"})
    assert built.variant == "resnet18"
    with pytest.raises(UnknownNameError):
        plugins.get("backbones", "timm")  # a family needs its variant


def test_unknown_name_suggests_close_match():
    plugins = PluginRegistry()
    plugins.add_plugin(*make_plugin("p", ("learners", "rfmeta", Widget)))
    with pytest.raises(UnknownNameError, match="did you mean 'rfmeta'"):
        plugins.get("learners", "rfmta")
    with pytest.raises(FasbenchError, match="needs a 'type' key"):
        plugins.build("learners", {"size": 1})


def test_duplicate_name_names_both_plugins_and_commits_nothing():
    plugins = PluginRegistry()
    plugins.add_plugin(*make_plugin("first", ("learners", "same", Widget)))
    module, info = make_plugin("second", ("metrics", "other", Widget), ("learners", "same", Widget))
    with pytest.raises(DuplicateNameError, match=r"'same' is registered by both plugin 'first'.*plugin 'second'"):
        plugins.add_plugin(module, info)
    assert plugins.names("metrics") == []
    assert [p.name for p in plugins.loaded] == ["first"]


def test_plugin_raising_in_its_hook_is_isolated_and_registers_nothing():
    plugins = PluginRegistry()
    plugins.add_plugin(*make_plugin("bad", ("learners", "half", Widget), fail=RuntimeError("boom")))
    plugins.add_plugin(*make_plugin("good", ("learners", "fine", Widget)))
    assert plugins.names("learners") == ["fine"]
    assert [b.plugin.name for b in plugins.broken] == ["bad"]
    assert "RuntimeError: boom" in plugins.broken[0].error


def test_invalid_names_and_kinds_are_refused():
    for entry, message in [
        (("learners", "has.dot", Widget), "invalid learner name"),
        (("learners", "", Widget), "invalid learner name"),
        (("learnerz", "x", Widget), "unknown kind 'learnerz'; did you mean 'learners'"),
        (("learners", "x", 42), "must be a class or a function"),
    ]:
        plugins = PluginRegistry()
        plugins.add_plugin(*make_plugin("p", entry))
        assert message in plugins.broken[0].error


def write_distribution(root, dist, entry_points, modules):
    """A throwaway installed distribution: a *.dist-info with entry_points.txt, and its modules."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"  # installers escape '-' in the folder name
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[fasbench.plugins]\n{lines}\n")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


GOOD_PLUGIN = """
    from fasbench import hookimpl

    class Toy:
        '''A toy learner from a third-party distribution.'''

    @hookimpl
    def fasbench_register(registry):
        registry.add("learners", "toy_learner", Toy)
"""


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("fbtest_good", "fbtest_broken", "fbtest_twin"):
        sys.modules.pop(name, None)


def test_entry_point_discovery_finds_an_installed_distribution(on_path):
    write_distribution(on_path, "fbtest-good", {"toy": "fbtest_good"}, {"fbtest_good": GOOD_PLUGIN})
    plugins = discover_plugins()
    entry = plugins.get("learners", "toy_learner")
    assert entry.plugin.name == "toy"
    assert (entry.plugin.distribution, entry.plugin.version) == ("fbtest-good", "1.2.3")
    assert entry.summary == "A toy learner from a third-party distribution."
    assert plugins.versions()["toy"] == "1.2.3"


def test_plugin_failing_to_import_is_reported_and_others_still_load(on_path):
    write_distribution(
        on_path,
        "fbtest-mixed",
        {"toy": "fbtest_good", "broken": "fbtest_broken"},
        {"fbtest_good": GOOD_PLUGIN, "fbtest_broken": "import not_a_module_anywhere_xyz\n"},
    )
    plugins = discover_plugins()
    assert "toy_learner" in plugins.names("learners")
    broken = {b.plugin.name: b for b in plugins.broken}
    assert "ModuleNotFoundError" in broken["broken"].error
    assert "not_a_module_anywhere_xyz" in broken["broken"].details


def test_two_distributions_with_the_same_name_fail_discovery_naming_both(on_path):
    write_distribution(on_path, "fbtest-good", {"toy": "fbtest_good"}, {"fbtest_good": GOOD_PLUGIN})
    twin = on_path / "twin"
    twin.mkdir()
    write_distribution(twin, "fbtest-twin", {"twin": "fbtest_twin"}, {"fbtest_twin": GOOD_PLUGIN})
    sys.path.insert(0, str(twin))
    try:
        with pytest.raises(DuplicateNameError, match="'toy'.*fbtest-good.*'twin'.*fbtest-twin"):
            discover_plugins()
    finally:
        sys.path.remove(str(twin))
