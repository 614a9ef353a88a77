"""The data pipeline: frame cache (write, validate, read), preparation, samplers, transforms and loaders.

    path = ensure_prepared("synthetic", {"domain": "O"}, cache_dir)    # builds the plugin, prepares if needed
    cache = open_cache(path)                                            # MissingDataError when not prepared
    stream = domain_batches([cache_i, cache_c], [rows_i, rows_c], k=10, input_spec=spec, seed=0)
    for images, meta in eval_batches(cache, cache.video_rows(video_ids), input_spec=spec): ...

Dataset plugins only list videos and yield frames; everything here is shared by all of them.
"""

from fasbench.data.cache import (
    CACHE_ENV,
    DEFAULT_CROP_SIZE,
    DEFAULT_DEPTH_SIZE,
    CachedVideo,
    DomainCache,
    StaleCacheError,
    cache_path,
    default_cache_dir,
    open_cache,
    read_manifest,
)
from fasbench.data.loaders import domain_batches, eval_batches, training_loader
from fasbench.data.prepare import ensure_prepared, prepare_domain
from fasbench.data.samplers import BalancedSampler
from fasbench.data.transforms import rgb_to_hsv, to_depth_target, to_network_input

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CROP_SIZE",
    "DEFAULT_DEPTH_SIZE",
    "BalancedSampler",
    "CachedVideo",
    "DomainCache",
    "StaleCacheError",
    "cache_path",
    "default_cache_dir",
    "domain_batches",
    "ensure_prepared",
    "eval_batches",
    "open_cache",
    "prepare_domain",
    "read_manifest",
    "rgb_to_hsv",
    "to_depth_target",
    "to_network_input",
    "training_loader",
]
