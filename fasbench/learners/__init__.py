"""The public API for writing network learners: the scaffold the built-in learners share.

    from fasbench.learners import COMMON_DEFAULTS, OPTIMIZER_DEFAULTS, NetworkLearner, bce, pool

    class MyLearner(NetworkLearner):
        name = "mine"
        DEFAULTS = {**COMMON_DEFAULTS, **OPTIMIZER_DEFAULTS, "smoothing": 0.1}

        def update(self, domain_batches):
            batch = pool(self.checked(domain_batches))
            self.train_mode()
            with self.autocast():
                loss = bce(self.binary_network(batch.images), batch.labels)
            self.observe({"cls": loss})
            self.outer_step(loss)
            return {"loss": loss.detach()}

``NetworkLearner`` builds the backbone a run config names (through the plugin registry it is handed), the
depth and classifier heads sized for it, and the outer optimiser; it checks inputs, scores in evaluation
mode (sigmoid of the classifier logit = P(live)), and checkpoints networks, optimisers and RNG states.
``BackboneModule`` is the backbone contract (``fasbench.interfaces.Backbone``) as a torch module.
``fasbench.learners.augment``: train-time augmentations on the device, drawn from the learner's generator.
"""

from fasbench.learners.heads import ClassifierHead, DepthHead, build_heads
from fasbench.learners.modules import (
    BackboneModule,
    build_backbone,
    check_width,
    conv_bn_relu,
    input_spec_for,
    reference_init_,
    scaled,
)
from fasbench.learners.network import (
    COMMON_DEFAULTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZER_SEARCH_SPACE,
    BinaryNetwork,
    NetworkLearner,
    bce,
    live_probability,
    pool,
)

__all__ = [
    "COMMON_DEFAULTS",
    "OPTIMIZER_DEFAULTS",
    "OPTIMIZER_SEARCH_SPACE",
    "BackboneModule",
    "BinaryNetwork",
    "ClassifierHead",
    "DepthHead",
    "NetworkLearner",
    "bce",
    "build_backbone",
    "build_heads",
    "check_width",
    "conv_bn_relu",
    "input_spec_for",
    "live_probability",
    "pool",
    "reference_init_",
    "scaled",
]
