"""Capture what happens at a width site on a batch: the producer's input, the site's
pre-activations and post-activations, and (optionally) the loss gradient at the consumer's
output. Data-driven triggers, initializers and the newborn diagnostics all use this one
mechanism, through temporary forward hooks on the site's modules (model-agnostic).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from growray.models.sites import GrowableModel

__all__ = ["SiteCapture", "capture_site", "capture_sites", "units_matrix"]


@dataclass
class SiteCapture:
    """Tensors at one site for one batch (detached).

    Attributes:
        inputs: the producer's input, ``(N, F_in)`` or ``(N, C_in, H, W)`` (h_{l-1}).
        pre: the producer's output before norm and activation, ``(N, W)`` or ``(N, W, H, W')``.
        post: the activation's output (the units' values), same shape as ``pre``.
        consumer_inputs: the consumer's input (post-activation, pooled/flattened as the model does).
        out_grad: dL/d(consumer output), the gradient at the next layer's pre-activation
            (delta_{l+1}); only with ``with_grad``.
        post_grad: dL/d(post), the gradient reaching the units; only with ``with_grad``.
        pre_grad: dL/d(pre), the gradient at the units' pre-activations (what the structural-
            plasticity study calls grad(j)); only with ``with_grad``.
        loss: the batch loss (mean cross-entropy); only with ``with_grad``.
    """

    inputs: Tensor
    pre: Tensor
    post: Tensor
    consumer_inputs: Tensor
    out_grad: Tensor | None = None
    post_grad: Tensor | None = None
    pre_grad: Tensor | None = None
    loss: float | None = None

    def gradients(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(pre_grad, post_grad, out_grad)``.

        Raises:
            ValueError: the capture was taken without ``with_grad``.
        """
        if self.pre_grad is None or self.post_grad is None or self.out_grad is None:
            raise ValueError("this site capture has no gradients; capture it with capture_site(..., with_grad=True)")
        return self.pre_grad, self.post_grad, self.out_grad


def capture_site(
    model: GrowableModel,
    site: str,
    x: Tensor,
    y: Tensor | None = None,
    *,
    with_grad: bool = False,
) -> SiteCapture:
    """Run ``model`` on ``x`` (in its current train/eval mode) and capture ``site``.

    The model is left exactly as it was (BatchNorm running statistics are restored).

    With ``with_grad`` (needs ``y``) the cross-entropy loss is differentiated with respect to
    the captured tensors only (``torch.autograd.grad``): parameter ``.grad`` fields are
    left exactly as they were. Layers before the site are not differentiated at all.
    """
    return capture_sites(model, [site], x, y, with_grad=with_grad)[site]


def capture_sites(
    model: GrowableModel,
    sites: list[str],
    x: Tensor,
    y: Tensor | None = None,
    *,
    with_grad: bool = False,
) -> dict[str, SiteCapture]:
    """``capture_site`` for several sites from one forward (and one backward with
    ``with_grad``): the same tensors as one capture per site, at the cost of one.

    With ``with_grad`` gradients stop at the first listed site's producer output in forward
    order (layers before it are not differentiated); parameter ``.grad`` fields and BatchNorm
    statistics are left as they were.
    """
    if with_grad and y is None:
        raise ValueError("capture_site(with_grad=True) needs the labels y")
    seen: dict[str, dict[str, Tensor]] = {site: {} for site in sites}
    order: list[str] = []  # sites in the order their producers run

    def keep(
        site: str, name: str, producer: bool = False
    ) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor | None]:
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
            store = seen[site]
            store[f"{name}_in"] = args[0]
            if producer:
                order.append(site)
                # the first producer's output becomes a fresh leaf: gradients stop there and
                # never reach parameters (or layers) before it
                if with_grad and len(order) == 1:
                    out = out.detach().requires_grad_(True)
                    store[name] = out
                    return out
            store[name] = out
            return None

        return hook

    handles: list[RemovableHandle] = []
    # In train mode BatchNorm would update its running statistics: a capture must leave the model as it was.
    buffers = {k: v.clone() for k, v in model.named_buffers()} if model.training else {}
    try:
        for site in sites:
            mods = model.site_modules(site)
            act = mods.act if mods.act is not None else (mods.norm if mods.norm is not None else mods.producer)
            handles.append(mods.producer.register_forward_hook(keep(site, "producer", producer=True)))
            handles.append(act.register_forward_hook(keep(site, "act")))
            handles.append(mods.consumer.register_forward_hook(keep(site, "consumer")))
        if not with_grad or y is None:  # y is None only without with_grad (checked above)
            with torch.no_grad():
                model(x)
            return {
                site: SiteCapture(
                    inputs=t["producer_in"], pre=t["producer"], post=t["act"], consumer_inputs=t["consumer_in"]
                )
                for site, t in seen.items()
            }
        with torch.enable_grad():
            logits = model(x.detach())
            loss = F.cross_entropy(logits, y)
            wanted = [seen[site][k] for site in sites for k in ("producer", "act", "consumer")]
            grads = torch.autograd.grad(loss, wanted)
        out = {}
        for i, site in enumerate(sites):
            t = seen[site]
            pre_grad, post_grad, out_grad = grads[3 * i : 3 * i + 3]
            out[site] = SiteCapture(
                inputs=t["producer_in"].detach(),
                pre=t["producer"].detach(),
                post=t["act"].detach(),
                consumer_inputs=t["consumer_in"].detach(),
                out_grad=out_grad.detach(),
                post_grad=post_grad.detach(),
                pre_grad=pre_grad.detach(),
                loss=float(loss.item()),
            )
        return out
    finally:
        for h in handles:
            h.remove()
        if buffers:
            with torch.no_grad():
                for k, v in model.named_buffers():
                    v.copy_(buffers[k])


def units_matrix(t: Tensor) -> Tensor:
    """Units x samples: ``(N, W)`` -> ``(W, N)``; conv ``(N, C, H, W')`` -> ``(C, N*H*W')``
    (positions count as samples, as NORTH* does for conv layers)."""
    if t.dim() == 2:
        return t.t()
    return t.transpose(0, 1).reshape(t.shape[1], -1)
