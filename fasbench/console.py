"""Terminal output (rich) and logging for library code: no prints anywhere else."""

from __future__ import annotations

import logging
import os

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from fasbench.plugins import PluginRegistry

DEBUG_ENV = "FASBENCH_DEBUG"


def out() -> Console:
    """A console on the current stdout (made per call so redirected or captured streams are honoured)."""
    return Console(soft_wrap=True)


def err() -> Console:
    """A console on the current stderr, for warnings, errors and progress."""
    return Console(stderr=True, soft_wrap=True)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def get_logger(name: str) -> logging.Logger:
    """A logger writing through rich to stderr (configured once for the ``fasbench`` hierarchy)."""
    root = logging.getLogger("fasbench")
    if not root.handlers:
        root.addHandler(RichHandler(console=err(), show_path=False, rich_tracebacks=True))
        root.setLevel(logging.DEBUG if debug_enabled() else logging.INFO)
    return logging.getLogger(name)


def warn_broken(plugins: PluginRegistry) -> None:
    """Tell the user which plugins failed to load; they stay unavailable, the rest works."""
    console = err()
    for broken in plugins.broken:
        console.print(
            f"[yellow]warning:[/] plugin {escape(str(broken.plugin))} failed to load and is skipped: "
            + escape(broken.error),
            highlight=False,
        )
        if debug_enabled():
            console.print(broken.details, markup=False, highlight=False)
    if plugins.broken and not debug_enabled():
        console.print(f"[dim](set {DEBUG_ENV}=1 for the tracebacks)[/]")
