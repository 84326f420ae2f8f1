"""Structured RigL with constant fan-in and neuron ablation (SRigL; Lasby, Golubeva, Evci,
Nica, Ioannou, "Dynamic Sparse Training with Structured Sparsity", ICLR 2024, arXiv 2305.02299).

Not in ALGORITHMS.md: the steps below follow the paper's description as recalled here and
are unverified against its code [M]. A *neuron* is an output row of the weight (an output
channel of a convolution, with its in_channels x k_h x k_w fan-in).

- **Constant fan-in.** Every active neuron of a layer has the same number k of active
  incoming connections (``init_mask`` draws k per row at random, k = round(density x
  fan-in), at least 1), so the layer can be stored as a dense k-wide matrix.
- **Update** (same schedule as RigL). K = ⌊f · active⌋: drop the K active connections of
  smallest |w| (+ tie noise) over the whole layer; *salient* connections are those kept plus
  the K best regrowth candidates (largest |dense gradient|, or random with ``regrow:
  random``) among the inactive ones.
- **Neuron ablation** (``ablation``): an active neuron with fewer than ``gamma_sal`` x k
  salient connections is removed (its whole row masked; its bias and fan-out stay, so it
  outputs a constant). At least one neuron is kept, and the output layer is never ablated
  (its neurons are the classes). The fan-in of the others grows to k' = ⌊active / neurons
  left⌋ (at most the fan-in), so the layer keeps its count up to that rounding. Ablated
  neurons are not revived.
- **Regrowth per neuron**: each active neuron grows the k' − (its kept connections)
  candidates of highest score in its own row, restoring constant fan-in k'.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from growray.checks import check_bool, check_choice, check_int, check_number

from .updaters import UPDATERS, LayerInfo, MaskUpdate, MaskUpdater, Regrow, drop_smallest, grow_scores, top_indices

__all__ = ["StructuredRigLUpdater", "constant_fan_in_mask"]


def constant_fan_in_mask(shape: Sequence[int], n_active: int, generator: torch.Generator) -> Tensor:
    """A bool mask whose every row (``shape[0]`` neurons) has the same k = ⌊n_active / rows⌋
    (at least 1) active entries, drawn uniformly at random per row."""
    rows = int(shape[0])
    fan_in = math.prod(int(d) for d in shape[1:])
    check_int("n_active", n_active, minimum=1, maximum=rows * fan_in)
    k = max(1, min(fan_in, n_active // rows))
    order = torch.rand(rows, fan_in, generator=generator).argsort(dim=1)
    mask = torch.zeros(rows, fan_in, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask.view(*shape)


def _top_per_row(score: Tensor, need: Tensor) -> Tensor:
    """Bool matrix selecting, in each row r, the ``need[r]`` entries of highest ``score``."""
    out = torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    k_max = int(need.max()) if need.numel() else 0
    if k_max <= 0:
        return out
    if score.device.type == "cpu" and k_max < score.shape[1]:  # a linear-time partition, then a small sort
        values = -score.detach().numpy()
        part = np.argpartition(values, k_max - 1, axis=1)[:, :k_max]
        order = np.argsort(np.take_along_axis(values, part, axis=1), axis=1, kind="stable")
        top = torch.from_numpy(np.take_along_axis(part, order, axis=1)).to(torch.long)
    else:
        top = torch.topk(score, k_max, dim=1).indices
    take = torch.arange(k_max, device=score.device).unsqueeze(0) < need.unsqueeze(1)
    out.scatter_(1, top, take)
    return out


@UPDATERS.register("srigl")
class StructuredRigLUpdater(MaskUpdater):
    """SRigL: RigL under a constant fan-in per neuron, with neuron ablation.

    The steps are in the module docstring.

    Args:
        regrow: ``gradient`` (SRigL) or ``random`` (its SET-style ablation).
        ablation: remove neurons with too few salient connections.
        gamma_sal: the ablation threshold, a share of the fan-in k.
        drop_noise: std of the tie-breaking noise on |w| before the drop ranking.
    """

    def __init__(
        self, regrow: Regrow = "gradient", ablation: bool = True, gamma_sal: float = 0.3, drop_noise: float = 1e-5
    ):
        self.regrow = check_choice("regrow", regrow, ["gradient", "random"])
        self.ablation = check_bool("ablation", ablation)
        self.gamma_sal = check_number("gamma_sal", gamma_sal, low=0, high=1)
        self.drop_noise = check_number("drop_noise", drop_noise, low=0)

    @property
    def needs_gradient(self) -> bool:
        return self.regrow == "gradient"

    def init_mask(self, shape: Sequence[int], n_active: int, generator: torch.Generator) -> Tensor:
        return constant_fan_in_mask(shape, n_active, generator)

    def update(
        self,
        layer: LayerInfo,
        mask: Tensor,
        weight: Tensor,
        grad: Tensor | None,
        drop_fraction: float,
        generator: torch.Generator,
    ) -> MaskUpdate:
        drop_fraction = check_number("drop_fraction", drop_fraction, low=0, high=1)
        rows = mask.shape[0]
        m = mask.reshape(rows, -1)
        fan_in = m.shape[1]
        alive = m.any(dim=1)
        n_alive = int(alive.sum())
        n_active = int(torch.count_nonzero(m))
        k_drop = int(n_active * drop_fraction)
        kept = drop_smallest(m, weight.reshape(rows, -1), k_drop, self.drop_noise, generator)
        score = grow_scores(self.regrow, None if grad is None else grad.reshape(rows, -1), m.shape, generator)
        score = score.to(m.device).masked_fill(kept, -math.inf)
        ablated = torch.zeros(rows, dtype=torch.bool, device=m.device)
        if self.ablation and not layer.is_last and n_alive > 1:
            candidates = score.masked_fill(~alive.unsqueeze(1), -math.inf).reshape(-1)
            salient = kept.clone().reshape(-1)
            if k_drop > 0:
                salient[top_indices(candidates, k_drop)] = True
            n_salient = salient.view(rows, fan_in).sum(dim=1)
            fan = n_active / n_alive
            weak = alive & (n_salient < self.gamma_sal * fan)
            if int(weak.sum()) >= n_alive:  # keep the neuron with the most salient connections
                best = n_salient.masked_fill(~alive, -1).argmax()
                weak[best] = False
            ablated = weak
        alive = alive & ~ablated
        dropped_by_ablation = int(kept[ablated].sum())
        kept[ablated] = False
        k_new = min(fan_in, n_active // max(1, int(alive.sum())))
        need = (k_new - kept.sum(dim=1)).clamp(min=0) * alive
        new = kept | _top_per_row(score.masked_fill(~alive.unsqueeze(1), -math.inf), need)
        return MaskUpdate(
            new.view_as(mask), k_drop + dropped_by_ablation, int(need.sum()), n_ablated=int(ablated.sum())
        )
