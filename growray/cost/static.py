"""Costs that depend on the architecture only (no timing)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from growray.cost.masked import inactive_share_of, masked_modules, masked_saving, module_flops, n_masked_out

if TYPE_CHECKING:
    from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "dense_gradient_extra_flops", "forward_flops"]


def _conv_backward_flops(
    grad_out_shape: Sequence[int],
    x_shape: Sequence[int],
    w_shape: Sequence[int],
    *args: Any,
    out_shape: Any = None,
    **kwargs: Any,
) -> int:
    """FLOPs of ``aten.convolution_backward``: each requested gradient (input, weight)
    costs as much as the forward convolution, 2 * batch * prod(weight shape) * positions.

    Replaces torch's formula, which (torch 2.15) ignores ``groups`` for the weight
    gradient and so overcounts a depthwise conv's by a factor of its channel count.
    """
    transposed, output_mask = args[4], args[7]
    positions = (x_shape if transposed else grad_out_shape)[2:]
    per_grad = 2 * int(x_shape[0]) * math.prod(w_shape) * math.prod(positions)
    return per_grad * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` with growray's convolution-backward formula. (Imported
    here: ``torch.utils.flop_counter`` loads triton, ~0.25 s that ``growray validate`` need
    not pay.)"""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})


def count_params(model: nn.Module, *, dense: bool = False) -> int:
    """Number of trainable parameters (``requires_grad``); weights held at zero by a
    ``weight_mask`` buffer (``growray.cost.masked``) are not counted unless ``dense``."""
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total if dense else total - n_masked_out(model)


def check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """``input_shape`` (one sample, no batch dimension) as a tuple of positive ints."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_shape must be a non-empty sequence of positive ints (one sample, no batch dim); got {input_shape!r}"
        ) from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(
            f"input_shape must be a non-empty sequence of positive ints (one sample, no batch dim); "
            f"got {list(input_shape)!r}"
        )
    return shape


def sample_input(model: nn.Module, input_shape: Sequence[int], n: int = 1) -> torch.Tensor:
    """``n`` zero samples on the device and in the floating dtype of the model's first parameter.

    Zeros, not random draws: FLOP counts do not depend on values, and the global RNG
    (checkpointed by the trainer) stays untouched.
    """
    shape = check_input_shape(input_shape)
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    return torch.zeros((n, *shape), device=device, dtype=dtype)


def forward_flops(model: nn.Module, input_shape: Sequence[int], *, dense: bool = False) -> int:
    """Forward FLOPs per sample, as counted by ``torch.utils.flop_counter.FlopCounterMode``.

    Runs one zero sample in eval mode under ``no_grad`` and restores the model's mode.
    FlopCounterMode counts matmuls/convolutions as 2 FLOPs per multiply-add (a Linear
    layer is 2*in*out; its bias add, BatchNorm and activations are not counted). It sees
    ATen calls, so functional code (``F.conv2d`` in a DARTS mixed op) is counted exactly.
    A module with a ``weight_mask`` buffer counts density x its FLOPs (effective FLOPs,
    ``growray.cost.masked``) unless ``dense``.
    """
    counter = _forward_counter(model, input_shape)
    total = int(counter.get_total_flops())
    if dense or not masked_modules(model):
        return total
    return total - masked_saving(counter.get_flop_counts(), model)


def dense_gradient_extra_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Per sample: what a *dense* weight gradient of the masked modules costs beyond the
    sparse one, the sum of (1 - density) x the module's forward FLOPs (a weight gradient
    costs as much as the forward product). RigL computes it at its mask updates; 0 for a
    model without masks."""
    if not masked_modules(model):
        return 0
    counts = _forward_counter(model, input_shape).get_flop_counts()
    return sum(inactive_share_of(module_flops(counts, model, name), mask) for name, _, mask in masked_modules(model))


def _forward_counter(model: nn.Module, input_shape: Sequence[int]) -> FlopCounterMode:
    """A ``FlopCounterMode`` after one zero sample through ``model`` (eval mode, no grad)."""
    x = sample_input(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        counter = flop_counter()
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter
