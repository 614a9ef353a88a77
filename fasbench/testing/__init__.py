"""Contract checks for every plugin kind, built through the plugin registry exactly as fasbench builds them.

    from fasbench.testing import check_backbone, check_dataset, check_learner, check_metric
    check_learner("mine")                              # every preset, two and three source domains
    check_dataset("mine", {"root": "/data/x"})         # records, splits, frames, picklable
    check_backbone("mine", {"input_size": 32})         # the Backbone contract, shapes, seeded builds
    check_metric("mine")                               # range, batch consistency

Each raises ``AssertionError`` with a message saying which part of the contract broke and how to fix it.
fasbench's own tests run them over every registered name, so a new built-in is covered without a new test.
``host_reads(run, device_tensors)`` lists the reads of device tensors by the host that ``run()`` makes (each
would stall a GPU; ``check_learner`` requires none in ``update()``), found on the CPU.
"""

from fasbench.testing.components import check_backbone, check_dataset, check_metric
from fasbench.testing.learner import check_learner, random_domain_batches
from fasbench.testing.sync import host_reads, watching_host_reads

__all__ = [
    "check_backbone",
    "check_dataset",
    "check_learner",
    "check_metric",
    "host_reads",
    "random_domain_batches",
    "watching_host_reads",
]
