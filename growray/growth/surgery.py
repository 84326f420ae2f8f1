"""Model surgery: widen a site in place and report which parameters were replaced."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from growray.growth.initializers import WidthProposal
from growray.models.sites import GrowableModel

__all__ = ["ParamChange", "widen"]

# Which attribute holds a layer's output / input width. Linear weights are (out, in), Conv2d
# weights (out, in, kh, kw): units on dim 0 for the producer and dim 1 for the consumer.
_WIDTH_ATTRS: dict[type, tuple[str, str]] = {
    nn.Linear: ("out_features", "in_features"),
    nn.Conv2d: ("out_channels", "in_channels"),
}
_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class ParamChange:
    """``new`` = cat(``old`` (or its rescaled values), new slices) along ``dim``;
    the first ``n_old`` slices along ``dim`` correspond to ``old``."""

    old: nn.Parameter
    new: nn.Parameter
    dim: int
    n_old: int


def _width_attrs(module: nn.Module) -> tuple[str, str]:
    for cls, attrs in _WIDTH_ATTRS.items():
        if isinstance(module, cls):
            if getattr(module, "groups", 1) != 1:
                raise TypeError(
                    f"cannot widen a grouped {type(module).__name__} (groups={module.groups}); only groups=1"
                )
            return attrs
    supported = ", ".join(c.__name__ for c in _WIDTH_ATTRS)
    raise TypeError(f"cannot widen a {type(module).__name__}; supported layers: {supported}")


def _check_shape(what: str, got: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(got.shape) != tuple(expected):
        raise ValueError(f"proposal {what} has shape {tuple(got.shape)}; expected {tuple(expected)}")


def _grow_param(module: nn.Module, name: str, head: Tensor, tail: Tensor, dim: int) -> ParamChange:
    old = getattr(module, name)
    data = torch.cat([head.to(old.device, old.dtype), tail.to(old.device, old.dtype)], dim=dim)
    new = nn.Parameter(data.detach().clone(), requires_grad=old.requires_grad)
    setattr(module, name, new)
    return ParamChange(old=old, new=new, dim=dim, n_old=old.shape[dim])


def widen(model: GrowableModel, site: str, proposal: WidthProposal) -> list[ParamChange]:
    """Append ``proposal.n_new`` units to ``site`` of ``model``, in place.

    Replaces the producer's weight and bias, the norm's weight, bias and running
    statistics (``num_batches_tracked`` is left alone), and the consumer's weight (its bias
    is unchanged), and updates the layers' width attributes. Returns the replaced
    parameters so ``migrate_optimizer`` can move the optimizer state in one place.

    Supported pairs: Linear -> Linear, Conv2d -> Conv2d, and Conv2d -> Linear through a
    channel-major flatten (``site_modules(site).spatial`` = H*W > 1). In the last case each
    unit owns ``spatial`` consecutive consumer columns, so the new units' blocks are
    appended after the incumbents' and the consumer's ``ParamChange`` has
    ``n_old = width * spatial`` (dim 1).
    """
    mods = model.site_modules(site)
    producer, norm, consumer = mods.producer, mods.norm, mods.consumer
    spatial = mods.spatial
    out_attr, _ = _width_attrs(producer)
    _, in_attr = _width_attrs(consumer)
    n = proposal.n_new
    if n < 1:
        raise ValueError(f"a proposal must add at least one unit; got fan_in of shape {tuple(proposal.fan_in.shape)}")
    pw, cw = producer.weight, consumer.weight
    width = pw.shape[0]
    if spatial < 1 or (spatial > 1 and not isinstance(consumer, nn.Linear)):
        raise ValueError(
            f"site {site!r}: spatial={spatial} must be 1, or > 1 only for a Linear consumer after a flatten"
        )
    if cw.shape[1] != width * spatial:
        raise ValueError(
            f"site {site!r}: consumer reads {cw.shape[1]} inputs but the producer makes {width} units"
            + (f" x {spatial} positions" if spatial > 1 else "")
        )
    _check_shape("fan_in", proposal.fan_in, (n, *pw.shape[1:]))
    _check_shape("fan_out", proposal.fan_out, (cw.shape[0], n * spatial, *cw.shape[2:]))
    if proposal.incumbent_fan_out is not None:
        _check_shape("incumbent_fan_out", proposal.incumbent_fan_out, tuple(cw.shape))
    if (producer.bias is None) != (proposal.bias is None):
        raise ValueError(
            f"site {site!r}: the producer {'has' if producer.bias is not None else 'has no'} bias, "
            f"the proposal {'has' if proposal.bias is not None else 'has no'} bias"
        )
    if proposal.bias is not None:
        _check_shape("bias", proposal.bias, (n,))
    norm_keys = [k for k in _NORM_KEYS if norm is not None and getattr(norm, k, None) is not None]
    new_norm = proposal.norm or {}
    if norm_keys:
        missing = [k for k in norm_keys if k not in new_norm]
        if missing:
            raise ValueError(f"site {site!r} has a {type(norm).__name__}; the proposal lacks norm entries {missing}")
        for k in norm_keys:
            _check_shape(f"norm[{k!r}]", new_norm[k], (n,))

    changes: list[ParamChange] = []
    with torch.no_grad():
        changes.append(_grow_param(producer, "weight", pw.detach(), proposal.fan_in, 0))
        if producer.bias is not None and proposal.bias is not None:  # both or neither (checked above)
            changes.append(_grow_param(producer, "bias", producer.bias.detach(), proposal.bias, 0))
        setattr(producer, out_attr, width + n)
        if norm is not None:
            for k in norm_keys:
                cur = getattr(norm, k)
                if isinstance(cur, nn.Parameter):
                    changes.append(_grow_param(norm, k, cur.detach(), new_norm[k], 0))
                else:  # buffer
                    setattr(norm, k, torch.cat([cur, new_norm[k].to(cur.device, cur.dtype)]))
            norm.num_features = width + n
        head = cw.detach() if proposal.incumbent_fan_out is None else proposal.incumbent_fan_out
        changes.append(_grow_param(consumer, "weight", head, proposal.fan_out, 1))
        setattr(consumer, in_attr, (width + n) * spatial)
    return changes
