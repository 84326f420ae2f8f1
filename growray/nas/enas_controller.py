"""ENAS (micro) controller: an LSTM that samples cells, trained by REINFORCE (pure torch).

The controller (Pham et al., ICML 2018, §9 of ALGORITHMS.md) samples a normal cell and
then a reduction cell. For every intermediate node of a cell it makes four decisions, in
this order: input 1, op 1, input 2, op 2. Inputs are chosen by attention over one
"anchor" vector per earlier node (the two cell inputs and the nodes already sampled); ops
by a linear head over the LSTM state. ``EnasSearch`` trains it with REINFORCE against an
exponential-moving-average baseline, with an entropy bonus, and derives the final cell by
sampling and scoring.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_int, check_number
from growray.nas.genotype import Genotype
from growray.nas.ops import ENAS_OPS

__all__ = ["EnasController", "EnasSearch"]


def _positive(name: str, value: object) -> float:
    return check_number(name, value, low=0.0, low_open=True)


class EnasController(nn.Module):
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
        if isinstance(op_names, (str, bytes)) or not isinstance(op_names, Sequence) or len(op_names) == 0:
            raise ValueError(f"op_names must be a non-empty list of op names; got {op_names!r}")
        if not all(isinstance(o, str) and o for o in op_names) or len(set(op_names)) != len(op_names):
            raise ValueError(f"op_names must be unique non-empty strings; got {list(op_names)!r}")
        check_int("hidden", hidden, minimum=1)
        self.n_nodes = n_nodes
        self.op_names = tuple(op_names)
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

    @staticmethod
    def _decide(
        logits: torch.Tensor, forced: torch.Tensor | None, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Choices ``(B,)`` (sampled, or ``forced``), their log-probs and the entropies."""
        logp = torch.log_softmax(logits, dim=-1)
        if forced is None:
            choice = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(1)
        else:
            choice = forced
        entropy = -(logp.exp() * logp).sum(-1)
        return choice, logp.gather(1, choice[:, None]).squeeze(1), entropy

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
                    idx, lp, h = self._decide(
                        c_in * torch.tanh(scores / t), None if given is None else given[1][:, k], generator
                    )
                    log_prob, entropy = log_prob + lp, entropy + h
                    state = self.lstm(torch.stack(anchors, dim=1)[rows, idx], state)
                    logits = self.op_head(state[0])
                    op, lp, h = self._decide(
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


class EnasSearch:
    """REINFORCE for an ``EnasController``, and ENAS' derivation of the final cell.

    One controller step samples ``samples_per_step`` genotypes, rewards each with
    ``reward_fn`` and takes one Adam step on the mean of
    ``-(R - b) * log_prob - entropy_weight * entropy`` (the entropy bonus is part of the
    differentiable loss, so it pushes the policy towards higher entropy). ``b`` is the
    baseline *before* the step; afterwards it is updated with every reward in turn,
    ``b <- decay * b + (1 - decay) * R``. It starts unset and is initialised to the first
    step's mean reward (the official code starts it at 0, which with decay 0.99 makes the
    first few hundred advantages all positive).

    Args:
        controller: the policy to train.
        lr: Adam learning rate (3.5e-3 for ENAS CIFAR).
        baseline_decay: EMA decay of the baseline, in [0, 1) (0.99 official).
        entropy_weight: weight of the entropy bonus, >= 0 (1e-4 official).
        samples_per_step: samples aggregated into one update (10 official), >= 1.
        grad_clip: max global gradient norm, or None for no clipping.
        generator: random source for sampling (on the controller's device), or None for
            the global one; its state is part of ``state_dict``.
    """

    def __init__(
        self,
        controller: EnasController,
        *,
        lr: float = 3.5e-3,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        samples_per_step: int = 10,
        grad_clip: float | None = None,
        generator: torch.Generator | None = None,
    ):
        if not isinstance(controller, EnasController):
            raise TypeError(f"controller must be an EnasController; got {type(controller).__name__}")
        self.baseline_decay = check_number("baseline_decay", baseline_decay, low=0.0, high=1.0, high_open=True)
        self.entropy_weight = check_number("entropy_weight", entropy_weight, low=0.0)
        self.samples_per_step = check_int("samples_per_step", samples_per_step, minimum=1)
        self.controller = controller
        self.lr = _positive("lr", lr)
        self.grad_clip = check_number("grad_clip", grad_clip, low=0.0, low_open=True, optional=True)
        self.generator = generator
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=self.lr)
        self.baseline: float | None = None

    def train_controller(self, reward_fn: Callable[[Genotype], float], steps: int) -> dict[str, float]:
        """Take ``steps`` REINFORCE updates.

        Args:
            reward_fn: maps a sampled genotype to a finite reward (e.g. the shared-weight
                supernet's accuracy on one validation batch with that architecture).
            steps: number of updates (>= 1).

        Returns:
            Means over all samples of these steps: ``nas/controller_reward``,
            ``nas/controller_entropy`` (nats per genotype), ``nas/controller_log_prob``;
            the mean loss per step ``nas/controller_loss``; the final baseline
            ``nas/controller_baseline``.
        """
        check_int("steps", steps, minimum=1)
        self.controller.train()
        rewards: list[float] = []
        entropies: list[float] = []
        log_probs: list[float] = []
        losses: list[float] = []
        for _ in range(steps):
            genotypes, lps, hs = self.controller.sample_batch(self.samples_per_step, self.generator)
            step_rewards = [check_number(f"reward_fn({g})", reward_fn(g)) for g in genotypes]
            baseline = sum(step_rewards) / len(step_rewards) if self.baseline is None else self.baseline
            advantage = torch.tensor(step_rewards, dtype=lps.dtype, device=lps.device) - baseline
            loss = (-advantage * lps - self.entropy_weight * hs).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.controller.parameters(), self.grad_clip)
            self.optimizer.step()
            for r in step_rewards:
                baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * r
            self.baseline = baseline
            rewards += step_rewards
            entropies += hs.detach().tolist()
            log_probs += lps.detach().tolist()
            losses.append(float(loss.detach()))
        return {
            "nas/controller_reward": sum(rewards) / len(rewards),
            "nas/controller_baseline": baseline,
            "nas/controller_entropy": sum(entropies) / len(entropies),
            "nas/controller_log_prob": sum(log_probs) / len(log_probs),
            "nas/controller_loss": sum(losses) / len(losses),
        }

    @torch.no_grad()
    def derive(self, score_fn: Callable[[Genotype], float], n_samples: int = 100) -> tuple[Genotype, float]:
        """Sample ``n_samples`` cells, score each once, return the best and its score.

        A genotype sampled twice is scored once. Ties go to the earliest sample.
        """
        check_int("n_samples", n_samples, minimum=1)
        self.controller.eval()
        scores: dict[Genotype, float] = {}
        for genotype in self.controller.sample_batch(n_samples, self.generator)[0]:
            if genotype in scores:
                continue
            s = score_fn(genotype)
            if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s):
                raise ValueError(f"score_fn must return a number (not NaN); got {s!r} for {genotype}")
            scores[genotype] = float(s)
        best = max(scores, key=scores.__getitem__)  # the first of the best: the earliest sample
        return best, scores[best]

    def state_dict(self) -> dict[str, Any]:
        """Controller weights, Adam state, baseline and sampling-generator state (tensors,
        numbers and None only, loadable with ``torch.load(weights_only=True)``)."""
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "baseline": self.baseline,
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        missing = {"controller", "optimizer", "baseline"} - set(state)
        if missing:
            raise ValueError(f"EnasSearch state lacks {sorted(missing)}; pass what EnasSearch.state_dict() returned")
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])
