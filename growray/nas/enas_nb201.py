"""ENAS on the NAS-Bench-201 space: an LSTM controller that samples one op per edge (pure torch).

ENAS (Pham et al., ICML 2018; §9 of ALGORITHMS.md) samples cells with an LSTM and trains the
shared weights on the samples; REINFORCE trains the LSTM (``growray.nas.reinforce.EnasSearch``).
In NAS-Bench-201's cell (Dong & Yang, ICLR 2020) every edge ``i -> j`` exists, so the only
decisions are ops: one per edge, in NAS-Bench-201's edge order (``1<-0, 2<-0, 2<-1, 3<-0,
3<-1, 3<-2``). :class:`Nb201EnasController` is ENAS' op sampler without the input decisions:
one LSTM cell whose state runs through all edges; the first step reads a learned start
vector, each later step the embedding of the op just sampled; a linear head over the LSTM
output gives the op logits, clipped as ENAS clips op logits, ``(C / op_tanh_reduce) *
tanh(logits / T)``. Every weight starts uniform in [-0.1, 0.1] (ENAS). The shared weights are
``nb201_supernet``'s: ``Nb201Supernet.set_arch`` runs the sampled cell.

Departure: ENAS' micro controller also feeds the chosen inputs and builds attention anchors
per node; with no input decisions there is nothing to attend over, so this controller has
neither.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from growray.checks import check_int, check_number
from growray.nas.nb201 import Nb201Genotype, nb201_edges
from growray.nas.ops import NB201_OPS
from growray.nas.reinforce import CellController, check_op_names, decide

__all__ = ["Nb201EnasController"]


class Nb201EnasController(CellController[Nb201Genotype]):
    """LSTM policy over NAS-Bench-201 cells: one op per edge (module docstring).

    Args:
        nodes: nodes of the cell, its input included (>= 2; NAS-Bench-201: 4, i.e. 6 edges).
        op_names: candidate ops (non-empty, unique); NAS-Bench-201's five by default.
        hidden: LSTM hidden size (100 in ENAS).
        tanh_constant: C (> 0).
        op_tanh_reduce: op logits use amplitude ``C / op_tanh_reduce`` (> 0).
        temperature: T, logits are divided by it before the tanh (> 0).
    """

    def __init__(
        self,
        nodes: int = 4,
        op_names: Sequence[str] = NB201_OPS,
        hidden: int = 100,
        tanh_constant: float = 1.1,
        op_tanh_reduce: float = 2.5,
        temperature: float = 5.0,
    ):
        super().__init__()
        self.nodes = check_int("nodes", nodes, minimum=2)
        self.op_names = check_op_names(op_names)
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.tanh_constant = check_number("tanh_constant", tanh_constant, low=0.0, low_open=True)
        self.op_tanh_reduce = check_number("op_tanh_reduce", op_tanh_reduce, low=0.0, low_open=True)
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)
        self.n_edges = len(nb201_edges(self.nodes))
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.op_embedding = nn.Embedding(len(self.op_names), hidden)
        self.op_head = nn.Linear(hidden, len(self.op_names))
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def sample_batch(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[list[Nb201Genotype], torch.Tensor, torch.Tensor]:
        """``n`` independent cells; log-probabilities and entropies (summed over the edges'
        decisions, exact per decision given the earlier ones), shape ``(n,)``, with gradient."""
        check_int("n", n, minimum=1)
        return self._run(n, None, generator)

    def log_prob_batch(self, genotypes: Sequence[Nb201Genotype]) -> torch.Tensor:
        """Log-probabilities of the given cells, shape ``(len(genotypes),)``.

        Raises:
            ValueError: an empty list, or a cell with another node count or an op outside
                ``op_names``.
        """
        if len(genotypes) == 0:
            raise ValueError("genotypes must hold at least one genotype; got an empty list")
        for g in genotypes:
            if not isinstance(g, Nb201Genotype) or g.n_nodes != self.nodes:
                raise ValueError(f"the controller samples NAS-Bench-201 cells of {self.nodes} nodes; got {g!r}")
            bad = sorted(set(g.ops) - set(self.op_names))
            if bad:
                raise ValueError(f"{g.arch_str()} uses {bad}; the controller's ops are {list(self.op_names)}")
        return self._run(len(genotypes), genotypes, None)[1]

    def _run(
        self, n: int, forced: Sequence[Nb201Genotype] | None, generator: torch.Generator | None
    ) -> tuple[list[Nb201Genotype], torch.Tensor, torch.Tensor]:
        zeros = self.start.new_zeros(n, self.hidden)
        state = (zeros, zeros)
        given = None
        if forced is not None:  # (n, n_edges) op ids
            given = torch.tensor([[self.op_names.index(op) for op in g.ops] for g in forced], device=zeros.device)
        amplitude = self.tanh_constant / self.op_tanh_reduce
        x = self.start.expand(n, -1)
        log_prob, entropy = zeros.new_zeros(n), zeros.new_zeros(n)
        choices = []
        for e in range(self.n_edges):
            state = self.lstm(x, state)
            logits = amplitude * torch.tanh(self.op_head(state[0]) / self.temperature)
            op, lp, h = decide(logits, None if given is None else given[:, e], generator)
            log_prob, entropy = log_prob + lp, entropy + h
            x = self.op_embedding(op)
            choices.append(op)
        rows = torch.stack(choices, dim=1).tolist()
        return [Nb201Genotype(tuple(self.op_names[k] for k in row)) for row in rows], log_prob, entropy
