"""Per-weight masks of Linear and Conv2d layers, for dynamic sparse training (ALGORITHMS.md §10).

A :class:`WeightMasks` holds one boolean mask per layer (True: the connection is active).
Attached to a model it

- zeroes every inactive weight once;
- registers each mask as the layer's non-persistent ``weight_mask`` buffer, so cost
  counting (``growray.cost.masked``) sees it, while ``state_dict`` and the architecture
  spec stay those of the dense model;
- masks each weight's gradient with a tensor hook, *before* the optimizer sees it: with a
  zero gradient and a zero weight, SGD momentum, Adam moments, L2 weight decay (added to
  the zero gradient as ``wd * 0``) and AdamW's decoupled decay (``w * (1 - lr wd)``) all
  leave an inactive weight at exactly zero, step after step, with no re-masking of weights.

The hook can also keep the *dense* gradient of one backward pass (:meth:`capture_next`),
which RigL's regrowth criterion needs at update steps only. Mask changes go through
:meth:`WeightMasks.replace`: dropped and newly grown connections are set to zero and their
optimizer slots (momentum, Adam moments) are reset, as in the RigL code; connections that
stay active keep their values and state.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from growray.cost import MASK_BUFFER

__all__ = ["MaskableLayer", "WeightMasks", "maskable_layers", "reset_optimizer_slots"]


MaskableLayer = nn.Linear | nn.Conv2d


def maskable_layers(model: nn.Module) -> dict[str, MaskableLayer]:
    """The Linear and Conv2d modules of ``model`` with a trainable weight, by qualified name,
    in registration order (the forward order of growray's MLP and CNN: first to last)."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d)) and isinstance(m.weight, nn.Parameter) and m.weight.requires_grad
    }


def reset_optimizer_slots(optimizer: torch.optim.Optimizer | None, param: Tensor, where: Tensor) -> None:
    """Zero ``param``'s optimizer state (every state tensor of its shape: momentum buffers,
    Adam's moments) at the positions ``where``; scalar state (Adam's step count) is shared
    and kept."""
    if optimizer is None:
        return
    state = optimizer.state.get(param)
    if not state:
        return
    for value in state.values():
        if isinstance(value, Tensor) and value.shape == param.shape:
            value.masked_fill_(where, 0)


