"""Random expansion: new units with random fan-in *and* random fan-out (not function-preserving).

The guide's "small-to-large expansion with random initialisation" baseline: the newborns
start as if the wider layer had been freshly constructed, so growth changes the network's
output. It tells whether a function-preserving initializer (``random`` with its zero fan-out,
``net2wider``, ...) is worth anything over simply adding fresh units.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from growray.checks import check_int, check_number
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.models.sites import GrowableModel

__all__ = ["RandomExpansionInitializer"]


@INITIALIZERS.register("random_expansion")
class RandomExpansionInitializer(Initializer):
    """Fan-in, bias and fan-out drawn as torch's default Linear/Conv2d initialisation draws them.

    ``nn.Linear``/``nn.Conv2d`` draw weights and biases from U(-b, b) with b = 1/sqrt(fan_in)
    (kaiming-uniform with a = sqrt(5)). The new producer rows use the producer's fan-in
    (in_features, or in_channels*kh*kw); the new consumer columns use the consumer's fan-in
    *after* growth ((width + n) * H*W * kh*kw), as a freshly built wider consumer would. The
    incumbents are untouched; BatchNorm entries start fresh (1, 0, 0, 1). Since the fan-out is
    not zero, growth changes the network's output (``preserves_function`` is False; the
    growth event measures by how much, ``growth/preservation_error``).

    Args:
        scale: multiplies both bounds; > 0 (1: torch's defaults).
    """

    def __init__(self, scale: float = 1.0):
        self.scale = check_number("scale", scale, low=0, low_open=True)

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        mods = model.site_modules(site)
        w, cw = mods.producer.weight, mods.consumer.weight
        width = int(w.shape[0])
        in_bound = self.scale / math.sqrt(math.prod(w.shape[1:]))
        out_bound = self.scale / math.sqrt((width + n_new) * mods.spatial * math.prod(cw.shape[2:]))
        with torch.no_grad():
            rows = torch.empty((n_new, *w.shape[1:]), dtype=w.dtype, device=w.device).uniform_(-in_bound, in_bound)
            bias = None
            if mods.producer.bias is not None:
                bias = torch.empty(n_new, dtype=w.dtype, device=w.device).uniform_(-in_bound, in_bound)
            cols = torch.empty((cw.shape[0], n_new * mods.spatial, *cw.shape[2:]), dtype=cw.dtype, device=cw.device)
            cols.uniform_(-out_bound, out_bound)
        return WidthProposal(rows, bias, cols, None, _fresh_norm(mods.norm, n_new, w))
