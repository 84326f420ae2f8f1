"""The Grow arm of the structural-plasticity protocol (ALGORITHMS.md §7), and its interventions.

A growing network here is a fixed-shape model whose units are switched on by a
:class:`~growray.sparse.masks.UnitMasks`: it starts with a fraction of each site active,
and at each cycle boundary the top-n inactive ("dormant") units are activated, n from
``edit_count`` so both arms reach the same final budget over the same cycles. No rewind.

Selection (which dormant units are born):

``activity``
    act(j) = fraction of inputs on which the dormant unit's unmasked post-activation
    exceeds ``tau`` (upstream masks applied), as in the study.
``gradmax``
    the learning signal the unit would receive if it were active: the norm of the
    gradient its fan-out column would get, ||sum_n delta_n h_j(x_n)|| / N, with delta the
    loss gradient at the consumer's output of the current (masked) network and h_j the
    unit's unmasked post-activation. This is GradMax's criterion (the gradient norm of the
    new weights) applied to choosing among existing dormant units rather than to
    initialising new ones; it needs a Linear consumer (dense sites, as the study's
    editable MLP and ConvNet head).

Insertion (how newborns start): ``keep`` leaves the dormant weights as they are (their
initialisation); ``net2wider`` copies an active incumbent's fan-in, bias and BatchNorm
entries into each newborn and splits the incumbent's fan-out between them (divided by the
number of copies), so the function is unchanged without noise; ``noise`` (relative to
each copied row's std) breaks the symmetry between copies, which would otherwise get
identical gradients forever. The copies are computed by the growth library's
``net2wider_proposal`` (which ``widen`` appends) and written into the dormant units here.

Optimizer state of newborn slices: ``zero`` (every moment set to zero) or ``transplant``
(the study's moment transplant: copy the moments of a matched incumbent, the net2wider
source or else the active unit of most similar fan-in/fan-out direction). The entries come
from the growth library's ``unit_slots``, as for appended units, written in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from growray.checks import check_choice, check_number
from growray.growth.capture import capture_site
from growray.growth.diagnostics import log_ratio, unit_act_grad
from growray.growth.initializers import net2wider_proposal
from growray.growth.optim_state import match_incumbents, unit_rows, unit_slots
from growray.models.sites import GrowableModel
from growray.sparse.masks import UnitMasks, raw_activations, site_slices
from growray.sparse.prune import edit_count, select_highest, unit_activity

__all__ = [
    "GROW_SELECTIONS",
    "INSERTIONS",
    "MOMENT_POLICIES",
    "GrowResult",
    "cohort_parity",
    "gradmax_scores",
    "grow_step",
    "log_ratio",
    "match_sources",
    "migrate_moments",
    "net2wider_insert",
    "selection_scores",
]

GROW_SELECTIONS: tuple[str, ...] = ("activity", "gradmax")
INSERTIONS: tuple[str, ...] = ("keep", "net2wider")
MOMENT_POLICIES: tuple[str, ...] = ("zero", "transplant")


def gradmax_scores(model: GrowableModel, masks: UnitMasks, site: str, x: Tensor, y: Tensor) -> Tensor:
    """Per unit of ``site``: the norm of the fan-out gradient it would receive if active
    (module docstring), on the batch ``(x, y)`` in eval mode.

    Raises:
        NotImplementedError: the site's consumer is not a Linear reading one column per unit.
    """
    mods = model.site_modules(site)
    if not isinstance(mods.consumer, nn.Linear) or mods.spatial != 1:
        raise NotImplementedError(
            f"gradmax selection needs a Linear consumer with one column per unit; site {site!r} has a "
            f"{type(mods.consumer).__name__} consumer (spatial={mods.spatial}): use selection 'activity'"
        )
    was_training = model.training
    model.eval()
    try:
        with masks.recording() as raw:
            cap = capture_site(model, site, x, y, with_grad=True)
        h = raw[site].flatten(1)  # (N, W) unmasked post-activations
    finally:
        model.train(was_training)
    delta = cap.gradients()[2].flatten(1)  # (N, out): dL/d(consumer output) of the mean loss
    return (delta.t() @ h).norm(dim=0).cpu()  # the mean loss already carries the 1/N


def selection_scores(
    model: GrowableModel, masks: UnitMasks, site: str, batch: tuple[Tensor, Tensor], selection: str, tau: float
) -> Tensor:
    """Scores of every unit of ``site`` under ``selection`` (``GROW_SELECTIONS``); higher is born first."""
    check_choice("selection", selection, GROW_SELECTIONS)
    if selection == "activity":
        return unit_activity(raw_activations(model, masks, batch[0])[site], tau)
    return gradmax_scores(model, masks, site, batch[0], batch[1])


def match_sources(model: GrowableModel, site: str, incumbents: Tensor, newborns: Tensor) -> Tensor:
    """For each newborn, the incumbent (a unit index) whose fan-in and fan-out are most
    similar in direction (``growth.optim_state.match_incumbents``)."""
    rows = unit_rows(model.site_modules(site)).cpu()
    incumbents = torch.as_tensor(incumbents, dtype=torch.long).cpu()
    pick = match_incumbents(rows[incumbents], rows[torch.as_tensor(newborns, dtype=torch.long).cpu()])
    return incumbents[pick.cpu()]


@torch.no_grad()
def net2wider_insert(model: GrowableModel, site: str, newborns: Tensor, sources: Tensor, noise: float = 0.0) -> None:
    """Newborn ``newborns[i]`` copies the fan-in, bias and BatchNorm entries (running
    statistics included) of ``sources[i]``; each source's fan-out column is divided by
    its number of copies + 1 and shared by all of them. Exact without noise.

    The copies are ``growth.initializers.net2wider_proposal``'s (the Net2Wider initializer's
    math), written into the dormant units in place instead of appended."""
    noise = check_number("noise", noise, low=0)
    newborns = torch.as_tensor(newborns, dtype=torch.long).cpu()
    sources = torch.as_tensor(sources, dtype=torch.long).cpu()
    if len(newborns) != len(sources):
        raise ValueError(f"{len(newborns)} newborns but {len(sources)} sources")
    if len(newborns) == 0:
        return
    mods = model.site_modules(site)
    copies = net2wider_proposal(mods, sources, noise)
    slices = {sl.name: sl for sl in site_slices(model, site)}
    slices["producer.weight"].set_(newborns, copies.fan_in)
    if copies.bias is not None:
        slices["producer.bias"].set_(newborns, copies.bias)
    if mods.norm is not None and copies.norm is not None:
        for key, values in copies.norm.items():  # affine parameters and running statistics
            t = getattr(mods.norm, key)
            t.index_copy_(0, newborns.to(t.device), values.to(t.dtype))
    consumer = slices["consumer.weight"]
    assert copies.incumbent_fan_out is not None  # net2wider_proposal always divides the sources' columns
    consumer.tensor.copy_(copies.incumbent_fan_out)
    consumer.set_(newborns, copies.fan_out)


@torch.no_grad()
def migrate_moments(
    optimizer: torch.optim.Optimizer,
    model: GrowableModel,
    site: str,
    newborns: Tensor,
    policy: str,
    sources: Tensor | None = None,
) -> None:
    """Set the optimizer slots of ``newborns``' slices: ``zero`` or ``transplant`` (copy the
    slots of ``sources[i]`` into ``newborns[i]``). Every per-parameter state tensor shaped
    like its parameter (momentum buffers, Adam's ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq``) is edited in place with ``growth.optim_state.unit_slots``' entries;
    scalars such as Adam's ``step`` are shared and kept."""
    check_choice("optimizer_state", policy, MOMENT_POLICIES)
    if policy == "transplant" and (sources is None or len(sources) != len(newborns)):
        raise ValueError("the 'transplant' policy needs one source incumbent per newborn")
    newborns = torch.as_tensor(newborns, dtype=torch.long)
    for sl in site_slices(model, site):
        state = optimizer.state.get(sl.tensor)
        if not state:
            continue
        idx = sl.index(newborns)
        src = None if sources is None or policy != "transplant" else sl.index(torch.as_tensor(sources))
        for key, value in state.items():
            if not isinstance(value, Tensor) or value.shape != sl.tensor.shape:
                continue
            value.index_copy_(sl.dim, idx, unit_slots(value, key, sl.dim, len(idx), policy, src))


@dataclass
class GrowResult:
    """What one growth edit did at one site."""

    newborns: Tensor
    incumbents: Tensor
    sources: Tensor | None


def grow_step(
    model: GrowableModel,
    masks: UnitMasks,
    targets: Mapping[str, int],
    cycle: int,
    n_cycles: int,
    batch: tuple[Tensor, Tensor],
    *,
    selection: str = "activity",
    insertion: str = "keep",
    optimizer_state: str = "zero",
    optimizer: torch.optim.Optimizer | None = None,
    tau: float = 0.05,
    noise: float = 0.0,
) -> dict[str, GrowResult]:
    """One growth edit at the boundary after ``cycle``: per site, activate the ``edit_count``
    best dormant units by ``selection``, insert them (``insertion``) and set their optimizer
    slots (``optimizer_state``); the masks' snapshot of dormant slices is refreshed."""
    check_choice("selection", selection, GROW_SELECTIONS)
    check_choice("insertion", insertion, INSERTIONS)
    check_choice("optimizer_state", optimizer_state, MOMENT_POLICIES)
    plan: dict[str, GrowResult] = {}
    for site, target in targets.items():  # all scores on the network as it was
        active, dormant = masks.active(site), masks.inactive(site)
        n = edit_count(max(0, int(target) - len(active)), cycle, n_cycles, len(dormant))
        if n == 0:
            plan[site] = GrowResult(torch.zeros(0, dtype=torch.long), active, None)
            continue
        scores = selection_scores(model, masks, site, batch, selection, tau)
        plan[site] = GrowResult(select_highest(scores, dormant, n), active, None)
    for site, res in plan.items():
        if len(res.newborns) == 0:
            continue
        if insertion == "net2wider":
            res.sources = res.incumbents[torch.randint(0, len(res.incumbents), (len(res.newborns),))]
            net2wider_insert(model, site, res.newborns, res.sources, noise)
        elif optimizer_state == "transplant":
            res.sources = match_sources(model, site, res.incumbents, res.newborns)
        if optimizer is not None:
            migrate_moments(optimizer, model, site, res.newborns, optimizer_state, res.sources)
        masks.set_units(site, res.newborns, True)
    masks.snapshot_inactive()
    return plan


def cohort_parity(
    model: GrowableModel, site: str, new: Tensor, old: Tensor, batch: tuple[Tensor, Tensor], tau: float = 0.05
) -> tuple[float, float]:
    """(activation, gradient) log-parity of units ``new`` against units ``old`` of ``site``,
    as ``growth.diagnostics`` defines them (act: fraction of post-activations above
    ``tau``; grad: mean |dL/dz_j|), on ``batch`` in eval mode with the masks as attached."""
    was_training = model.training
    model.eval()
    try:
        act, grad = unit_act_grad(model, site, batch, tau)
    finally:
        model.train(was_training)
    act, grad = act.cpu(), grad.cpu()
    new, old = torch.as_tensor(new, dtype=torch.long).cpu(), torch.as_tensor(old, dtype=torch.long).cpu()
    return log_ratio(act, new, old), log_ratio(grad, new, old)
