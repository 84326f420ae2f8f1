"""Unit masks: switch hidden units of a growray model on and off without changing its shape.

A mask is one 0/1 entry per unit of a width site. Attached to a model it multiplies the
site's post-activations, h = phi(z) * m (ALGORITHMS.md §7), through a forward hook on the
site's activation module; the masks are tensors owned by a :class:`UnitMasks` object, not
parameters or buffers of the model, so the model, its spec and its checkpoints stay as
they are.

Exactness. With h_j = 0 a masked unit's fan-out columns receive exactly zero gradient
(dL/dW_out[:, j] = delta h_j), and so do its fan-in, bias and BatchNorm entries (the
gradient flowing back through h_j is multiplied by m_j = 0). Gradients alone do not keep
the weights still, though: SGD momentum carried over from before the unit was masked,
and weight decay, still move them. :meth:`UnitMasks.snapshot_inactive` records the masked
slices and :meth:`UnitMasks.restore_inactive` (called after every optimizer step by the
plasticity hook) writes them back, so a masked unit's parameters never change while it is
masked. Its output is exactly zero either way, so the network function never depends on
them. BatchNorm running statistics of masked units still follow the data; they do not
reach the output.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from growray.cost.masked import register_mask_provider, unregister_mask_provider
from growray.models.sites import GrowableModel, as_module

__all__ = ["UnitMasks", "UnitSlice", "count_weights", "raw_activations", "site_slices"]


@dataclass(frozen=True)
class UnitSlice:
    """The entries of one tensor that belong to the units of a site.

    Attributes:
        name: where it lives (``producer.weight``, ``norm.bias``, ``consumer.weight``).
        tensor: the parameter.
        dim: the unit dimension (0 for the producer and norm, 1 for the consumer).
        block: consecutive entries per unit along ``dim`` (H*W for a conv site read by a
            Linear through a flatten, else 1).
    """

    name: str
    tensor: Tensor
    dim: int
    block: int = 1

    def index(self, units: Tensor) -> Tensor:
        """Positions along ``dim`` of ``units`` (unit j owns ``[j*block, (j+1)*block)``)."""
        units = units.to(self.tensor.device).long()
        if self.block == 1:
            return units
        offsets = torch.arange(self.block, device=units.device)
        return (units[:, None] * self.block + offsets).flatten()

    def get(self, units: Tensor) -> Tensor:
        return self.tensor.detach().index_select(self.dim, self.index(units)).clone()

    @torch.no_grad()
    def set_(self, units: Tensor, values: Tensor) -> None:
        self.tensor.index_copy_(self.dim, self.index(units), values.to(self.tensor.device, self.tensor.dtype))


def site_slices(model: GrowableModel, site: str) -> list[UnitSlice]:
    """Every parameter slice owned by the units of ``site``: producer rows and bias, BatchNorm
    weight and bias, consumer columns (the consumer's bias belongs to the next layer)."""
    mods = model.site_modules(site)
    out = [UnitSlice("producer.weight", mods.producer.weight, 0)]
    if mods.producer.bias is not None:
        out.append(UnitSlice("producer.bias", mods.producer.bias, 0))
    if mods.norm is not None:
        for k, t in (("weight", mods.norm.weight), ("bias", mods.norm.bias)):
            if t is not None:  # None when the BatchNorm is not affine
                out.append(UnitSlice(f"norm.{k}", t, 0))
    out.append(UnitSlice("consumer.weight", mods.consumer.weight, 1, mods.spatial))
    return out


def _act_module(model: GrowableModel, site: str) -> nn.Module:
    mods = model.site_modules(site)
    return mods.act if mods.act is not None else (mods.norm if mods.norm is not None else mods.producer)


def count_weights(model: GrowableModel, counts: Mapping[str, int] | None = None) -> int:
    """Parameters of the producers, norms and consumers of ``model``'s sites when site ``s``
    keeps ``counts[s]`` units (missing sites and ``counts=None``: all units).

    A layer that is the consumer of one site and the producer of the next counts
    active-outputs x active-inputs weights; biases and BatchNorm entries count per active
    output. This is the "weight budget" currency of the plasticity protocol.
    """
    counts = dict(counts or {})
    layers: dict[int, dict] = {}
    for site in model.sites():
        mods = model.site_modules(site)
        width = mods.producer.weight.shape[0]
        n = int(counts.get(site, width))
        spatial = mods.spatial
        layers.setdefault(id(mods.producer), {"m": mods.producer})["out"] = n
        layers.setdefault(id(mods.consumer), {"m": mods.consumer})["in"] = n * spatial
        if mods.norm is not None:
            layers.setdefault(id(mods.norm), {"m": mods.norm})["norm"] = n
    total = 0
    for entry in layers.values():
        m = entry["m"]
        if "norm" in entry:
            total += entry["norm"] * sum(getattr(m, k) is not None for k in ("weight", "bias"))
            continue
        w = m.weight
        n_out = entry.get("out", w.shape[0])
        n_in = entry.get("in", w.shape[1])
        total += n_out * n_in * math.prod(w.shape[2:])
        if getattr(m, "bias", None) is not None:
            total += n_out
    return total


class UnitMasks:
    """0/1 masks over the units of some width sites of a model.

    Args:
        masks: ``{site: 1-D tensor of 0/1 (or bools)}``, one entry per unit of the site.

    Raises:
        ValueError: a mask is not 1-D or holds values other than 0 and 1.
    """

    def __init__(self, masks: Mapping[str, Tensor]):
        self._masks: dict[str, Tensor] = {}
        for site, m in masks.items():
            m = torch.as_tensor(m).detach()
            if m.dim() != 1 or m.numel() == 0:
                raise ValueError(f"mask of site {site!r} must be a non-empty 1-D tensor; got shape {tuple(m.shape)}")
            if not bool(((m == 0) | (m == 1)).all()):
                raise ValueError(
                    f"mask of site {site!r} must hold only 0 and 1; got values {sorted(set(m.tolist()))[:5]}"
                )
            self._masks[site] = m.float().clone()
        self._model: GrowableModel | None = None
        self._handles: list[RemovableHandle] = []
        self._held: dict[str, list[tuple[UnitSlice, Tensor, Tensor]]] = {}
        self._raw: dict[str, Tensor] | None = None
        self._weight_cache: tuple[tuple[object, ...], list[tuple[nn.Module, Tensor]]] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def dense(cls, model: GrowableModel, sites: list[str] | None = None) -> UnitMasks:
        """Every unit of ``sites`` (default: all sites of ``model``) active."""
        widths = model.widths()
        return cls({s: torch.ones(widths[s]) for s in _check_sites(model, sites)})

    @classmethod
    def random(
        cls, model: GrowableModel, counts: Mapping[str, int], generator: torch.Generator | None = None
    ) -> UnitMasks:
        """``counts[site]`` units of each site active, drawn uniformly (torch's global RNG by default)."""
        widths = model.widths()
        masks = {}
        for site, n in counts.items():
            w = widths[_check_sites(model, [site])[0]]
            if not 1 <= n <= w:
                raise ValueError(f"site {site!r} has {w} units; cannot make {n} of them active (1..{w})")
            m = torch.zeros(w)
            m[torch.randperm(w, generator=generator)[:n]] = 1.0
            masks[site] = m
        return cls(masks)

    # ------------------------------------------------------------------ reading
    @property
    def sites(self) -> list[str]:
        return list(self._masks)

    def __getitem__(self, site: str) -> Tensor:
        return self._masks[site]

    def active(self, site: str) -> Tensor:
        """Indices of the active units of ``site`` (ascending)."""
        return torch.nonzero(self._masks[site] > 0).flatten().cpu()

    def inactive(self, site: str) -> Tensor:
        return torch.nonzero(self._masks[site] == 0).flatten().cpu()

    def counts(self) -> dict[str, int]:
        """Active units per site."""
        return {s: int(m.sum().item()) for s, m in self._masks.items()}

    def active_weights(self, model: GrowableModel) -> int:
        """``count_weights`` of ``model`` with this mask's active counts."""
        return count_weights(model, self.counts())

    # ------------------------------------------------------------------ editing
    def set_units(self, site: str, units: Tensor, active: bool) -> None:
        """Switch ``units`` of ``site`` on or off (call ``snapshot_inactive`` afterwards)."""
        self._masks[site][torch.as_tensor(units, dtype=torch.long).to(self._masks[site].device)] = (
            1.0 if active else 0.0
        )

    # ------------------------------------------------------------------ model binding
    def attach(self, model: GrowableModel) -> UnitMasks:
        """Apply the masks to ``model``'s forward (one forward hook per site); returns self."""
        if self._model is not None:
            raise RuntimeError("these masks are already attached to a model; detach() first")
        widths = model.widths()
        for site, m in self._masks.items():
            if site not in widths:
                raise ValueError(f"mask site {site!r} is not a site of this model; its sites are {model.sites()}")
            if widths[site] != m.numel():
                raise ValueError(f"mask of site {site!r} has {m.numel()} entries; the site has {widths[site]} units")
        device = next(model.parameters()).device
        self._masks = {s: m.to(device) for s, m in self._masks.items()}
        self._model = model
        for site in self._masks:
            self._handles.append(_act_module(model, site).register_forward_hook(self._hook(site)))
        register_mask_provider(as_module(model), self.weight_masks)  # costs count active units only
        return self

    def detach(self) -> None:
        """Remove the forward hooks; the model computes densely again."""
        for h in self._handles:
            h.remove()
        if self._model is not None:
            unregister_mask_provider(as_module(self._model), self.weight_masks)
        self._handles, self._model, self._held = [], None, {}

    def weight_masks(self) -> list[tuple[nn.Module, Tensor]]:
        """``(module, 0/1 mask shaped like its weight)`` for every producer and consumer of the
        masked sites: a masked unit's fan-in row and fan-out columns are 0 (a layer between
        two masked sites gets the product). ``growray.cost`` counts these as weight masks
        (effective FLOPs and parameters) while the masks are attached. Cached until a mask
        or a width changes."""
        model = self._bound()
        key = (tuple((s, m._version, m.numel()) for s, m in self._masks.items()), tuple(model.widths().items()))
        if self._weight_cache is not None and self._weight_cache[0] == key:
            return self._weight_cache[1]
        owners = {id(mod.weight): mod for mod in as_module(model).modules() if isinstance(mod, (nn.Linear, nn.Conv2d))}
        out: dict[int, tuple[nn.Module, Tensor]] = {}
        for site, m in self._masks.items():
            for sl in site_slices(model, site):
                module = owners.get(id(sl.tensor))
                if module is None:
                    continue  # biases and BatchNorm entries carry no matmul FLOPs
                vec = m.to(sl.tensor.dtype).repeat_interleave(sl.block)
                shape = [1] * sl.tensor.dim()
                shape[sl.dim] = -1
                prev = out[id(module)][1] if id(module) in out else torch.ones_like(sl.tensor.detach())
                out[id(module)] = (module, prev * vec.reshape(shape))
        result = list(out.values())
        self._weight_cache = (key, result)
        return result

    @property
    def model(self) -> GrowableModel | None:
        return self._model

    def _hook(self, site: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor]:
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
            if self._raw is not None:
                self._raw[site] = out.detach()
            m = self._masks[site]
            return out * m.view(1, -1, *([1] * (out.dim() - 2)))

        return hook

    @contextlib.contextmanager
    def recording(self) -> Iterator[dict[str, Tensor]]:
        """Within the block every forward stores each site's *unmasked* post-activation
        (detached) in the yielded dict, keyed by site."""
        self._raw = {}
        try:
            yield self._raw
        finally:
            self._raw = None

    def _bound(self) -> GrowableModel:
        if self._model is None:
            raise RuntimeError("attach(model) first")
        return self._model

    def snapshot_inactive(self) -> None:
        """Remember the current values of every masked unit's slices (see the module docstring)."""
        model = self._bound()
        self._held = {}
        for site in self._masks:
            units = self.inactive(site)
            if len(units):
                self._held[site] = [(sl, units, sl.get(units)) for sl in site_slices(model, site)]

    @torch.no_grad()
    def restore_inactive(self) -> None:
        """Write the remembered values back into the masked units' slices."""
        for entries in self._held.values():
            for sl, units, values in entries:
                sl.set_(units, values)

    @torch.no_grad()
    def zero_inactive(self) -> None:
        """Set every masked unit's slices to zero (pruned units, as IMP does), and remember that."""
        model = self._bound()
        for site in self._masks:
            units = self.inactive(site)
            if len(units):
                for sl in site_slices(model, site):
                    sl.set_(units, torch.zeros_like(sl.get(units)))
        self.snapshot_inactive()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Tensor]:
        """``{site: mask}`` on the CPU (for a checkpoint's ``state.pt``)."""
        return {s: m.detach().cpu().clone() for s, m in self._masks.items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor]) -> UnitMasks:
        return cls(state)


def _check_sites(model: GrowableModel, sites: list[str] | None) -> list[str]:
    valid = model.sites()
    if sites is None:
        return list(valid)
    unknown = [s for s in sites if s not in valid]
    if unknown:
        raise ValueError(f"sites {unknown} are not sites of this model; its sites are {valid}")
    return list(sites)


def raw_activations(model: GrowableModel, masks: UnitMasks, x: Tensor) -> dict[str, Tensor]:
    """Each masked site's unmasked post-activations on ``x`` (upstream masks applied), measured
    in eval mode without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), masks.recording() as raw:
            model(x)
        return dict(raw)
    finally:
        model.train(was_training)
