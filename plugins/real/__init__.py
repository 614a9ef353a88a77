"""The four licensed face anti-spoofing datasets, read from their official distributions.

``oulu`` (OULU-NPU), ``casia`` (CASIA-FASD), ``replay`` (Idiap Replay-Attack), ``msu`` (MSU-MFSD):
each parses its layout, file names and protocol lists into records; the shared pipeline decodes the
videos (OpenCV), samples frames, finds and crops the face, and labels live depth. Options and their
defaults: ``fasbench info oulu`` (and README "Real datasets").
"""

from fasbench_plugins.real.casia import CasiaFASD
from fasbench_plugins.real.msu import MsuMFSD
from fasbench_plugins.real.oulu import OuluNPU
from fasbench_plugins.real.replay import ReplayAttack

from fasbench import hookimpl

DATASETS = (OuluNPU, CasiaFASD, ReplayAttack, MsuMFSD)


@hookimpl
def fasbench_register(registry) -> None:
    for dataset in DATASETS:
        registry.add("datasets", dataset.name, dataset)
