"""Backbones: ``rfmeta_cnn`` (RF-Meta's feature extractor) and the ``timm:`` family.

Learners build them through the plugin registry with ``fasbench.learners.build_backbone`` and put
``fasbench.learners.build_heads`` on them, so RF-Meta and every baseline run on the same networks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fasbench_plugins.networks.rfmeta_cnn import RFMetaCNN
from fasbench_plugins.networks.timm_backbone import TimmBackbone

from fasbench import hookimpl

if TYPE_CHECKING:
    from fasbench.plugins import Registrar

__all__ = ["RFMetaCNN", "TimmBackbone"]


@hookimpl
def fasbench_register(registry: Registrar) -> None:
    registry.add("backbones", "rfmeta_cnn", RFMetaCNN)
    registry.add("backbones", "timm:", TimmBackbone)
