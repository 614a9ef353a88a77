"""``fasbench prepare``: turn a dataset (or every domain of a suite) into its frame cache."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from fasbench.console import err, out, warn_broken
from fasbench.errors import FasbenchError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="prepare a dataset's frame cache (sample, crop, depth-label once)",
        description="Prepare the frame cache of dataset NAME: every binding of NAME in registry.yaml's suites "
        "(e.g. `synthetic` prepares its four domains O, C, I, M), or every domain of --suite. "
        "Interrupted preparations resume where they stopped; up-to-date caches are left alone.",
    )
    parser.add_argument("name", nargs="?", help="dataset plugin name (see `fasbench list datasets`)")
    parser.add_argument("--suite", help="prepare every domain of this suite (e.g. synthetic, real)")
    parser.add_argument("--root", help="the dataset's folder (default: `roots` in the fasbench config file)")
    parser.add_argument("--cache-dir", help="frame cache directory (default: $FASBENCH_CACHE or ~/.cache/fasbench)")
    parser.add_argument("--workers", type=int, default=0, help="parallel worker processes (default: 0, in-process)")
    parser.add_argument("--force", action="store_true", help="rebuild even an up-to-date cache")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, repeatable (values are read as YAML: 10, true, O); e.g. --option subjects=10",
    )
    parser.add_argument(
        "--compression", choices=("none", "lzf", "gzip"), default="none", help="compress the cached crops"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="prepare nothing: read every chunk of the caches (of NAME / --suite, else all in the cache dir) "
        "and check their checksums and content hash",
    )
    parser.set_defaults(handler=run_prepare)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FasbenchError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise FasbenchError(f"--option {item!r}: cannot read the value ({error})") from error
    return options


def targets(spec: Any, name: str | None, suite: str | None, options: dict[str, Any]) -> list[tuple[str, str, dict]]:
    """(label, dataset, options) of every cache to prepare, without duplicates."""
    if name is None and suite is None:
        raise FasbenchError(
            "name a dataset (`fasbench prepare synthetic`) or a suite (`fasbench prepare --suite real`)"
        )
    suites = [spec.suite(suite)] if suite else list(spec.suites.values())
    found: list[tuple[str, str, dict]] = []
    for declared in suites:
        for letter, domain in declared.domains.items():
            if name is not None and domain.dataset != name:
                continue
            entry = (f"{letter} ({domain.dataset})", domain.dataset, {**domain.options, **options})
            if all((d, o) != (entry[1], entry[2]) for _, d, o in found):
                found.append(entry)
    if not found:
        if suite:
            raise FasbenchError(f"suite {suite!r} binds no domain to dataset {name!r}")
        found.append((str(name), str(name), dict(options)))
    return found


def run_prepare(args: argparse.Namespace) -> int:
    from rich.table import Table

    from fasbench.benchmark import load_benchmark
    from fasbench.data import ensure_prepared, read_manifest
    from fasbench.data.canonical import describe
    from fasbench.plugins import installed_plugins

    if args.workers < 0:
        raise FasbenchError(f"--workers must be >= 0, got {args.workers}")
    if args.verify:
        return run_verify(args)
    plugins = installed_plugins()
    warn_broken(plugins)
    if args.name is not None:
        plugins.get("datasets", args.name)  # unknown names fail here, with a suggestion
    planned = targets(load_benchmark(args.benchmark), args.name, args.suite, parse_options(args.option))
    if args.root and len({dataset for _, dataset, _ in planned}) > 1:
        raise FasbenchError("--root names one dataset's folder; prepare one dataset at a time with it")
    table = Table(title="prepared frame caches")
    for column in ("domain", "options", "videos", "frames", "skipped", "official distribution", "cache file"):
        table.add_column(column)
    failures = []
    for label, dataset, options in planned:
        try:
            path = ensure_prepared(
                dataset,
                options,
                args.cache_dir,
                plugins=plugins,
                root=args.root,
                progress=not args.no_progress,
                workers=args.workers,
                force=args.force,
                compression=None if args.compression == "none" else args.compression,
            )
        except FasbenchError as error:
            if len(planned) == 1:
                raise
            err().print(f"[bold red]error:[/] {escape(f'{label}: {error}')}", highlight=False)
            failures.append(label)
            continue
        manifest = read_manifest(path)
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        official = describe(manifest["canonical"]) if manifest.get("canonical") else "-"
        table.add_row(
            label,
            shown,
            str(manifest["videos"]),
            str(manifest["frames"]),
            str(len(manifest["skipped"])),
            official,
            str(path),
        )
    if table.row_count:
        out().print(table)
    if failures:
        raise FasbenchError(f"{len(failures)} of {len(planned)} domains could not be prepared: {', '.join(failures)}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``--verify``: every chunk of every chosen cache read and checked; a damaged one is named with the fix."""
    from rich.table import Table

    from fasbench.benchmark import load_benchmark
    from fasbench.data import cache_path, default_cache_dir, open_cache

    if args.name is None and args.suite is None:
        directory = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
        paths = sorted(directory.glob("*.h5"))
        if not paths:
            raise FasbenchError(f"no frame cache in {directory} to verify")
    else:
        planned = targets(load_benchmark(args.benchmark), args.name, args.suite, parse_options(args.option))
        paths = [cache_path(args.cache_dir, dataset, options) for _, dataset, options in planned]
    table = Table(title="verified frame caches")
    for column in ("cache file", "videos", "frames", "result"):
        table.add_column(column)
    damaged = []
    for path in paths:
        try:
            cache = open_cache(path)
            cache.verify()
        except FasbenchError as error:
            damaged.append(path)
            table.add_row(str(path), "", "", f"[bold red]{escape(str(error))}[/]")
            continue
        table.add_row(str(path), str(len(cache.records)), str(len(cache)), "ok: every checksum and the content hash")
    out().print(table)
    if damaged:
        raise FasbenchError(f"{len(damaged)} of {len(paths)} caches are damaged or unreadable (see above)")
    return 0
