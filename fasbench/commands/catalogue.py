"""``fasbench list`` and ``fasbench info``: what is installed and what is benchmarked."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from rich.table import Table

from fasbench.benchmark import BenchmarkSpec, load_benchmark
from fasbench.console import out, warn_broken
from fasbench.errors import UnknownNameError
from fasbench.plugins import KINDS, Entry, PluginRegistry, installed_plugins

DECLARED = ("protocols", "suites", "domains", "conventions", "modes")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser(
        "list",
        help="list installed plugins or declared protocols",
        description="List registered plugins of a kind, or what registry.yaml declares.",
    )
    listing.add_argument("kind", nargs="?", help=f"one of: {', '.join(KINDS + DECLARED)} (default: all)")
    listing.set_defaults(handler=run_list)

    info = subparsers.add_parser(
        "info",
        help="show one plugin, protocol, suite, data convention or mode in detail",
        description="A plugin's class, module, docs and defaults; a protocol's videos per role; a suite's "
        "domains; a data convention's rules.",
    )
    info.add_argument("name")
    info.add_argument("--suite", help="for a protocol: whose datasets to count (default: registry.yaml defaults.suite)")
    info.add_argument("--convention", help="for a protocol: the data convention (default: defaults.data.convention)")
    info.add_argument("--cache-dir", help="frame cache directory (default: $FASBENCH_CACHE or ~/.cache/fasbench)")
    info.set_defaults(handler=run_info)


def _plugins() -> PluginRegistry:
    plugins = installed_plugins()
    warn_broken(plugins)
    return plugins


def run_list(args: argparse.Namespace) -> int:
    kind = args.kind
    if kind is not None and kind not in KINDS + DECLARED:
        singular = {k[:-1]: k for k in KINDS + DECLARED}
        if kind not in singular:
            raise UnknownNameError("list kind", kind, KINDS + DECLARED)
        kind = singular[kind]
    console = out()
    if kind is None or kind in DECLARED:
        spec = load_benchmark(args.benchmark)
        for declared in DECLARED if kind is None else (kind,):
            console.print(_declared_table(spec, declared))
    if kind is None or kind in KINDS:
        plugins = _plugins()
        for registered in KINDS if kind is None else (kind,):
            console.print(_plugin_table(plugins, registered))
    return 0


def _plugin_table(plugins: PluginRegistry, kind: str) -> Table:
    table = Table(title=f"{kind} ({len(plugins.names(kind))})", title_justify="left")
    for column in ("name", "plugin", "summary"):
        table.add_column(column)
    for entry in plugins.entries(kind):
        table.add_row(entry.name, entry.plugin.name, entry.summary)
    if not plugins.names(kind):
        table.caption = f"no {kind} registered; install a plugin that provides some"
    return table


def _declared_table(spec: BenchmarkSpec, kind: str) -> Table:
    table = Table(title=f"{kind} ({spec.path})", title_justify="left")
    if kind == "protocols":
        for column in ("name", "sources", "target", "description"):
            table.add_column(column)
        for p in spec.protocols.values():
            table.add_row(p.name, " ".join(p.sources), p.target, p.description)
    elif kind == "conventions":
        for column in ("name", "roles", "description"):
            table.add_column(column)
        for c in spec.conventions.values():
            table.add_row(c.name, c.summary.split(": ", 1)[1], c.description)
    elif kind == "modes":
        for column in ("name", "convention", "selection", "threshold policy", "description"):
            table.add_column(column)
        for m in spec.modes.values():
            table.add_row(m.name, m.convention, m.selection, m.threshold_policy, m.description)
    elif kind == "suites":
        for column in ("name", "domains", "description"):
            table.add_column(column)
        for s in spec.suites.values():
            table.add_row(s.name, ", ".join(f"{k}={d.dataset}" for k, d in s.domains.items()), s.description)
    else:
        for column in ("letter", "name", "dataset", "options"):
            table.add_column(column)
        for d in spec.domains.values():
            table.add_row(d.letter, d.name, d.dataset, str(dict(d.options)) if d.options else "")
    return table


def _default_config(entry: Entry, spec: BenchmarkSpec) -> dict[str, Any]:
    """A learner's DEFAULTS updated by registry.yaml; a plugin's ``default_options()`` where it declares its
    options that way (the real datasets); otherwise the constructor's keyword defaults."""
    if callable(getattr(entry.obj, "default_options", None)):
        return dict(entry.obj.default_options())
    defaults = entry.obj.all_defaults() if hasattr(entry.obj, "all_defaults") else None
    if defaults is not None:
        config: dict[str, Any] = {"hparams": {**defaults, **spec.learner(entry.name).hparams}}
        if spec.learner(entry.name).backbone:
            config["backbone"] = dict(spec.learner(entry.name).backbone)
        return config
    try:
        signature = inspect.signature(entry.obj)
    except (TypeError, ValueError):
        return {}
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def _weights_line(entry: Entry, spec: BenchmarkSpec) -> str:
    """What the paper starts from, what the benchmarked configuration starts from, and how to close the gap."""
    backbone = {**getattr(entry.obj, "BACKBONE", {}), **spec.learner(entry.name).backbone}
    pretrained = backbone.get("pretrained")
    here = "from scratch" if pretrained is None else f"backbone.pretrained = {pretrained}"
    paper = getattr(entry.obj, "PAPER_WEIGHTS", None)
    if paper is None:
        return f"paper: from scratch; this configuration: {here}"
    line = f"paper: {paper}; this configuration: {here}"
    if pretrained is None:
        line += (
            '. Runs without those weights say "from scratch" in their record and table caption. To start from '
            "ImageNet, fetch the file once where a model hub is reachable (torchvision's or timm's weights for "
            f"{backbone.get('type', 'the backbone')}, saved with torch.save(model.state_dict(), PATH)) and pass "
            "--cfg-options backbone.pretrained=PATH (its SHA-256 joins the run's identity)"
        )
    return line


