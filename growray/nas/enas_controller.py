"""ENAS (micro) controller: an LSTM that samples cells, trained by REINFORCE (pure torch).

The controller (Pham et al., ICML 2018, §9 of ALGORITHMS.md) samples a normal cell and
then a reduction cell. For every intermediate node of a cell it makes four decisions, in
this order: input 1, op 1, input 2, op 2. Inputs are chosen by attention over one
"anchor" vector per earlier node (the two cell inputs and the nodes already sampled); ops
by a linear head over the LSTM state. ``EnasSearch`` (``growray.nas.reinforce``, re-exported
here) trains it with REINFORCE against an exponential-moving-average baseline, with an
entropy bonus, and derives the final cell by sampling and scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from growray.checks import check_int, check_number
from growray.nas.genotype import Genotype
from growray.nas.ops import ENAS_OPS
from growray.nas.reinforce import CellController, EnasSearch, check_op_names, decide

__all__ = ["EnasController", "EnasSearch"]


def _positive(name: str, value: object) -> float:
    return check_number(name, value, low=0.0, low_open=True)


class EnasController(CellController[Genotype]):
    """LSTM policy over ENAS micro cells.

    Logit clipping follows the official CIFAR micro search: every logit vector is first
    divided by ``temperature`` T and squashed, ``C * tanh(logits / T)``; input (attention)
    logits use ``C = tanh_constant`` and op logits the smaller amplitude
    ``C / op_tanh_reduce`` (1.1 / 2.5 = 0.44 with the defaults), so op choices stay closer
    to uniform for longer. Defaults C = 1.1, op_tanh_reduce = 2.5, T = 5.0 are the official
    script's values.

    Decision sequence (one LSTMCell, state carried through both cells): two LSTM steps on
    a learned start embedding make the anchors of cell inputs 0 and 1; then per node
    ``j`` (input index ``j + 2``): choose input 1 from ``{0 .. j+1}`` by attention over
    the anchors, feed the chosen anchor, choose op 1, feed its embedding, choose input 2,
    op 2, and one more LSTM step makes node ``j``'s anchor. The reduction cell continues
    from the normal cell's final LSTM state (as in the official sampler), with fresh
    anchors. Differences from the official code: no fixed bias towards the separable
    convolutions on the normal cell's op logits, and the cell-input anchors are LSTM
    outputs rather than zeros.

    Output width: a sampled cell's ``normal_concat``/``reduce_concat`` is every
    intermediate node, ``range(2, n_nodes + 2)``, as in DARTS, so every sampled cell has
    the same output width and the shared weights of the next cell fit any sample. The
    paper concatenates only the "loose ends" (nodes no other node uses as input), which
    makes the width depend on the sample.

    Args:
        n_nodes: intermediate nodes per cell (>= 1); 5 in ENAS.
        op_names: candidate ops (non-empty, unique names); ENAS' five by default.
        hidden: LSTM hidden size (100 in ENAS).
        tanh_constant: C, the amplitude of the clipped input logits (> 0).
        op_tanh_reduce: op logits use amplitude ``C / op_tanh_reduce`` (> 0).
        temperature: T, logits are divided by it before the tanh (> 0).
    """

    def __init__(
        self,
        n_nodes: int = 5,
        op_names: Sequence[str] = ENAS_OPS,
        hidden: int = 100,
        tanh_constant: float = 1.1,
        op_tanh_reduce: float = 2.5,
        temperature: float = 5.0,
    ):
        super().__init__()
        check_int("n_nodes", n_nodes, minimum=1)
        check_int("hidden", hidden, minimum=1)
        self.n_nodes = n_nodes
        self.op_names = check_op_names(op_names)
        self.hidden = hidden
        self.tanh_constant = _positive("tanh_constant", tanh_constant)
        self.op_tanh_reduce = _positive("op_tanh_reduce", op_tanh_reduce)
        self.temperature = _positive("temperature", temperature)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.op_embedding = nn.Embedding(len(self.op_names), hidden)
        self.op_head = nn.Linear(hidden, len(self.op_names))
        self.attn_key = nn.Linear(hidden, hidden, bias=False)
        self.attn_query = nn.Linear(hidden, hidden, bias=False)
        self.attn_v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():  # ENAS initialises every controller weight U(-0.1, 0.1)
            nn.init.uniform_(p, -0.1, 0.1)

    @property
    def concat(self) -> tuple[int, ...]:
        """The concatenated nodes of every sampled cell: all intermediates."""
        return tuple(range(2, self.n_nodes + 2))

    def sample(self, generator: torch.Generator | None = None) -> tuple[Genotype, torch.Tensor, torch.Tensor]:
        """Sample a normal and a reduction cell.

        Args:
            generator: random source (on the controller's device); the global one if None.

        Returns:
            ``(genotype, log_prob, entropy)``: log_prob is the sum of the log-probabilities
            of every decision; entropy the sum of the exact entropies of every decision's
            distribution (given the earlier decisions). Both are scalar tensors that carry
            gradients to the controller's parameters.
        """
        genotypes, log_prob, entropy = self._run(1, None, generator)
        return genotypes[0], log_prob[0], entropy[0]

    def sample_batch(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[list[Genotype], torch.Tensor, torch.Tensor]:
        """Sample ``n`` independent genotypes in one batched pass.

        Returns:
            ``(genotypes, log_probs, entropies)`` with tensors of shape ``(n,)`` (with
            gradient); row ``i`` is what ``sample`` would report for ``genotypes[i]``, up
            to float rounding.
        """
        check_int("n", n, minimum=1)
        return self._run(n, None, generator)

    def log_prob(self, genotype: Genotype) -> torch.Tensor:
        """The log-probability of ``genotype`` under the controller (scalar, with gradient).

        Raises:
            ValueError: when the genotype does not fit this controller (node count, an op
                outside ``op_names``, an input index from a later node).
        """
        return self.log_prob_batch([genotype])[0]

    def log_prob_batch(self, genotypes: Sequence[Genotype]) -> torch.Tensor:
        """Log-probabilities, shape ``(len(genotypes),)``, of several genotypes at once."""
        if len(genotypes) == 0:
            raise ValueError("genotypes must hold at least one genotype; got an empty list")
        for g in genotypes:
            self._check(g)
        return self._run(len(genotypes), genotypes, None)[1]

    def _check(self, genotype: Genotype) -> None:
        for name in ("normal", "reduce"):
            cell = getattr(genotype, name, None)
            if cell is None or len(cell) != 2 * self.n_nodes:
                n = "none" if cell is None else len(cell)
                raise ValueError(
                    f"genotype.{name} has {n} (op, input) pairs; this controller samples "
                    f"{self.n_nodes} nodes x 2 = {2 * self.n_nodes}"
                )
            for k, (op, idx) in enumerate(cell):
                if op not in self.op_names:
                    raise ValueError(
                        f"genotype.{name}[{k}] uses op {op!r}; the controller's ops are {list(self.op_names)}"
                    )
                if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= k // 2 + 1:
                    raise ValueError(
                        f"genotype.{name}[{k}] (node {k // 2}) reads input {idx!r}; node j may read 0..j+1 "
                        "(0 and 1 are the cell inputs, node i is input i + 2)"
                    )

    def _run(
        self, n: int, forced: Sequence[Genotype] | None, generator: torch.Generator | None
    ) -> tuple[list[Genotype], torch.Tensor, torch.Tensor]:
        zeros = self.start.new_zeros(n, self.hidden)
        state = (zeros, zeros)
        start = self.start.expand(n, -1)
        rows = torch.arange(n, device=zeros.device)
        c_in, c_op = self.tanh_constant, self.tanh_constant / self.op_tanh_reduce
        t = self.temperature
        log_prob = zeros.new_zeros(n)
        entropy = zeros.new_zeros(n)
        cells: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        for name in ("normal", "reduce"):
            given = None
            if forced is not None:  # (n, 2 * n_nodes) op ids and input ids
                cell_of = [getattr(g, name) for g in forced]
                given_op = torch.tensor(
                    [[self.op_names.index(op) for op, _ in c] for c in cell_of], device=zeros.device
                )
                given_in = torch.tensor([[idx for _, idx in c] for c in cell_of], device=zeros.device)
                given = (given_op, given_in)
            anchors: list[torch.Tensor] = []
            for _ in range(2):  # anchors of the two cell inputs
                state = self.lstm(start, state)
                anchors.append(state[0])
            keys = [self.attn_key(a) for a in anchors]
            x = start
            decisions: list[tuple[torch.Tensor, torch.Tensor]] = []
            for node in range(self.n_nodes):
                for slot in range(2):
                    k = 2 * node + slot
                    state = self.lstm(x, state)
                    query = self.attn_query(state[0])[:, None, :]
                    scores = self.attn_v(torch.tanh(torch.stack(keys, dim=1) + query)).squeeze(-1)
                    idx, lp, h = decide(
                        c_in * torch.tanh(scores / t), None if given is None else given[1][:, k], generator
                    )
                    log_prob, entropy = log_prob + lp, entropy + h
                    state = self.lstm(torch.stack(anchors, dim=1)[rows, idx], state)
                    logits = self.op_head(state[0])
                    op, lp, h = decide(
                        c_op * torch.tanh(logits / t), None if given is None else given[0][:, k], generator
                    )
                    log_prob, entropy = log_prob + lp, entropy + h
                    x = self.op_embedding(op)
                    decisions.append((op, idx))
                state = self.lstm(x, state)
                anchors.append(state[0])
                keys.append(self.attn_key(state[0]))
                x = start
            cells.append(decisions)
        genotypes = []
        ops = [
            [torch.stack([op for op, _ in c], 1).tolist(), torch.stack([i for _, i in c], 1).tolist()] for c in cells
        ]
        for b in range(n):
            normal, reduce = (
                tuple((self.op_names[o], i) for o, i in zip(cell_ops[b], cell_ins[b])) for cell_ops, cell_ins in ops
            )
            genotypes.append(
                Genotype(normal=normal, normal_concat=self.concat, reduce=reduce, reduce_concat=self.concat)
            )
        return genotypes, log_prob, entropy
