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

__all__ = ["SiteCapture", "capture_site", "units_matrix"]


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
    mods = model.site_modules(site)
    if with_grad and y is None:
        raise ValueError("capture_site(with_grad=True) needs the labels y")
    seen: dict[str, Tensor] = {}

    def keep(name: str, leaf: bool = False) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], Tensor | None]:
        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
            seen[f"{name}_in"] = args[0]
            if leaf:  # a fresh leaf: gradients stop here and never reach parameters
                out = out.detach().requires_grad_(True)
                seen[name] = out
                return out
            seen[name] = out
            return None

        return hook

    act = mods.act if mods.act is not None else (mods.norm if mods.norm is not None else mods.producer)
    handles: list[RemovableHandle] = []
    # In train mode BatchNorm would update its running statistics: a capture must leave the model as it was.
    buffers = {k: v.clone() for k, v in model.named_buffers()} if model.training else {}
    try:
        handles.append(mods.producer.register_forward_hook(keep("producer", leaf=with_grad)))
        handles.append(act.register_forward_hook(keep("act")))
        handles.append(mods.consumer.register_forward_hook(keep("consumer")))
        if not with_grad or y is None:  # y is None only without with_grad (checked above)
            with torch.no_grad():
                model(x)
            return SiteCapture(
                inputs=seen["producer_in"], pre=seen["producer"], post=seen["act"], consumer_inputs=seen["consumer_in"]
            )
        with torch.enable_grad():
            logits = model(x.detach())
            loss = F.cross_entropy(logits, y)
            pre_grad, post_grad, out_grad = torch.autograd.grad(loss, [seen["producer"], seen["act"], seen["consumer"]])
        return SiteCapture(
            inputs=seen["producer_in"].detach(),
            pre=seen["producer"].detach(),
            post=seen["act"].detach(),
            consumer_inputs=seen["consumer_in"].detach(),
            out_grad=out_grad.detach(),
            post_grad=post_grad.detach(),
            pre_grad=pre_grad.detach(),
            loss=float(loss.item()),
        )
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