class WeightMasks:
    """Boolean masks of a model's weights, one per layer (module docstring).

    Args:
        masks: ``{layer name: bool tensor of the layer's weight shape}``; names as
            ``model.named_modules()`` gives them (``hidden.0.linear``, ``convs.1.conv``).
    """

    def __init__(self, masks: Mapping[str, Tensor]):
        if not masks:
            raise ValueError("WeightMasks needs at least one layer's mask; got none")
        for name, m in masks.items():
            if not isinstance(m, Tensor) or m.dtype != torch.bool:
                raise TypeError(f"mask {name!r} must be a bool tensor; got {getattr(m, 'dtype', type(m).__name__)}")
        self._masks: dict[str, Tensor] = {k: v.clone() for k, v in masks.items()}
        self._modules: dict[str, MaskableLayer] = {}
        self._handles: list[RemovableHandle] = []
        self._model: nn.Module | None = None
        self._capture = False
        self.dense_grads: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ reading
    @property
    def layers(self) -> list[str]:
        return list(self._masks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def mask(self, layer: str) -> Tensor:
        """The layer's bool mask (read-only by convention: change it with :meth:`replace`)."""
        return self._masks[layer]

    def n_active(self, layer: str) -> int:
        return int(torch.count_nonzero(self._masks[layer]))

    def numel(self, layer: str) -> int:
        return self._masks[layer].numel()

    def density(self, layer: str) -> float:
        return self.n_active(layer) / self.numel(layer)

    def sparsity(self, layer: str | None = None) -> float:
        """Share of inactive weights in ``layer``, or over every masked layer."""
        if layer is not None:
            return 1.0 - self.density(layer)
        total = sum(self.numel(k) for k in self._masks)
        return 1.0 - sum(self.n_active(k) for k in self._masks) / total

    @property
    def model(self) -> nn.Module | None:
        return self._model

    def weight(self, layer: str) -> Tensor:
        """The attached model's weight of ``layer``."""
        if layer not in self._modules:
            raise RuntimeError("WeightMasks is not attached to a model; call attach(model) first")
        return self._modules[layer].weight

    # ------------------------------------------------------------------ attaching
    def attach(self, model: nn.Module) -> None:
        """Mask ``model``'s weights: zero the inactive ones, register the ``weight_mask``
        buffers and the gradient hooks (a model already attached to is detached first)."""
        self.detach()
        layers = maskable_layers(model)
        for name, m in self._masks.items():
            if name not in layers:
                raise ValueError(
                    f"mask {name!r} names no Linear/Conv2d layer of the model; its layers are {list(layers)}"
                )
            weight = layers[name].weight
            if tuple(m.shape) != tuple(weight.shape):
                raise ValueError(
                    f"mask {name!r} has shape {tuple(m.shape)}; the layer's weight is {tuple(weight.shape)}"
                )
        for name in self._masks:
            module = layers[name]
            weight = module.weight
            self._masks[name] = self._masks[name].to(weight.device)
            module.register_buffer(MASK_BUFFER, self._masks[name].to(weight.dtype), persistent=False)
            with torch.no_grad():
                weight.masked_fill_(~self._masks[name], 0)
            self._handles.append(weight.register_hook(functools.partial(self._mask_grad, name)))
            self._modules[name] = module
        self._model = model

    def detach(self) -> None:
        """Remove the hooks and buffers (the weights stay as they are)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for module in self._modules.values():
            if MASK_BUFFER in module._buffers:
                del module._buffers[MASK_BUFFER]
        self._modules = {}
        self._model = None
        self.dense_grads = {}
        self._capture = False

    def _mask_grad(self, layer: str, grad: Tensor) -> Tensor:
        if self._capture and layer not in self.dense_grads:
            self.dense_grads[layer] = grad.detach().clone()
        buf = self._modules[layer]._buffers[MASK_BUFFER]
        assert buf is not None
        return grad * buf

    def capture_next(self) -> None:
        """Keep the dense gradient of each layer from the next backward pass in
        ``dense_grads`` (the first one only; later passes, such as a FLOP count, are ignored)."""
        self.dense_grads = {}
        self._capture = True

    def release(self) -> dict[str, Tensor]:
        """Stop capturing; returns and forgets the captured dense gradients."""
        grads, self.dense_grads, self._capture = self.dense_grads, {}, False
        return grads

    # ------------------------------------------------------------------ changing
    def replace(self, layer: str, new: Tensor, optimizer: torch.optim.Optimizer | None = None) -> tuple[int, int]:
        """Make ``new`` the mask of ``layer``; returns (connections removed, connections added).

        Removed and added connections are set to zero (new weights start at zero, RigL) and
        their optimizer slots are reset; connections active before and after are untouched.
        """
        old = self._masks[layer]
        if new.dtype != torch.bool or new.shape != old.shape:
            raise ValueError(
                f"the new mask of {layer!r} must be a bool tensor of shape {tuple(old.shape)}; "
                f"got {new.dtype} {tuple(new.shape)}"
            )
        new = new.to(old.device)
        changed = old ^ new
        n_kept = int(torch.count_nonzero(old & new))
        n_removed, n_added = int(torch.count_nonzero(old)) - n_kept, int(torch.count_nonzero(new)) - n_kept
        if layer in self._modules:
            weight = self.weight(layer)
            with torch.no_grad():
                weight.masked_fill_(changed, 0)
            reset_optimizer_slots(optimizer, weight, changed)
            buf = self._modules[layer]._buffers[MASK_BUFFER]
            assert buf is not None
            buf.copy_(new)  # in place: the cost counters see the change (version counter)
        self._masks[layer] = new.clone()
        return n_removed, n_added

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """``{"masks": {layer: bool tensor (cpu)}}`` for a checkpoint's ``state.pt``."""
        return {"masks": {k: v.detach().cpu().clone() for k, v in self._masks.items()}}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> WeightMasks:
        masks = state.get("masks")
        if not isinstance(masks, Mapping):
            raise ValueError(f"a WeightMasks state holds {{'masks': {{layer: bool tensor}}}}; got keys {sorted(state)}")
        return cls(dict(masks))

    def digest(self) -> str:
        """A short hash of every mask (layer names and bits), to compare masks across runs."""
        import hashlib

        h = hashlib.sha256()
        for name in sorted(self._masks):
            h.update(name.encode())
            h.update(self._masks[name].detach().cpu().numpy().tobytes())
        return h.hexdigest()[:16]