def _videos_of(plugins: PluginRegistry, dataset: str, options: dict[str, Any], cache_dir: str | None):
    """(videos, frames per video id or None, where they come from) for counting roles without training."""
    from fasbench.data import cache_path, open_cache
    from fasbench.data.canonical import read_canonical

    path = cache_path(cache_dir, dataset, options)
    if path.exists():
        cache = open_cache(path)
        return cache.records, {r.video_id: r.count for r in cache.records}, "prepared cache"
    built = plugins.build("datasets", {"type": dataset, **options})
    if getattr(built, "auto_prepare", False):
        return built.records(), None, "generated"
    listed = built.canonical_list()
    if listed is not None:
        return read_canonical(listed, dataset).videos, None, "official list"
    return None, None, f"not prepared: run `fasbench prepare {dataset}`"


def protocol_roles_table(
    spec: BenchmarkSpec, protocol: str, suite: str | None, convention: str | None, cache_dir: str | None
) -> Table:
    """Videos (live / spoof) and frames of every role of ``protocol``, from the prepared caches where they
    exist, else from the datasets' official lists: what a run would use, shown before any training."""
    from fasbench.data.roles import resolve_protocol

    plugins = _plugins()
    chosen_suite = spec.suite(suite or spec.defaults.get("suite", "real"))
    chosen = spec.convention(convention or spec.defaults.get("data", {}).get("convention", "fasbench"))
    p = spec.protocol(protocol)
    found = {}
    for letter in (*p.sources, p.target):
        domain = chosen_suite.domains[letter]
        found[letter] = (domain.dataset, *_videos_of(plugins, domain.dataset, dict(domain.options), cache_dir))
    table = Table(title=f"{p.name} on suite {chosen_suite.name}, {chosen.summary}", title_justify="left")
    for column in ("domain", "dataset", "role", "videos", "live", "spoof", "frames", "counted from"):
        table.add_column(column, justify="right" if column in ("videos", "live", "spoof", "frames") else "left")
    table.caption = (
        "counted from the prepared cache where there is one, else from the dataset's official video list "
        "(what a complete copy would give) or its generator"
    )
    missing = [letter for letter, (_, videos, _, _) in found.items() if videos is None]
    if missing:
        for letter in missing:
            table.add_row(letter, found[letter][0], "-", "", "", "", "", found[letter][3])
        return table
    roles = resolve_protocol(
        chosen,
        {letter: (found[letter][0], found[letter][1]) for letter in p.sources},
        (p.target, found[p.target][0], found[p.target][1]),
    )
    for letter, by_role in roles.counts().items():
        dataset, videos, frames, origin = found[letter]
        resolved = roles.sources.get(letter) or roles.target
        for role, count in by_role.items():
            ids = getattr(resolved, role)
            shown_role = role if role != "validation" else f"validation ({resolved.validation_from})"
            frame_count = str(sum(frames[v] for v in ids)) if frames is not None else "-"
            table.add_row(
                letter, dataset, shown_role, str(count["videos"]), str(count["live"]), str(count["spoof"]),
                frame_count, origin,
            )  # fmt: skip
    return table


