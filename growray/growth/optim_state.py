"""Move optimizer state onto the parameters that ``widen`` created.

Policies for the newborn slots (the incumbents' slots are always kept bit-identical, and
the optimizer is never rebuilt, so LR schedulers and the incumbents' moments survive):

``zero``
    Moments start at zero. With Adam, zero moments under the shared, large step count t
    make bias correction ~1, so a newborn's first update is about
    (1-beta1)/sqrt(1-beta2) * lr ~= 3.2 * lr * sign(g), and ~31.6/sqrt(k) * lr after k
    steps (10 <~ k << 1000), against ~lr for a fresh Adam (ALGORITHMS.md §7): newborns
    take amplified steps for hundreds of iterations. ``tests/growth/test_growth_optimizer.py``
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
from growray.growth.initializers import split_unit_columns
from growray.growth.surgery import ParamChange
from growray.models.sites import SiteModules

__all__ = ["OPTIMIZER_STATE_POLICIES", "match_incumbents", "migrate_optimizer", "unit_rows", "unit_slots"]

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


def unit_rows(mods: SiteModules) -> torch.Tensor:
    """Every unit's fan-in and fan-out weights flattened together, ``(width, D)``: the rows
    ``match_incumbents`` compares (a conv channel read through a flatten owns ``spatial``
    consumer columns)."""
    w = mods.producer.weight.detach()
    cols = split_unit_columns(mods.consumer.weight.detach(), mods.spatial).transpose(0, 1).flatten(1)
    return torch.cat([w.flatten(1), cols], dim=1)


def unit_slots(
    value: torch.Tensor,
    key: str,
    dim: int,
    n: int,
    policy: str,
    sources: torch.Tensor | None = None,
) -> torch.Tensor:
    """Optimizer-state entries for ``n`` newborn positions along ``dim`` of one state tensor.

    Args:
        value: a per-parameter state tensor (``key``, e.g. ``exp_avg``), shaped like its
            parameter; for ``reset`` it holds exactly the incumbents' entries along ``dim``.
        key: the state key (``reset`` treats ``exp_avg_sq``/``max_exp_avg_sq`` as second moments).
        dim: the unit dimension.
        n: newborn positions.
        policy: ``zero`` (zeros), ``transplant`` (the entries at positions ``sources``,
            one per newborn position) or ``reset`` (first moments 0, second moments the
            mean of ``value`` along ``dim``); see the module docstring.
        sources: for ``transplant``, ``(n,)`` positions along ``dim`` to copy.

    Returns:
        ``value``'s shape with ``n`` along ``dim``: what ``migrate_optimizer`` appends for
        new units, and what the plasticity grow arm writes into dormant units in place.
    """
    check_choice("policy", policy, OPTIMIZER_STATE_POLICIES)
    shape = list(value.shape)
    shape[dim] = n
    if policy == "transplant":
        if sources is None or len(sources) != n:
            got = "None" if sources is None else f"{len(sources)} positions"
            raise ValueError(f"sources must give one position per newborn ({n}) for 'transplant'; got {got}")
        return value.index_select(dim, sources.to(value.device))
    if policy == "reset" and key in _SECOND_MOMENTS:
        return value.mean(dim=dim, keepdim=True).expand(*shape).clone()
    return value.new_zeros(shape)


def _new_slots(
    value: torch.Tensor, change: ParamChange, key: str, policy: str, sources: torch.Tensor | None
) -> torch.Tensor:
    """Entries appended for ``change``'s new slices; a conv channel read through a flatten
    owns a block of consecutive Linear columns, so each source stands for a block."""
    n_extra = change.new.shape[change.dim] - change.n_old
    positions = None
    if policy == "transplant" and sources is not None:
        if n_extra % len(sources):
            raise ValueError(
                f"{len(sources)} transplant sources cannot cover the {n_extra} new slices along dim {change.dim}"
            )
        block = n_extra // len(sources)
        positions = (sources.to(value.device)[:, None] * block + torch.arange(block, device=value.device)).flatten()
    return unit_slots(value, key, change.dim, n_extra, policy, positions)


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
