"""Costs of weight-masked (sparse) layers: active parameters and effective FLOPs.

Convention: a module holding a buffer named ``weight_mask`` (torch.nn.utils.prune's name)
of its weight's shape trains only the entries where the mask is non-zero; the others are
held at exactly zero (``growray.sparse.WeightMasks`` attaches such buffers, non-persistent,
so checkpoints and specs are unchanged). Models without such buffers count exactly as
before, so every dense number stays what it was.

Counting, following the RigL paper's accounting (Evci et al. 2020, appendix "FLOPs"): a
masked Linear or Conv2d with density d (active / all entries) costs d x its dense FLOPs in
the forward pass, in the input gradient and in the weight gradient, as a sparse kernel
would. Dense FLOPs come from ``FlopCounterMode`` per module (the same counter as
``forward_flops``), so the effective count is ``dense total - sum over masked modules of
(1 - d) x that module's FLOPs``. RigL's dense weight gradient at a mask update costs the
difference on top (``growray.cost.dense_gradient_extra_flops``, added by the caller at
those steps).

Masks that are not buffers (``growray.sparse.UnitMasks``: whole units switched off by a
forward hook, as in Grow vs Prune) take part through ``register_mask_provider``: the owner
registers a callable returning ``(module, weight-shaped 0/1 mask)`` pairs for the model, and
every cost above counts them like buffers (a masked unit's fan-in row and fan-out column
are inactive weights; a layer between two masked sites gets the product of both).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "MASK_BUFFER",
    "active_count",
    "inactive_share_of",
    "mask_signature",
    "masked_modules",
    "masked_saving",
    "module_flops",
    "n_masked_out",
    "register_mask_provider",
    "unregister_mask_provider",
]

#: the buffer name that marks a module's inactive weights
MASK_BUFFER = "weight_mask"

# mask tensor id -> (a weak reference to it, its version counter, its non-zero count); the
# count is recomputed only after an in-place change (every in-place op bumps ``_version``)
_ACTIVE: dict[int, tuple[weakref.ref[Tensor], int, int]] = {}


MaskProvider = Callable[[], Sequence[tuple[nn.Module, Tensor]]]
# model -> the providers of its non-buffer masks (UnitMasks), weakly keyed: a model dropped
# with its masks attached leaves nothing behind
_PROVIDERS: weakref.WeakKeyDictionary[nn.Module, list[MaskProvider]] = weakref.WeakKeyDictionary()


def register_mask_provider(model: nn.Module, provider: MaskProvider) -> None:
    """Let ``provider()`` (``(module, mask)`` pairs, masks shaped like the module's weight)
    count as weight masks of ``model`` until ``unregister_mask_provider``."""
    _PROVIDERS.setdefault(model, []).append(provider)


def unregister_mask_provider(model: nn.Module, provider: MaskProvider) -> None:
    """Undo ``register_mask_provider`` (no error when it was not registered)."""
    providers = _PROVIDERS.get(model, [])
    if provider in providers:
        providers.remove(provider)
    if not providers:
        _PROVIDERS.pop(model, None)


def _forget(key: int, _ref: object = None) -> None:
    _ACTIVE.pop(key, None)


def active_count(mask: Tensor) -> int:
    """Non-zero entries of ``mask``; cached per tensor until it is modified in place, so the
    per-step cost lookup of a training step does not count a large mask every step."""
    key = id(mask)
    hit = _ACTIVE.get(key)
    if hit is not None and hit[0]() is mask and hit[1] == mask._version:
        return hit[2]
    n = int(torch.count_nonzero(mask))
    _ACTIVE[key] = (weakref.ref(mask, functools.partial(_forget, key)), mask._version, n)
    return n


def _masked_param(module: nn.Module) -> nn.Parameter | None:
    params = dict(module.named_parameters(recurse=False))
    return params.get("weight", params.get("weight_orig"))  # weight_orig: torch.nn.utils.prune


def masked_modules(model: nn.Module) -> list[tuple[str, nn.Module, Tensor]]:
    """``(qualified name, module, mask)`` of every module with a ``weight_mask`` buffer whose
    shape is its weight's, in ``named_modules`` order."""
    out = []
    for name, module in model.named_modules():
        mask = module._buffers.get(MASK_BUFFER)
        weight = _masked_param(module)
        if mask is None or weight is None:
            continue
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(
                f"{name or type(model).__name__}.{MASK_BUFFER} has shape {tuple(mask.shape)}; "
                f"its weight's is {tuple(weight.shape)}"
            )
        out.append((name, module, mask))
    providers = _PROVIDERS.get(model)
    if providers:
        out = _with_provided(model, out, providers)
    return out


def _with_provided(
    model: nn.Module, found: list[tuple[str, nn.Module, Tensor]], providers: list[MaskProvider]
) -> list[tuple[str, nn.Module, Tensor]]:
    """``found`` (buffer masks) combined with the providers' masks, product per module, in
    ``named_modules`` order."""
    masks: dict[int, Tensor] = {id(module): mask for _, module, mask in found}
    for provider in providers:
        for module, mask in provider():
            prev = masks.get(id(module))
            masks[id(module)] = mask if prev is None else prev * mask
    return [(name, module, masks[id(module)]) for name, module in model.named_modules() if id(module) in masks]


def n_masked_out(model: nn.Module) -> int:
    """Trainable weights held at zero by masks (subtract from the parameter count)."""
    total = 0
    for _, module, mask in masked_modules(model):
        weight = _masked_param(module)
        if weight is not None and weight.requires_grad:
            total += mask.numel() - active_count(mask)
    return total


def mask_signature(model: nn.Module) -> tuple[tuple[str, int, int], ...]:
    """``(module, active, entries)`` per masked module: what masked costs depend on (empty
    for a dense model). Cheap: counts are cached until a mask changes."""
    return tuple((name, active_count(mask), mask.numel()) for name, _, mask in masked_modules(model))


def module_flops(counts: Mapping[str, Mapping[object, int]], model: nn.Module, name: str) -> int:
    """FLOPs a ``FlopCounterMode`` attributed to the submodule ``name`` of ``model``
    (its ``get_flop_counts()``, keyed ``<root class>.<qualified name>``)."""
    key = f"{type(model).__name__}.{name}" if name else type(model).__name__
    if key not in counts:
        return 0  # the module ran no counted op (e.g. it was not called on this input)
    return int(sum(counts[key].values()))


def masked_saving(counts: Mapping[str, Mapping[object, int]], model: nn.Module) -> int:
    """The FLOPs masks save in a counted pass: sum over masked modules of (1 - density) x the
    module's counted FLOPs."""
    saved = 0
    for name, _, mask in masked_modules(model):
        saved += inactive_share_of(module_flops(counts, model, name), mask)
    return saved


def inactive_share_of(flops: int, mask: Tensor) -> int:
    """(1 - density) x ``flops`` in integers (exact when ``flops`` is a multiple of the mask's
    entries, as a Linear's or a convolution's counted FLOPs are)."""
    numel = max(1, mask.numel())
    return (numel - active_count(mask)) * int(flops) // numel
