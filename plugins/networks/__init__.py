"""Backbones (``rfmeta_cnn``, the ``timm:`` family) and the heads every learner puts on them.

Learners build a backbone from its config with ``build_backbone`` and size their heads with
``build_heads``, so RF-Meta and every baseline run on the same networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from inspect import signature
from typing import TYPE_CHECKING, Any

from fasbench_plugins.networks.common import BackboneModule, reference_init_
from fasbench_plugins.networks.heads import ClassifierHead, DepthHead, build_heads
from fasbench_plugins.networks.rfmeta_cnn import RFMetaCNN
from fasbench_plugins.networks.timm_backbone import TimmBackbone

from fasbench import hookimpl
from fasbench.errors import FasbenchError

if TYPE_CHECKING:
    from fasbench.registry import Registrar

__all__ = [
    "BackboneModule",
    "ClassifierHead",
    "DepthHead",
    "RFMetaCNN",
    "TimmBackbone",
    "build_backbone",
    "build_heads",
    "reference_init_",
]


def build_backbone(config: Mapping[str, Any]) -> BackboneModule:
    """The backbone a config names, e.g. ``{"type": "rfmeta_cnn", "width": 0.25, "input_size": 64}``."""
    from fasbench.registry import get_registries

    if not isinstance(config, Mapping) or "type" not in config:
        raise FasbenchError(f"a backbone config must be a mapping with a 'type' key, got {config!r}")
    registries = get_registries()
    entry = registries.get("backbones", config["type"])
    options = signature(entry.obj).parameters
    unknown = sorted(set(config) - {"type"} - set(options))
    if unknown:
        known = sorted(name for name in options if name != "variant")
        raise FasbenchError(
            f"backbone {config['type']!r} has no option {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    backbone = registries.build("backbones", config)
    if not isinstance(backbone, BackboneModule):
        raise FasbenchError(
            f"backbone {config['type']!r} is a {type(backbone).__name__}, not a torch module declaring its "
            "channels and width (subclass fasbench_plugins.networks.BackboneModule)"
        )
    return backbone


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("backbones", "rfmeta_cnn", RFMetaCNN)
    registry.add("backbones", "timm:", TimmBackbone)
