"""The ``fasbench`` command: argparse with one module per sub-command under ``fasbench.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rich.markup import escape

from fasbench import __version__
from fasbench.console import debug_enabled, err
from fasbench.errors import FasbenchError

# Each module defines add_parser(subparsers); its parser sets `handler` (args -> exit status).
COMMAND_MODULES = ("catalogue", "run", "leaderboard", "report", "attack", "metrics", "prepare", "status")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fasbench",
        description="Benchmark generalizable face anti-spoofing methods on leave-one-domain-out protocols.",
    )
    parser.add_argument("--version", action="version", version=f"fasbench {__version__}")
    parser.add_argument(
        "--benchmark",
        metavar="PATH",
        help="the benchmark file (a registry.yaml) declaring domains, protocols, suites and conventions "
        "(default: $FASBENCH_BENCHMARK, else the registry.yaml shipped with fasbench)",
    )
    parser.add_argument("--registry", dest="old_registry", metavar="PATH", help=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(f"fasbench.commands.{module}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.old_registry is not None:
        err().print(
            "[yellow]warning:[/] --registry is deprecated and will be removed in the next release; "
            "use --benchmark (it names the benchmark file, registry.yaml)",
            highlight=False,
        )
        args.benchmark = args.benchmark or args.old_registry
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except FasbenchError as error:
        if debug_enabled():
            raise
        err().print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err().print("[yellow]interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
