"""Move optimizer state onto the parameters that ``widen`` created.

Policies for the newborn slots (the incumbents' slots are always kept bit-identical, and
the optimizer is never rebuilt, so LR schedulers and the incumbents' moments survive):

``zero``
    Moments start at zero. With Adam, zero moments under the shared, large step count t
    make bias correction ~1, so a newborn's first update is about
    (1-beta1)/sqrt(1-beta2) * lr ~= 3.2 * lr * sign(g), and ~31.6/sqrt(k) * lr after k
    steps (10 <~ k << 1000), against ~lr for a fresh Adam (ALGORITHMS.md §7): newborns
    take amplified steps for hundreds of iterations. ``tests/test_growth_optimizer.py``
    measures it.
``transplant``
    Newborns copy the moments of a matched incumbent (Net2Wider: the unit they were split
    from; otherwise the incumbent whose fan-in/fan-out direction is most similar), as the
    structural-plasticity study's "moment transplant" intervention.
``reset``
    First moments (momentum, Adam's exp_avg) start at zero and second moments at the
    incumbents' mean in the same tensor, so newborns neither inherit a direction nor take
    amplified Adam steps: their steps are scaled like the incumbents'. This is growray's
    default answer to the amplification; per-unit step counts would need a new optimizer.
"""

from __future__ import annotations

import torch

from growray.checks import check_choice
from growray.growth.surgery import ParamChange

__all__ = ["OPTIMIZER_STATE_POLICIES", "match_incumbents", "migrate_optimizer"]

OPTIMIZER_STATE_POLICIES: tuple[str, ...] = ("zero", "transplant", "reset")

_FIRST_MOMENTS = ("momentum_buffer", "exp_avg")
_SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")


def match_incumbents(incumbents: torch.Tensor, newborns: torch.Tensor) -> torch.Tensor:
    """For each newborn row, the index of the incumbent row of most similar direction.

    Rows are the units' fan-in and fan-out weights flattened together. A newborn with no
    direction (all zeros) is matched to an incumbent drawn from torch's global RNG.
    """
    a = torch.nn.functional.normalize(incumbents.flatten(1).float(), dim=1)
    b = newborns.flatten(1).float()
    norms = b.norm(dim=1)
    sim = torch.nn.functional.normalize(b, dim=1) @ a.t()
    idx = sim.argmax(dim=1)
    zero = norms == 0
    if zero.any():
        idx[zero] = torch.randint(0, incumbents.shape[0], (int(zero.sum()),), device=idx.device)
    return idx


def _new_slots(
    value: torch.Tensor, change: ParamChange, key: str, policy: str, sources: torch.Tensor | None
) -> torch.Tensor:
    n_extra = change.new.shape[change.dim] - change.n_old
    extra = list(value.shape)
    extra[change.dim] = n_extra
    if policy == "transplant" and sources is not None and n_extra % len(sources) == 0:
        block = n_extra // len(sources)  # > 1 when a conv channel owns a block of Linear columns
        idx = (sources.to(value.device)[:, None] * block + torch.arange(block, device=value.device)).flatten()
        return value.index_select(change.dim, idx)
    if policy == "reset" and key in _SECOND_MOMENTS:
        mean = value.mean(dim=change.dim, keepdim=True)
        return mean.expand(*extra).clone()
    return value.new_zeros(extra)


def migrate_optimizer(
    optimizer: torch.optim.Optimizer,
    changes: list[ParamChange],
    policy: str = "zero",
    sources: torch.Tensor | None = None,
) -> None:
    """Swap ``change.old`` for ``change.new`` in ``optimizer``, keeping the incumbents' state.

    Per-parameter state tensors shaped like the old parameter (SGD ``momentum_buffer``,
    Adam/AdamW ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq``) are extended along
    ``change.dim`` as the policy says (module docstring); other entries (Adam's ``step``)
    are kept. Parameters that the optimizer does not hold are ignored.

    Args:
        optimizer: any ``torch.optim`` optimizer (tested: SGD with/without momentum, Adam, AdamW).
        changes: what ``widen`` returned.
        policy: one of ``OPTIMIZER_STATE_POLICIES``.
        sources: for ``transplant``, the matched incumbent of each new unit (``match_incumbents``).
    """
    check_choice("policy", policy, OPTIMIZER_STATE_POLICIES)
    if policy == "transplant" and sources is None:
        raise ValueError("the 'transplant' policy needs the matched incumbents (sources)")
    by_old = {id(c.old): c for c in changes}
    for group in optimizer.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            change = by_old.get(id(p))
            if change is None:
                continue
            params[i] = change.new
            state = optimizer.state.pop(p, None)
            if not state:
                continue
            optimizer.state[change.new] = {
                k: torch.cat([v, _new_slots(v, change, k, policy, sources)], dim=change.dim)
                if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape == change.old.shape
                else v
                for k, v in state.items()
            }
