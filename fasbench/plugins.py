"""The plugin registry: every name of every kind (datasets, backbones, learners, metrics), held once.

Plugins are found through the ``fasbench.plugins`` entry-point group. Registration never happens on
import: discovery loads each plugin module, validates its hook with pluggy, then calls its
``fasbench_register`` hook with a ``Registrar``; the names are committed only when the whole call
succeeds. Built-in plugins come through the same door. (registry.yaml, what is benchmarked, is read by
``fasbench.benchmark``, not here.)
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from fasbench import hookspecs
from fasbench.errors import DuplicateNameError, FasbenchError, UnknownNameError

KINDS = ("datasets", "backbones", "learners", "metrics", "selections", "launchers")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]*:?$")


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: entry-point name, its target, and the distribution that ships it."""

    name: str
    target: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        origin = f"{self.distribution} {self.version}" if self.distribution else self.target
        return f"{self.name!r} ({origin})"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that failed to import or to register; reported, never fatal."""

    plugin: PluginInfo
    error: str
    details: str


@dataclass(frozen=True)
class Entry:
    """One registered name: what it builds and which plugin registered it."""

    kind: str
    name: str
    obj: Any
    plugin: PluginInfo

    @property
    def is_family(self) -> bool:
        """A name ending in ':' (e.g. ``timm:``) stands for many: ``timm:resnet18`` builds it with variant."""
        return self.name.endswith(":")

    @property
    def summary(self) -> str:
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UnknownNameError("kind", kind, KINDS)


class Registrar:
    """What a plugin's ``fasbench_register`` hook receives; collects its names until the hook returns."""

    def __init__(self, plugin: PluginInfo) -> None:
        self.plugin = plugin
        self.entries: list[Entry] = []

    def add(self, kind: str, name: str, obj: Any) -> Any:
        """Register ``obj`` (a class or factory function) as ``name`` of ``kind``; returns ``obj``."""
        _check_kind(kind)
        if not isinstance(name, str) or not _NAME.match(name):
            raise FasbenchError(
                f"plugin {self.plugin}: invalid {kind[:-1]} name {name!r} "
                "(letters, digits, '_' and '-'; a trailing ':' declares a family such as 'timm:')"
            )
        if not callable(obj):
            raise FasbenchError(f"plugin {self.plugin}: {kind[:-1]} {name!r} must be a class or a function")
        if any(e.kind == kind and e.name == name for e in self.entries):
            raise DuplicateNameError(f"plugin {self.plugin} registers {kind[:-1]} {name!r} twice")
        self.entries.append(Entry(kind, name, obj, self.plugin))
        return obj


