"""REINFORCE over sampled cells (ENAS; Pham et al., ICML 2018), for any cell controller (pure torch).

A controller is a :class:`CellController`: a module that samples cells in batches, with the
log-probability and the entropy of every sample. ENAS' micro controller
(``growray.nas.enas_controller``) samples DARTS-style cells; the NAS-Bench-201 controller
(``growray.nas.enas_nb201``) one op per edge. :class:`EnasSearch` trains either with
REINFORCE and derives a cell by sampling and scoring; :func:`decide` is the sampling step
both controllers take for each decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import torch
from torch import nn

from growray.checks import check_int, check_number

__all__ = ["CellController", "EnasSearch", "check_op_names", "decide"]

G = TypeVar("G", bound=Hashable)  # a genotype: Genotype (DARTS/ENAS cells) or Nb201Genotype


def _positive(name: str, value: object) -> float:
    return check_number(name, value, low=0.0, low_open=True)


def check_op_names(op_names: object) -> tuple[str, ...]:
    """A controller's candidate ops: a non-empty sequence of unique, non-empty names."""
    if isinstance(op_names, (str, bytes)) or not isinstance(op_names, Sequence) or len(op_names) == 0:
        raise ValueError(f"op_names must be a non-empty list of op names; got {op_names!r}")
    if not all(isinstance(o, str) and o for o in op_names) or len(set(op_names)) != len(op_names):
        raise ValueError(f"op_names must be unique non-empty strings; got {list(op_names)!r}")
    return tuple(op_names)


def decide(
    logits: torch.Tensor, forced: torch.Tensor | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decision of a batch of samples: choices ``(B,)`` drawn from ``softmax(logits)`` (or
    ``forced``, to score given cells), their log-probabilities and the distributions' entropies."""
    logp = torch.log_softmax(logits, dim=-1)
    if forced is None:
        choice = torch.multinomial(logp.detach().exp(), 1, generator=generator).squeeze(1)
    else:
        choice = forced
    entropy = -(logp.exp() * logp).sum(-1)
    return choice, logp.gather(1, choice[:, None]).squeeze(1), entropy


class CellController(nn.Module, Generic[G]):
    """A policy over cells: what :class:`EnasSearch` trains.

    Subclasses implement :meth:`sample_batch` and :meth:`log_prob_batch`; :meth:`sample` and
    :meth:`log_prob` are their one-cell forms.
    """

    def sample_batch(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[list[G], torch.Tensor, torch.Tensor]:
        """``n`` independent cells and their log-probabilities and entropies, shape ``(n,)``,
        with gradient to the controller's parameters."""
        raise NotImplementedError

    def log_prob_batch(self, genotypes: Sequence[G]) -> torch.Tensor:
        """Log-probabilities, shape ``(len(genotypes),)``, of the given cells (with gradient)."""
        raise NotImplementedError

    def sample(self, generator: torch.Generator | None = None) -> tuple[G, torch.Tensor, torch.Tensor]:
        """One cell: ``(genotype, log_prob, entropy)``, scalar tensors with gradient."""
        genotypes, log_prob, entropy = self.sample_batch(1, generator)
        return genotypes[0], log_prob[0], entropy[0]

    def log_prob(self, genotype: G) -> torch.Tensor:
        """The log-probability of one cell (scalar, with gradient)."""
        return self.log_prob_batch([genotype])[0]


class EnasSearch(Generic[G]):
    """REINFORCE for a :class:`CellController` (ENAS' micro controller, or the NAS-Bench-201
    one), and ENAS' derivation of the final cell.

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
        controller: CellController[G],
        *,
        lr: float = 3.5e-3,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        samples_per_step: int = 10,
        grad_clip: float | None = None,
        generator: torch.Generator | None = None,
    ):
        if not isinstance(controller, CellController):
            raise TypeError(
                f"controller must be a CellController (EnasController, Nb201EnasController); got {type(controller).__name__}"
            )
        self.baseline_decay = check_number("baseline_decay", baseline_decay, low=0.0, high=1.0, high_open=True)
        self.entropy_weight = check_number("entropy_weight", entropy_weight, low=0.0)
        self.samples_per_step = check_int("samples_per_step", samples_per_step, minimum=1)
        self.controller = controller
        self.lr = _positive("lr", lr)
        self.grad_clip = check_number("grad_clip", grad_clip, low=0.0, low_open=True, optional=True)
        self.generator = generator
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=self.lr)
        self.baseline: float | None = None

    def train_controller(self, reward_fn: Callable[[G], float], steps: int) -> dict[str, float]:
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
    def derive(self, score_fn: Callable[[G], float], n_samples: int = 100) -> tuple[G, float]:
        """Sample ``n_samples`` cells, score each once, return the best and its score.

        A genotype sampled twice is scored once. Ties go to the earliest sample.
        """
        check_int("n_samples", n_samples, minimum=1)
        self.controller.eval()
        scores: dict[G, float] = {}
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
