"""Depth growth: insert a block after a width site, preserving the function.

A depth operator ("deepener") inserts one block of the same width right after a site of a
``DeepenableModel`` (``GrowableMLP``, ``GrowableCNN``) and initialises it:

``net2deeper``
    Net2DeeperNet (Chen et al. 2016; ALGORITHMS.md §1): identity weights, zero bias, and
    BatchNorm set to undo itself. Exact only where the new block's activation φ is the
    identity on the values reaching it (φ(φ_s(v)) = φ_s(v)); rejected elsewhere.
``dropin``
    Gradual DropIn (Smith et al. 2016; ALGORITHMS.md §11): a randomly initialised block
    mixed with the skip path by a per-unit Bernoulli gate that opens linearly over
    ``steps`` optimizer steps (``advance_dropin``); exact at gate 0 whatever the init.

New blocks are new width sites with stable names (``hidden.<id>``, ``conv.<id>``,
``fc.<id>``; the next unused id of their kind), so existing sites keep their names.

Optimizer: the block's parameters are brand-new tensors, so ``add_new_parameters`` appends
them to the parameter group of the site's producer (same lr, weight decay, momentum) at
the position they have in ``model.parameters()``. A single-group optimizer thus stays
identical to one built afresh for the deepened model (a checkpoint's optimizer state loads
onto the model rebuilt from its spec), and the incumbents' state is never touched. New
tensors get fresh state at their first step (Adam: their own step count, so no amplified
first updates, unlike newborn units inside an existing tensor).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from growray.checks import check_int
from growray.growth.limits import SiteLimits
from growray.models.activations import ACTIVATIONS, make_activation
from growray.models.sites import DeepenableModel, GrowableModel, Norm, UnitLayer
from growray.registry import Registry, UnknownNameError

__all__ = [
    "DEEPENERS",
    "Deepener",
    "DepthChange",
    "DropInDeepener",
    "Net2DeeperDeepener",
    "add_new_parameters",
    "advance_dropin",
    "dropin_gates",
]


@dataclass
class DepthChange:
    """What a deepener did.

    Attributes:
        site: the site after which the block was inserted.
        new_site: the inserted block's (new) site name.
        width: its width (units or channels).
        new_params: its parameters (for ``add_new_parameters``).
    """

    site: str
    new_site: str
    width: int
    new_params: list[nn.Parameter] = field(default_factory=list)


class Deepener(ABC):
    """How an inserted block starts. Random draws use torch's global RNG.

    A deepener whose class sets ``uses_hint = True`` gets the request's payload:
    ``apply(model, site, batch=..., hint=request.payload)``.
    """

    uses_hint: ClassVar[bool] = False

    @property
    def preserves_function(self) -> bool:
        """True when inserting leaves the outputs unchanged in eval mode (the depth
        conformance suite then checks it)."""
        return False

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        """Why a block cannot be inserted after ``site`` of ``model`` under ``limits`` (None
        when it can). ``growray validate`` calls it before a run, on a model built on the
        meta device. The default needs a ``DeepenableModel`` that has ``site``."""
        return _insertable(model, site)

    @abstractmethod
    def apply(self, model: DeepenableModel, site: str, batch: tuple[Tensor, Tensor] | None = None) -> DepthChange:
        """Insert and initialise a block after ``site`` of ``model``, in place."""


DEEPENERS: Registry[Deepener] = Registry("deepener")


def _insertable(model: GrowableModel, site: str) -> str | None:
    if not isinstance(model, DeepenableModel):
        return f"a {type(model).__name__} cannot hold inserted blocks (it is not a DeepenableModel: no insert_block)"
    sites = model.sites()
    if site not in sites:
        return str(UnknownNameError("site", site, sites))
    return None


def _check_activation(activation: object) -> str | None:
    if activation is not None:
        if not isinstance(activation, str):
            raise ValueError(f"activation must be a registered activation name or null; got {activation!r}")
        make_activation(activation)  # "did you mean" on an unknown name
    return activation


def _on_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in [*module.parameters(), *module.buffers()])


def _usable(module: nn.Module, name: str) -> nn.Module:
    """The module itself, or a fresh one of ``name`` when it lives on the meta device."""
    return make_activation(name) if _on_meta(module) else module


_GRID = torch.cat([torch.linspace(-20.0, 20.0, 4001), torch.tensor([-1e3, -100.0, 100.0, 1e3])])


def _feeding_activations(model: DeepenableModel, site: str) -> list[nn.Module]:
    """Activations whose outputs reach a block inserted after ``site``: the site's own, and
    while the block is a DropIn block (its skip path passes its input through), those of
    the blocks before it; ``nn.Identity()`` for the raw input. Max-pools and flattens keep
    values inside the same set, so they are transparent here."""
    sites = model.sites()
    i = sites.index(site)
    out: list[nn.Module] = []
    while True:
        block = model.block(sites[i])
        out.append(_usable(block.act, block.activation))
        if block.gate is None:
            return out
        if i == 0:
            out.append(nn.Identity())
            return out
        i -= 1


@torch.no_grad()
def _counterexample(new_act: nn.Module, feeding: list[nn.Module]) -> tuple[float, float, float] | None:
    """A grid value v (|v| <= 1e3) with φ_new(φ_s(v)) != φ_s(v) for a feeding activation φ_s,
    as ``(v, φ_s(v), φ_new(φ_s(v)))``; None when φ_new is the identity on all their outputs."""
    for act in feeding:
        p = next(iter([*act.parameters(), *act.buffers()]), None)
        v = _GRID.to(p.device) if p is not None else _GRID
        u = act(v).float().cpu()
        w = new_act(u).float().cpu()
        bad = ~torch.isclose(w, u, rtol=1e-6, atol=1e-7)
        if bad.any():
            i = int(((w - u).abs() * bad).argmax())  # the clearest counterexample
            return float(v[i]), float(u[i]), float(w[i])
    return None


def _identity_weights(producer: UnitLayer) -> None:
    with torch.no_grad():
        w = producer.weight
        w.zero_()
        n = w.shape[0]
        idx = torch.arange(n, device=w.device)
        if w.dim() == 2:
            w[idx, idx] = 1.0
        else:  # conv (out, in, kh, kw): centre tap on the channel diagonal
            w[idx, idx, w.shape[2] // 2, w.shape[3] // 2] = 1.0
        if producer.bias is not None:
            producer.bias.zero_()


@torch.no_grad()
def _norm_input_stats(model: GrowableModel, norm: Norm, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-unit mean and biased variance of ``norm``'s input over ``x``, as training sees it:
    BatchNorm layers in train mode (normalising with the batch's statistics), everything
    else in eval mode (DropIn gates use their expectation, so the result is deterministic).
    Running statistics are restored, so the model is left exactly as it was."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [
        {
            k: getattr(m, k).clone()
            for k in ("running_mean", "running_var", "num_batches_tracked")
            if getattr(m, k, None) is not None
        }
        for m in norms
    ]
    seen: list[Tensor] = []
    handle = norm.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    was_training = model.training
    model.eval()
    for m in norms:
        m.train()
    try:
        model(x)
    finally:
        handle.remove()
        model.train(was_training)
        for m, state in zip(norms, saved):
            for k, v in state.items():
                getattr(m, k).copy_(v)
    z = seen[0]
    dims = [0, *range(2, z.dim())]  # samples (and positions)
    return z.mean(dim=dims), z.var(dim=dims, unbiased=False)


@DEEPENERS.register("net2deeper")
class Net2DeeperDeepener(Deepener):
    """Net2DeeperNet: insert an identity-initialised block (Chen et al. 2016).

    The new producer is the identity (Linear: I; conv: 1 at the centre tap of each channel's
    own kernel, stride 1, same padding) with zero bias. With BatchNorm in the block, one
    forward pass over the training ``batch``, with the BatchNorm layers in train mode as
    during training (running statistics left untouched), gives the per-unit mean μ and
    (biased) variance σ² of the block's input; the BN gets γ = √(σ² + ε), β = μ, running
    mean μ and running variance σ². In eval mode BN(z) = γ (z - μ) / √(σ² + ε) + β = z: the
    block is the identity up to float rounding, on any input. In train mode BN normalises
    with each batch's own statistics, which equal μ, σ² only on the batch used here: the
    training-mode function is preserved exactly on that batch and approximately on other
    batches of the same distribution (the growth hook passes its recent training samples).

    Exact only when the new block's activation φ is the identity on the values that reach
    it: φ(φ_s(v)) = φ_s(v) for the site's activation φ_s (and, after a DropIn block still
    ramping, for the activations feeding its skip path). relu after relu, and any
    activation after an identity-initialised ``rational``, qualify; leaky_relu, tanh,
    gelu, silu do not (φ(φ(v)) != φ(v)): ``check_site`` and ``apply`` reject them with the
    activations that would work. The check evaluates the activations on a grid of values.

    Args:
        activation: the new block's activation name; null: the site block's activation.
    """

    def __init__(self, activation: str | None = None):
        self.activation = _check_activation(activation)

    @property
    def preserves_function(self) -> bool:
        return True

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        reason = _insertable(model, site)
        if reason is not None or not isinstance(model, DeepenableModel):  # _insertable checked the type
            return reason
        block = model.block(site)
        name = self.activation or block.activation
        feeding = _feeding_activations(model, site)
        bad = _counterexample(make_activation(name), feeding)
        if bad is None:
            return None
        works = [a for a in ACTIVATIONS.names() if _counterexample(make_activation(a), feeding) is None]
        v, u, w = bad
        return (
            f"net2deeper inserts an identity layer, which preserves the function only if the new activation φ "
            f"leaves the site's outputs unchanged, φ(φ_s(v)) = φ_s(v), with φ_s = {block.activation!r} at {site}; "
            f"φ = {name!r} does not (v = {v:g}: φ_s(v) = {u:.6g} but φ(φ_s(v)) = {w:.6g}). "
            f"Activations that work here: {', '.join(works) or 'none registered'} (relu after relu, an "
            "identity-initialised rational after anything); or use the dropin deepener, which works with any activation"
        )

    def apply(self, model: DeepenableModel, site: str, batch: tuple[Tensor, Tensor] | None = None) -> DepthChange:
        reason = self.check_site(model, site, SiteLimits())
        if reason:
            raise ValueError(reason)
        site_norm = model.block(site).norm
        if site_norm is not None and batch is None:
            raise ValueError(
                "net2deeper needs a training batch (batch=(x, y)) to set the new BatchNorm's statistics; got None"
            )
        if site_norm is not None and (site_norm.running_mean is None or site_norm.running_var is None):
            raise ValueError("net2deeper needs BatchNorm layers that track running statistics (track_running_stats)")
        new_site = model.insert_block(site, activation=self.activation, dropin=False)
        block = model.block(new_site)
        producer = block.producer
        _identity_weights(producer)
        norm = block.norm
        if norm is not None and batch is not None:  # batch is None only without BatchNorm (checked above)
            mean, var = _norm_input_stats(model, norm, batch[0].to(producer.weight.device))
            with torch.no_grad():
                for buffer, value in ((norm.running_mean, mean), (norm.running_var, var)):
                    if buffer is not None:  # a new block's BatchNorm is built like the site's (checked above)
                        buffer.copy_(value)
                norm.weight.copy_(torch.sqrt(var + norm.eps))
                norm.bias.copy_(mean)
        return DepthChange(site, new_site, producer.weight.shape[0], list(block.parameters()))


@DEEPENERS.register("dropin")
class DropInDeepener(Deepener):
    """Gradual DropIn: insert a randomly initialised block behind a closed gate.

    The block's output z is mixed with its input x as y = (1 - m) ⊙ x + m ⊙ z, m a
    Bernoulli mask per sample and unit (per channel in a conv block) with P(m = 1) = g; in
    eval mode y = (1 - g) x + g z. g starts at 0 (exactly the shallower network, whatever
    the block's weights) and rises by 1/``steps`` per optimizer step (``advance_dropin``,
    called by the growth hook); at g = 1 the gate is removed and the block is a plain layer.
    The gate's state is a model buffer, so checkpoints carry it. While the gate ramps, the
    widths of the block and of the site before it are locked (``model.locked_sites()``).

    Args:
        steps: optimizer steps over which the gate opens, >= 1.
        activation: the new block's activation name; null: the site block's activation.
    """

    def __init__(self, steps: int = 500, activation: str | None = None):
        self.steps = check_int("steps", steps, minimum=1)
        self.activation = _check_activation(activation)

    @property
    def preserves_function(self) -> bool:
        return True

    def apply(self, model: DeepenableModel, site: str, batch: tuple[Tensor, Tensor] | None = None) -> DepthChange:
        reason = self.check_site(model, site, SiteLimits())
        if reason:
            raise ValueError(reason)
        new_site = model.insert_block(site, activation=self.activation, dropin=True)
        block = model.block(new_site)
        if block.gate is None:
            raise TypeError(f"{type(model).__name__}.insert_block(dropin=True) made a block without a DropIn gate")
        block.gate.start(self.steps)
        return DepthChange(site, new_site, block.producer.weight.shape[0], list(block.parameters()))


def add_new_parameters(
    optimizer: torch.optim.Optimizer,
    model: GrowableModel,
    new_params: list[nn.Parameter],
    anchor: Tensor | None = None,
) -> None:
    """Let ``optimizer`` train ``new_params`` without touching anyone else's state.

    They join the parameter group holding ``anchor`` (e.g. the site's producer weight;
    the first group when no group holds it), so they get its lr and weight decay, and the
    group's list is ordered as ``model.parameters()`` (module docstring). Parameters the
    optimizer already holds, or that do not require grad, are skipped.
    """
    groups = optimizer.param_groups
    group = next((g for g in groups if anchor is not None and any(p is anchor for p in g["params"])), groups[0])
    held = {id(p) for g in groups for p in g["params"]}
    fresh = [p for p in new_params if p.requires_grad and id(p) not in held]
    if not fresh:
        return
    order = {id(p): i for i, p in enumerate(model.parameters())}
    merged = [*group["params"], *fresh]
    if all(id(p) in order for p in merged):
        merged.sort(key=lambda p: order[id(p)])
    group["params"] = merged


def dropin_gates(model: nn.Module) -> dict[str, float]:
    """Current gate value of every DropIn block, by site (empty when none ramps, and for a
    model that is not a ``DeepenableModel``)."""
    out: dict[str, float] = {}
    if not isinstance(model, DeepenableModel):
        return out
    for site in model.sites():
        gate = model.block(site).gate
        if gate is not None:
            out[site] = float(gate.value())
    return out


def advance_dropin(model: nn.Module) -> list[str]:
    """One optimizer step for every DropIn gate; gates that reach 1 are removed (exact:
    the block's output is then used as is). Returns the sites whose gate opened now (none
    for a model that is not a ``DeepenableModel``)."""
    opened: list[str] = []
    if not isinstance(model, DeepenableModel):
        return opened
    for site in model.sites():
        gate = model.block(site).gate
        if gate is None:
            continue
        gate.advance()
        if gate.is_open():
            model.remove_dropin(site)
            opened.append(site)
    return opened
