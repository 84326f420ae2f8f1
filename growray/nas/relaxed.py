"""What the DARTS-family supernets share: architecture weights as parameters and their relaxation.

``DartsSupernet`` (DARTS' cells) and ``Nb201Supernet`` (NAS-Bench-201's cells) derive from
:class:`RelaxedSupernet`. Each edge combines its candidate ops with weights computed from its
row of alpha by :meth:`RelaxedSupernet.edge_weights`:

* by default DARTS' softmax (every op computed);
* after ``set_gumbel(tau, generator)`` (the GDAS search sets it every epoch) GDAS' sampler in
  training mode (``growray.nas.gdas``: one op per edge computed, straight-through gradient);
  in eval mode the argmax op of every edge, exactly one-hot. The authors' code samples in
  eval mode too; growray evaluates the most likely architecture so that ``val/acc`` is a
  deterministic function of the weights. The switch is state of the module, like ENAS'
  ``set_eval_batch_stats``: not in the spec, the resolved config or ``state_dict``.

PC-DARTS' partial channels and edge normalisation are constructor arguments of the supernets
(``partial_channels``, ``edge_normalization``; ``growray.nas.pcdarts``): they change the
parameters.

Costs: which ops a forward computes is state, not parameters, so a supernet reports it
(:meth:`RelaxedSupernet.edge_indices`): ``cost_key`` (``growray.cost.architecture_key``: the
eval-mode ops, GDAS' argmax cell, so ``cost/flops`` and ``cost/eval_flops`` follow alpha) and
``training_flops_per_sample`` (``TrainingCompute`` calls it at every weight step: the ops the
step's own forward sampled, summed from per-op counts, ``growray.nas.relaxed_cost``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_number
from growray.cost.static import check_input_shape
from growray.nas.gdas import gumbel_hard
from growray.nas.relaxed_cost import SupernetCosts

__all__ = ["RelaxedSupernet"]


class RelaxedSupernet(nn.Module):
    """Base of the supernets whose architecture weights are parameters (alpha, PC-DARTS' beta)."""

    op_names: list[str]

    def __init__(self) -> None:
        super().__init__()
        self._tau: float | None = None
        self._gumbel_gen: torch.Generator | None = None
        self._sampled: dict[str, tuple[int, ...]] = {}  # GDAS: the ops of the last training forward
        self._costs = SupernetCosts(self)

    # -- parameters (subclasses list their alphas/betas)
    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights: what the architect updates."""
        raise NotImplementedError

    def alpha_logits(self) -> dict[str, torch.Tensor]:
        """The alphas by cell type (``normal``/``reduce``, or NAS-Bench-201's one ``cell``)."""
        raise NotImplementedError

    def edges(self) -> list[tuple[int, int]]:
        """``(node, input)`` of every edge, in the row order of the alphas."""
        raise NotImplementedError

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        """``(cell type, alpha row, mixed op)`` of every edge of every cell, in forward order;
        an edge is called ``edge(x, weights_row, index)``."""
        raise NotImplementedError

    def edge_scales(self) -> dict[str, torch.Tensor] | None:
        """PC-DARTS' normalised beta per edge by cell type, or None without edge normalisation."""
        raise NotImplementedError

    def genotype(self) -> Any:
        """The discretization of the current architecture weights."""
        raise NotImplementedError

    def discretized(self, genotype: Any = None) -> nn.Module:
        """The discrete network of ``genotype`` with inherited weights."""
        raise NotImplementedError

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the architecture weights: what the weight optimizer updates."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alphas(self) -> dict[str, torch.Tensor]:
        """Softmax weights per edge and op, detached, by cell type."""
        return {k: torch.softmax(v.detach(), dim=-1) for k, v in self.alpha_logits().items()}

    # -- the relaxation
    @property
    def gumbel_tau(self) -> float | None:
        """GDAS' temperature, or None for DARTS' softmax."""
        return self._tau

    def set_gumbel(self, tau: float | None, generator: torch.Generator | None = None) -> None:
        """Relax with GDAS' Gumbel sampler at temperature ``tau`` (noise from ``generator``, a
        CPU generator), or with DARTS' softmax again (``tau=None``)."""
        self._tau = None if tau is None else check_number("tau", tau, low=0.0, low_open=True)
        self._gumbel_gen = generator
        if tau is None:
            self._sampled = {}

    def edge_weights(self, alpha: torch.Tensor, kind: str) -> tuple[torch.Tensor, list[int] | None]:
        """``(weights [n_edges, n_ops], index)`` of the cell type ``kind`` (a key of
        ``alpha_logits``): index is the one op each edge computes (GDAS), or None (all). A
        training-mode GDAS sample is kept for ``edge_indices``."""
        if self._tau is None:
            return torch.softmax(alpha, dim=-1), None
        if self.training:
            hard, index = gumbel_hard(alpha, self._tau, self._gumbel_gen)
            self._sampled[kind] = tuple(index)
            return hard, index
        index_t = alpha.detach().argmax(dim=-1)
        hard = torch.zeros_like(alpha).scatter_(-1, index_t.unsqueeze(-1), 1.0)
        return hard, [int(i) for i in index_t.tolist()]

    # -- what a forward computes, for its cost
    def edge_indices(self, training: bool) -> dict[str, tuple[int, ...]] | None:
        """The op every edge computes in a forward of that mode, by cell type, or None when
        every op of every edge runs (DARTS' softmax). GDAS: in training mode the ops the last
        training forward sampled (the weight step's own, as ``TrainingCompute.add_step``
        follows the step's forward), in eval mode the argmax of alpha."""
        if self._tau is None:
            return None
        if not training:
            return {
                k: tuple(int(i) for i in v.detach().argmax(dim=-1).tolist()) for k, v in self.alpha_logits().items()
            }
        missing = sorted(set(self.alpha_logits()) - set(self._sampled))
        if missing:
            raise RuntimeError(
                f"no training forward has sampled the GDAS ops of {missing} yet: the training cost is that of the "
                "ops a forward sampled, so run the step's forward (train mode) before counting it"
            )
        return dict(self._sampled)

    def cost_key(self) -> tuple[tuple[str, tuple[int, ...]], ...] | None:
        """What, beside the parameters, decides the cost of an eval-mode forward (the one
        ``growray.cost`` counts): the op of every edge, or None when all run."""
        indices = self.edge_indices(training=False)
        return None if indices is None else tuple(sorted(indices.items()))

    def training_flops_per_sample(self, input_shape: Sequence[int]) -> int:
        """Forward + backward FLOPs per sample of the training step just taken: its forward's
        ops, summed from per-op counts (``growray.nas.relaxed_cost``); ``TrainingCompute``
        calls it after every weight step."""
        return self._costs.training_flops(self.edge_indices(training=True), check_input_shape(input_shape))
