"""Model costs, pure torch: parameters, forward and training FLOPs (effective ones for weight-masked
layers, ``masked``), inference latency."""

from growray.cost.compute import (
    TrainingCompute,
    architecture_key,
    training_flops_per_sample,
)
from growray.cost.latency import LatencyProtocol, LatencyResult, measure_latency
from growray.cost.masked import MASK_BUFFER, active_count, mask_signature, masked_modules
from growray.cost.ops import OpFlopCounter, count_flops, svd_flops
from growray.cost.static import count_params, dense_gradient_extra_flops, forward_flops

__all__ = [
    "MASK_BUFFER",
    "LatencyProtocol",
    "LatencyResult",
    "OpFlopCounter",
    "TrainingCompute",
    "active_count",
    "architecture_key",
    "count_flops",
    "count_params",
    "dense_gradient_extra_flops",
    "forward_flops",
    "mask_signature",
    "masked_modules",
    "measure_latency",
    "svd_flops",
    "training_flops_per_sample",
]
