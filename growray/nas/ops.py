"""Candidate operations of DARTS/ENAS cells, registered by name (pure torch).

Every op maps ``C`` channels to ``C`` channels; with ``stride=2`` it halves H and W
(rounding up, so odd sizes work). Definitions follow DARTS (Liu et al., 2019):

* convolutions are ReLU -> Conv -> BatchNorm; a separable conv is (ReLU, depthwise k x k,
  pointwise 1x1, BN) applied twice (the second time with stride 1); a dilated conv is one
  such block with dilation 2;
* ``skip_connect`` is the identity, or a factorized reduce (two offset 1x1 convs with
  stride 2, concatenated) when ``stride=2``;
* ``none`` outputs zeros of the right shape;
* pools are 3x3 with padding 1 (average pooling does not count the padding);
* NAS-Bench-201's ``nor_conv_1x1`` / ``nor_conv_3x3`` are one ReLU -> Conv -> BatchNorm.

During search BatchNorm has ``affine=False``; the mixed op also puts a non-affine
BatchNorm after pooling (``make_op(..., pool_bn=True)``), as in DARTS.

An op set is a list of registered names (YAML-editable); ``OPS.register`` adds new ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from growray.checks import check_int
from growray.registry import Registry

__all__ = [
    "DARTS_OPS",
    "ENAS_OPS",
    "NB201_OPS",
    "OPS",
    "PARAMETER_FREE_OPS",
    "DilConv",
    "FactorizedReduce",
    "ReLUConvBN",
    "SepConv",
    "Zero",
    "cpu_channels_last",
    "make_op",
]

OPS: Registry[nn.Module] = Registry("nas op")

DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
ENAS_OPS: tuple[str, ...] = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "skip_connect")
#: NAS-Bench-201's five ops, in the order of its table's digits (Dong & Yang, ICLR 2020).
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAMETER_FREE_OPS: frozenset[str] = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})


class ReLUConvBN(nn.Module):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise (dilated) k x k conv -> pointwise 1x1 conv -> BatchNorm2d."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, dilation: int, affine: bool = True
    ):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """A separable conv applied twice: DilConv(stride) then DilConv(stride 1), dilation 1."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel_size, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, padding, 1, affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` op: zeros with the output shape of a stride-``stride`` op."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second offset by one pixel), concatenated, BatchNorm.

    The offset branch zero-pads the bottom/right edge, so both branches give
    ``ceil(H/2) x ceil(W/2)`` for odd sizes too (DARTS handles even sizes only).

    A 1x1 conv with stride 2 reads only every other pixel, so each branch takes those pixels
    first and applies a stride-1 1x1 conv: the same products and the same weights
    (``state_dict`` unchanged). It also avoids PyTorch 2.14's channels-last CPU kernel for
    strided 1x1 convs, whose backward corrupts the heap at small sizes (measured: 6 to 1 or
    2 channels on 8x8 inputs gave gradients 40% off, then ``free(): invalid size``).
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(
                f"FactorizedReduce needs an even number of output channels (two halves); got c_out={c_out}"
            )
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # the pixels each branch reads, in x's memory format (a strided view has neither)
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        even = x[:, :, ::2, ::2].contiguous(memory_format=fmt)
        odd = F.pad(x, (0, 1, 0, 1))[:, :, 1::2, 1::2].contiguous(memory_format=fmt)
        return self.bn(torch.cat([self.conv_1(even), self.conv_2(odd)], dim=1))


@OPS.register("none", description="zeros (the absence of an edge)")
def _none(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@OPS.register("max_pool_3x3", description="3x3 max pooling")
def _max_pool_3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@OPS.register("avg_pool_3x3", description="3x3 average pooling (padding not counted)")
def _avg_pool_3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@OPS.register("skip_connect", description="identity, or factorized reduce with stride 2")
def _skip_connect(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(C, C, affine)


@OPS.register("sep_conv_3x3", description="separable 3x3 conv, applied twice")
def _sep_conv_3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 3, stride, 1, affine)


@OPS.register("sep_conv_5x5", description="separable 5x5 conv, applied twice")
def _sep_conv_5x5(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 5, stride, 2, affine)


@OPS.register("dil_conv_3x3", description="dilated (2) separable 3x3 conv")
def _dil_conv_3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 3, stride, 2, 2, affine)


@OPS.register("dil_conv_5x5", description="dilated (2) separable 5x5 conv")
def _dil_conv_5x5(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 5, stride, 4, 2, affine)


@OPS.register("nor_conv_1x1", description="ReLU, 1x1 conv, BatchNorm (NAS-Bench-201)")
def _nor_conv_1x1(C: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(C, C, 1, stride, 0, affine)


@OPS.register("nor_conv_3x3", description="ReLU, 3x3 conv, BatchNorm (NAS-Bench-201)")
def _nor_conv_3x3(C: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(C, C, 3, stride, 1, affine)


def cpu_channels_last(x: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """``x`` in channels-last memory format when ``enabled`` and it is a 4-d CPU tensor; else ``x``.

    The cell networks call it on their stem's output: the format then carries through every
    conv, BatchNorm, pooling and concatenation of the cells (the stem's input may have one
    channel, which PyTorch reads as the default format), and the gradients are the same up to
    float rounding. Why: on CPUs PyTorch's backward of depthwise 5x5 convolutions is
    slow in the default format (2.14, 2 threads, batch 64 of 16 channels at
    32x32: 45-71 ms for a depthwise 5x5 conv's backward, 7.5-14 ms in channels-last), and
    a DARTS search step is mostly those. The DARTS paper configuration's step took 38.6 s
    before and 25.4 s after (``benchmarks/darts_step.py --reference``). PC-DARTS' partial
    channels slice the channel dimension, which channels-last makes slower, so its
    supernets pass ``enabled=False``. On CUDA nothing changes here (``trainer.channels_last``
    is the setting there).
    """
    if enabled and x.dim() == 4 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _is_pool(name: str) -> bool:
    return "pool" in name


def make_op(name: str, C: int, stride: int, affine: bool, *, pool_bn: bool = False) -> nn.Module:
    """Build the registered op ``name`` on ``C`` channels.

    Args:
        name: a name registered in ``OPS`` (unknown names raise the registry's error,
            which lists the valid names).
        C: channels in and out (>= 1; even when ``stride=2`` and ``name`` is skip_connect).
        stride: 1, or 2 to halve H and W.
        affine: learnable scale/shift in the op's BatchNorms (False during search).
        pool_bn: follow pooling ops with a non-affine BatchNorm (the DARTS mixed op does);
            the result is then ``nn.Sequential(pool, BatchNorm2d)``.
    """
    entry = OPS.get(name)
    check_int("C", C, minimum=1)
    check_int("stride", stride, minimum=1, maximum=2)
    op = entry.obj(C, stride, affine)
    if pool_bn and _is_pool(name):
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op
