"""SENN's view of one width site: which sites it scores, and their statistics on a batch
(see ``growray.growth.senn`` for the method and ``growray.growth.senn_score`` for the math)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.growth.capture import capture_sites
from growray.growth.senn_score import LayerStats, ReluSlope, layer_stats, with_bias_column
from growray.models.sites import GrowableModel, SiteModules

__all__ = ["SiteData", "measure_site", "measure_sites", "senn_supported"]


def senn_supported(model: GrowableModel, site: str) -> bool:
    """True for dense sites (Linear producer and Linear consumer, no flatten in between)."""
    mods = model.site_modules(site)
    return isinstance(mods.producer, nn.Linear) and isinstance(mods.consumer, nn.Linear) and mods.spatial == 1


@dataclass
class SiteData:
    """One site measured on one batch.

    Attributes:
        stats: the consumer's K-FAC statistics (``layer_stats``).
        inputs: ``(N, F[+1])`` producer inputs, with a bias column when the unit has an offset.
        consumer_inputs: ``(N, W + 1)`` consumer inputs with their bias column.
        activation: maps pre-activations ``(P, N)`` of width candidates to activations.
        depth_activation: the same for depth candidates (the site's activation, no norm).
        has_offset: whether ``inputs`` carries the bias column.
        slope: derivative of ``activation`` (elementwise), or None (autograd finds it).
        depth_slope: derivative of ``depth_activation``, or None.
    """

    stats: LayerStats
    inputs: Tensor
    consumer_inputs: Tensor
    activation: Callable[[Tensor], Tensor]
    depth_activation: Callable[[Tensor], Tensor]
    has_offset: bool
    slope: Callable[[Tensor], Tensor] | None = None
    depth_slope: Callable[[Tensor], Tensor] | None = None

    def add_input(self, a_p: Tensor, g: Tensor, g_hat: Tensor, tikhonov: float) -> None:
        """Rescore as if the unit with activations ``a_p`` ``(N,)`` had been added (zero fan-out:
        the gradients are unchanged, the consumer gains an input)."""
        a = torch.cat(
            [self.consumer_inputs[:, :-1], a_p[:, None].to(self.consumer_inputs), self.consumer_inputs[:, -1:]], 1
        )
        self.consumer_inputs = a
        self.stats = layer_stats(a, g, g_hat, self.stats.grad_sq, tikhonov)


def _site_activation(mods: SiteModules) -> Callable[[Tensor], Tensor]:
    act = mods.act
    if act is None or type(act) is nn.Identity:
        return lambda t: t
    if type(act) is nn.ReLU:  # the module's function without its call (or its in-place option)
        return torch.relu
    if type(act) is nn.Tanh:
        return torch.tanh
    return act


def _site_slope(mods: SiteModules) -> Callable[[Tensor], Tensor] | None:
    """The derivative of the site's activation in closed form, as autograd takes it (ReLU:
    0 at 0), for the common ones; None otherwise."""
    act = mods.act
    if act is None or type(act) is nn.Identity:
        return torch.ones_like
    if type(act) is nn.ReLU:
        return ReluSlope()
    if type(act) is nn.Tanh:
        return lambda z: 1 - torch.tanh(z) ** 2
    return None


def _width_functions(
    act: Callable[[Tensor], Tensor], slope: Callable[[Tensor], Tensor] | None, mods: SiteModules
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor] | None]:
    """A width candidate's activation ``act(z / sqrt(1 + bn_eps))`` and its slope (without a
    norm, ``act`` itself on float64: ``z * 1.0`` is ``z``)."""
    if mods.norm is None:
        return (lambda z: act(z.to(torch.float64))), (None if slope is None else (lambda z: slope(z.to(torch.float64))))
    scale = 1.0 / math.sqrt(1.0 + float(mods.norm.eps))

    def width_act(z: Tensor) -> Tensor:
        return act((z * scale).to(torch.float64))

    if isinstance(slope, ReluSlope):
        return width_act, ReluSlope(scale)
    width_slope = None if slope is None else (lambda z: slope((z * scale).to(torch.float64)) * scale)
    return width_act, width_slope


def measure_site(
    model: GrowableModel, site: str, batch: tuple[Tensor, Tensor], tikhonov: float = 0.1
) -> tuple[SiteData, Tensor, Tensor]:
    """Capture ``site`` on ``batch`` in eval mode and build its SENN statistics.

    Returns:
        ``(data, g, g_hat)``: the per-sample consumer gradients and their normalised version
        (kept for rescoring). The model is left unchanged.
    """
    return measure_sites(model, [site], batch, tikhonov)[site]


def measure_sites(
    model: GrowableModel, sites: list[str], batch: tuple[Tensor, Tensor], tikhonov: float = 0.1
) -> dict[str, tuple[SiteData, Tensor, Tensor]]:
    """``measure_site`` for several sites from one capture (``capture_sites``: one forward and
    one backward for all of them) and one forward for the logits."""
    if not sites:
        return {}
    x, y = batch
    was_training = model.training
    model.eval()
    try:
        caps = capture_sites(model, sites, x, y, with_grad=True)
        with torch.no_grad():
            logits = model(x)
    finally:
        model.train(was_training)
    n = x.shape[0]
    g_y = torch.softmax(logits.double(), dim=1) - F.one_hot(y, logits.shape[1]).double()
    g_y_norm = g_y.norm(dim=1)
    y_norm = g_y_norm.clamp_min(1e-12)[:, None]
    grad_sq = float((g_y_norm**2).mean())
    out = {}
    for site in sites:
        mods, cap = model.site_modules(site), caps[site]
        g = cap.gradients()[2].reshape(n, -1).double() * n  # per-sample gradients of each sample's own loss
        g_hat = g / y_norm
        consumer_inputs = cap.consumer_inputs.reshape(n, -1).double()
        if mods.consumer.bias is not None:
            consumer_inputs = with_bias_column(consumer_inputs)
        else:  # keep the "last column is the bias" layout; a zero column adds nothing
            consumer_inputs = torch.cat([consumer_inputs, torch.zeros(n, 1, dtype=torch.float64)], 1)
        stats = layer_stats(consumer_inputs, g, g_hat, grad_sq, tikhonov)
        has_offset = mods.producer.bias is not None or mods.norm is not None
        inputs = cap.inputs.reshape(n, -1).double()
        if has_offset:
            inputs = with_bias_column(inputs)
        act, slope = _site_activation(mods), _site_slope(mods)
        width_act, width_slope = _width_functions(act, slope, mods)
        out[site] = (SiteData(stats, inputs, consumer_inputs, width_act, act, has_offset, width_slope, slope), g, g_hat)
    return out
