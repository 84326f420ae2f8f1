"""PC-DARTS' pieces (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

Partial channels (``partial_channels = K``): an edge sends only the first ``C / K`` channels of
its input through its mixed op (ops built on ``C / K`` channels); the other channels bypass
it (max-pooled 2x2 on a stride-2 edge), the two parts are concatenated and channel-shuffled
with ``K`` groups, so other channels are sampled at the next edge. Edge normalisation: node
``j`` sums ``softmax_i(beta_{i,j}) * edge_{i,j}(x_i)`` over its incoming edges, and the
discretization ranks an edge's ops by ``softmax(beta)_{i,j} * softmax(alpha)_{i,j,o}``.
As in the authors' code (``yuhuixu1993/PC-DARTS``, ``model_search.py``): the same ``K`` in
normal and reduction cells, beta initialised ``1e-3 * N(0, 1)``. One departure: the bypass
max pool uses ``ceil_mode`` so odd feature maps (7x7 Fashion-MNIST stages) keep the ops'
``ceil(H / 2)``; on even sizes it is the authors' ``MaxPool2d(2, 2)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, cast

import torch
from torch import nn

from growray.checks import check_int

__all__ = ["PartialMixedOp", "PartialOp", "channel_shuffle", "check_partial_channels", "edge_softmax"]


class _HasOps(Protocol):
    def op(self, name: str) -> nn.Module: ...


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``[B, g * c, H, W]`` viewed as ``[B, g, c, H, W]``, transposed to ``[B, c, g, H, W]``, flattened."""
    if groups == 1:
        return x
    b, channels, h, w = x.shape
    return x.view(b, groups, channels // groups, h, w).transpose(1, 2).reshape(b, channels, h, w)


def check_partial_channels(k: object, channels: int) -> int | None:
    """``partial_channels``: None (DARTS: every channel through the ops) or K >= 1 dividing ``channels``."""
    if k is None:
        return None
    k = check_int("partial_channels", k, minimum=1)
    if channels % k:
        raise ValueError(
            f"partial_channels={k} must divide channels={channels} (each edge sends channels / K through its ops "
            f"and shuffles K groups); choose channels as a multiple of {k}"
        )
    return k


def _partial(
    x: torch.Tensor, k: int, fn: Callable[[torch.Tensor], torch.Tensor], pool: nn.Module | None
) -> torch.Tensor:
    c = x.shape[1] // k
    through, bypass = x[:, :c], x[:, c:]
    out = fn(through)
    if bypass.shape[1] == 0:  # K = 1: every channel went through the ops
        return out
    if pool is not None:
        bypass = pool(bypass)
    return channel_shuffle(torch.cat([out, bypass], dim=1), k)


def _bypass_pool(stride: int) -> nn.Module | None:
    return nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else None


class PartialOp(nn.Module):
    """One op on the first ``C / K`` channels, the rest bypassing it, then a channel shuffle
    (a discretized PC-DARTS edge with the weights it inherits)."""

    def __init__(self, op: nn.Module, k: int, stride: int):
        super().__init__()
        self.op = op
        self.k = k
        self.bypass = _bypass_pool(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _partial(x, self.k, self.op, self.bypass)


def edge_softmax(beta: torch.Tensor, n_inputs: Sequence[int]) -> torch.Tensor:
    """``beta`` ([n_edges]) softmax-normalised over each node's incoming edges
    (``n_inputs[j]`` edges into node ``j``, in edge order)."""
    parts, start = [], 0
    for n in n_inputs:
        parts.append(torch.softmax(beta[start : start + n], dim=-1))
        start += n
    if start != beta.shape[0]:
        raise ValueError(f"beta has {beta.shape[0]} edges; the cell has {start}")
    return torch.cat(parts)


class PartialMixedOp(nn.Module):
    """PC-DARTS' mixed op: ``mixed`` (a :class:`growray.nas.MixedOp` built on ``C / K``
    channels) on the first ``C / K`` channels, the rest bypassing it, channel-shuffled."""

    def __init__(self, mixed: nn.Module, k: int, stride: int):
        super().__init__()
        self.mixed = mixed
        self.k = k
        self.bypass = _bypass_pool(stride)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None) -> torch.Tensor:
        return _partial(x, self.k, lambda t: self.mixed(t, weights, index), self.bypass)

    def op(self, name: str) -> nn.Module:
        """The candidate op ``name`` (on ``C / K`` channels)."""
        return cast(_HasOps, self.mixed).op(name)