@dataclass
class PluginRegistry:
    """All registered names of every kind, the plugins that provided them, and the plugins that broke."""

    loaded: list[PluginInfo] = field(default_factory=list)
    broken: list[BrokenPlugin] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    # -- filling -------------------------------------------------------------------------------
    def add_plugin(self, plugin: object, info: PluginInfo) -> bool:
        """Call ``plugin``'s hook and commit its names; a failing plugin is recorded in ``broken``.

        Returns whether the plugin was added. Duplicate names across plugins raise ``DuplicateNameError``.
        """
        if any(p.name == info.name for p in self.loaded):
            raise DuplicateNameError(f"two plugins are both named {info.name!r}: {self._plugin(info.name)} and {info}")
        manager = pluggy.PluginManager(hookspecs.PROJECT)  # validates the hook; holds no name after this call
        manager.add_hookspecs(hookspecs)
        try:
            manager.register(plugin, name=info.name)
        except Exception as error:  # pluggy validation: wrong hook signature and the like
            self._mark_broken(info, error)
            return False
        registrar = Registrar(info)
        try:
            for impl in manager.hook.fasbench_register.get_hookimpls():
                impl.function(registry=registrar)
        except DuplicateNameError:
            raise
        except Exception as error:
            self._mark_broken(info, error)
            return False
        for entry in registrar.entries:
            existing = self._entries[entry.kind].get(entry.name)
            if existing is not None:
                raise DuplicateNameError(
                    f"{entry.kind[:-1]} {entry.name!r} is registered by both plugin {existing.plugin} "
                    f"and plugin {entry.plugin}; uninstall one of them or rename its {entry.kind[:-1]}"
                )
        for entry in registrar.entries:
            self._entries[entry.kind][entry.name] = entry
        self.loaded.append(info)
        return True

    def _mark_broken(self, info: PluginInfo, error: BaseException) -> None:
        details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.broken.append(BrokenPlugin(info, f"{type(error).__name__}: {error}", details))

    def _plugin(self, name: str) -> PluginInfo:
        return next(p for p in self.loaded if p.name == name)

    # -- reading -------------------------------------------------------------------------------
    def names(self, kind: str) -> list[str]:
        """Registered names of ``kind``, sorted."""
        _check_kind(kind)
        return sorted(self._entries[kind])

    def entries(self, kind: str) -> list[Entry]:
        """Registered entries of ``kind``, sorted by name."""
        return [self._entries[kind][name] for name in self.names(kind)]

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``; ``family:variant`` names resolve to the ``family:`` entry."""
        _check_kind(kind)
        entries = self._entries[kind]
        if name in entries:
            return entries[name]
        family, sep, variant = name.partition(":")
        if sep and variant and f"{family}:" in entries:
            return entries[f"{family}:"]
        raise UnknownNameError(kind[:-1], name, entries, hint=f"see `fasbench list {kind}`")

    def find(self, name: str) -> list[Entry]:
        """Every entry called ``name``, whatever its kind (for ``fasbench info``)."""
        found = []
        for kind in KINDS:
            try:
                found.append(self.get(kind, name))
            except UnknownNameError:
                continue
        return found

    def all_names(self) -> list[str]:
        return sorted({name for kind in KINDS for name in self._entries[kind]})

    def build(self, kind: str, cfg: Mapping[str, Any], **defaults: Any) -> Any:
        """Build from a config dict ``{"type": name, **options}``: ``entry(**options)``.

        ``defaults`` fill keys missing from ``cfg``; a family name passes its variant as ``variant=``. An
        option the class does not take is refused with the known ones (before anything is built).
        """
        if "type" not in cfg:
            raise FasbenchError(f"a {kind[:-1]} config needs a 'type' key naming the plugin, got {dict(cfg)}")
        entry = self.get(kind, cfg["type"])
        kwargs = {**defaults, **{k: v for k, v in cfg.items() if k != "type"}}
        if entry.is_family:
            kwargs["variant"] = cfg["type"].partition(":")[2]
        try:
            inspect.signature(entry.obj).bind(**kwargs)
        except TypeError as error:
            known = sorted(p for p in option_names(entry.obj) or () if p != "variant")
            raise FasbenchError(
                f"{kind[:-1]} {cfg['type']!r} cannot take {sorted(set(kwargs) - {'variant'})} ({error}); "
                f"its options: {', '.join(known) or 'none'}"
            ) from error
        except ValueError:  # no signature to check (a builtin)
            pass
        return entry.obj(**kwargs)

    def versions(self) -> dict[str, str | None]:
        """Plugin name -> distribution version, for run records."""
        return {p.name: p.version for p in self.loaded}


def option_names(factory: Any) -> list[str] | None:
    """The keyword options a plugin class or factory takes; None when it takes any (``**options``)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return [name for name in parameters if name != "self"]


def discover_plugins(
    group: str = hookspecs.ENTRY_POINT_GROUP, extra: Iterable[tuple[object, PluginInfo]] = ()
) -> PluginRegistry:
    """Load every plugin of the entry-point ``group`` (plus ``extra`` ones, for tests) into a new registry."""
    plugins = PluginRegistry()
    for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
        dist = getattr(point, "dist", None)
        info = PluginInfo(point.name, point.value, dist.name if dist else None, dist.version if dist else None)
        try:
            plugin = point.load()
        except Exception as error:
            plugins._mark_broken(info, error)
            continue
        plugins.add_plugin(plugin, info)
    for plugin, info in extra:
        plugins.add_plugin(plugin, info)
    return plugins


_default: PluginRegistry | None = None


def installed_plugins() -> PluginRegistry:
    """The registry of the installed plugins, discovered on first use (the CLI's; library code that is
    handed a registry, such as a learner or the runner, uses that one)."""
    global _default
    if _default is None:
        _default = discover_plugins()
    return _default


def forget_plugins() -> None:
    """Forget the discovered plugins (tests; after installing a plugin in a running process)."""
    global _default
    _default = None