def run_info(args: argparse.Namespace) -> int:
    """Everything called ``name``: a protocol, data convention, mode, suite and plugins may share a name (the
    convention, mode and learner ``ssdg``); each is shown."""
    console = out()
    spec = load_benchmark(args.benchmark)
    name = args.name
    shown = False
    if name in spec.protocols:
        p = spec.protocols[name]
        console.print(
            f"[bold]protocol {p.name}[/]: train on {', '.join(p.sources)}; test on {p.target}. {p.description}",
            highlight=False,
        )
        console.print(protocol_roles_table(spec, p.name, args.suite, args.convention, args.cache_dir))
        shown = True
    if name in spec.conventions:
        c = spec.conventions[name]
        console.print(f"[bold]data convention {c.name}[/]: {c.description}", highlight=False)
        console.print(c.summary, highlight=False)
        console.print({"rules": c.rules(), "tunables (data.<name>)": c.tunables()})
        shown = True
    if name in spec.modes:
        m = spec.modes[name]
        console.print(
            f"[bold]mode {m.name}[/]: {m.description}\n  data convention {m.convention}, selection {m.selection}, "
            f"threshold policy {m.threshold_policy}; used by: "
            f"{', '.join(n for n, s in spec.learners.items() if s.mode == m.name) or 'no learner'} (--mode {m.name})",
            highlight=False,
        )
        shown = True
    if name in spec.suites:
        s = spec.suites[name]
        console.print(f"[bold]suite {s.name}[/]: {s.description}", highlight=False)
        console.print(
            _declared_table(spec, "domains")
            if s.name == "real"
            else {k: (d.dataset, dict(d.options)) for k, d in s.domains.items()}
        )
        shown = True
    plugins = _plugins()
    found = plugins.find(name)
    if not found and not shown:
        known = sorted({*plugins.all_names(), *spec.protocols, *spec.suites, *spec.conventions, *spec.modes})
        raise UnknownNameError("name", name, known, hint="see `fasbench list`")
    for entry in found:
        obj = entry.obj
        table = Table(show_header=False, title=f"{entry.kind[:-1]} {entry.name}", title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        table.add_row("class", f"{obj.__module__}.{obj.__qualname__}")
        table.add_row("plugin", str(entry.plugin))
        table.add_row("doc", inspect.cleandoc(obj.__doc__ or ""))
        module = inspect.getmodule(obj)
        if module is not None and module.__doc__ and module.__doc__.strip() != (obj.__doc__ or "").strip():
            table.add_row("module", inspect.cleandoc(module.__doc__))  # sources, facts, deliberate differences
        table.add_row("defaults", str(_default_config(entry, spec)))
        if entry.kind == "learners":
            table.add_row("weights", _weights_line(entry, spec))
            learner = spec.learner(entry.name)
            if learner.protocols:
                table.add_row("per protocol", str({p: dict(v) for p, v in learner.protocols.items()}))
            if learner.mode:
                mode = spec.mode(learner.mode)
                table.add_row(
                    "paper mode",
                    f"--mode paper (= --mode {mode.name}): convention {mode.convention}, selection {mode.selection}, "
                    f"threshold policy {mode.threshold_policy}",
                )
        console.print(table)
    return 0
