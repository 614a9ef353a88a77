"""The hook specifications a fasbench plugin implements (pluggy, project name "fasbench")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

PROJECT = "fasbench"
ENTRY_POINT_GROUP = "fasbench.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def fasbench_register(registry: Registrar) -> None:
    """Register this plugin's classes, e.g. ``registry.add("learners", "rfmeta", RFMeta)``.

    Called once per plugin with a fresh ``Registrar``; names are committed only when the
    whole call succeeds, so a plugin that raises half-way registers nothing.
    """
