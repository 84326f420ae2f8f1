"""The DARTS architecture step: first order, or second order (unrolled) with a finite-difference HVP.

Second order (Liu et al., 2019, eq. 7-8): the gradient of ``L_val(w', alpha)`` at the
one-step-unrolled weights ``w' = w - xi * (grad_w L_train(w, alpha) + mu * m + wd * w)``
(``m`` the weight optimizer's momentum buffer, as DARTS' code unrolls it) is

    grad_alpha L_val(w', alpha) - xi * [grad_alpha L_train(w+) - grad_alpha L_train(w-)] / (2 eps)

with ``w+- = w +- eps * grad_w' L_val(w', alpha)`` and ``eps = 0.01 / ||grad_w' L_val||``
(``hvp_eps``, DARTS' 0.01). The difference quotient is the Hessian-vector product only
where the training loss is smooth on that scale: ReLU/max-pool kinks crossed between
``w-`` and ``w+`` make it noisy (on the 2-channel float64 test net: relative error 7 with 0.01, 3e-8 with
1e-4), which DARTS accepts for cost; a smaller ``hvp_eps`` trades that for rounding error.
First order drops the unrolling (``xi = 0``). The weights are restored exactly afterwards
(their ``.grad`` is never touched); in second order so are all buffers (BatchNorm running
statistics), since the extra forwards run at weights the model never holds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from growray.checks import check_int, check_number

__all__ = ["DartsArchitect", "Supernet", "arch_gradient"]

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@runtime_checkable
class Supernet(Protocol):
    """What the architect needs of a model besides ``nn.Module``: its two parameter sets."""

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights (DARTS' alphas)."""
        ...

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every other parameter."""
        ...


def _grads(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``d loss / d params``; zeros for parameters the loss does not reach."""
    gs = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def _norm(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all ``tensors`` together, in float64 (zero for none)."""
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([(t.detach().double() ** 2).sum() for t in tensors]).sum().sqrt()


def _supernet(model: nn.Module) -> Supernet:
    if not isinstance(model, Supernet):
        raise TypeError(
            f"DartsArchitect needs a supernet with arch_parameters() and weight_parameters() "
            f"(e.g. darts_supernet); got {type(model).__name__}"
        )
    return model


def _arch_gradient(
    model: nn.Module,
    train_batch: Batch,
    val_batch: Batch,
    xi: float,
    order: int,
    loss_fn: LossFn,
    momentum: float,
    weight_decay: float,
    momentum_buffers: Sequence[torch.Tensor | None] | None,
    hvp_eps: float = 0.01,
) -> tuple[list[torch.Tensor], float]:
    net = _supernet(model)
    arch = list(net.arch_parameters())
    x_val, y_val = val_batch
    if order == 1:
        loss = loss_fn(model(x_val), y_val)
        return _grads(loss, arch), float(loss.detach())

    weights = [p for p in net.weight_parameters() if p.requires_grad]
    if momentum_buffers is not None and len(momentum_buffers) != len(weights):
        raise ValueError(
            f"momentum_buffers must have one entry (or None) per weight parameter ({len(weights)}); "
            f"got {len(momentum_buffers)}"
        )
    x_train, y_train = train_batch
    saved_w = [p.detach().clone() for p in weights]
    saved_buffers = [b.detach().clone() for b in model.buffers()]
    try:
        # w' = w - xi * (grad + momentum * buffer + wd * w)
        g_train = _grads(loss_fn(model(x_train), y_train), weights)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(weights, g_train)):
                step = g + weight_decay * p
                buf = momentum_buffers[i] if momentum_buffers is not None else None
                if buf is not None and momentum:
                    step = step + momentum * buf
                p.sub_(xi * step)
        loss = loss_fn(model(x_val), y_val)
        g_all = _grads(loss, arch + weights)
        d_alpha, d_w = g_all[: len(arch)], g_all[len(arch) :]
        norm = _norm(d_w)
        if xi == 0.0 or float(norm) == 0.0:
            return [g.detach() for g in d_alpha], float(loss.detach())
        eps = hvp_eps / float(norm)
        with torch.no_grad():
            for p, w0, v in zip(weights, saved_w, d_w):
                p.copy_(w0).add_(v, alpha=eps)
        g_plus = _grads(loss_fn(model(x_train), y_train), arch)
        with torch.no_grad():
            for p, w0, v in zip(weights, saved_w, d_w):
                p.copy_(w0).add_(v, alpha=-eps)
        g_minus = _grads(loss_fn(model(x_train), y_train), arch)
        out = [(da - xi * (gp - gm) / (2 * eps)).detach() for da, gp, gm in zip(d_alpha, g_plus, g_minus)]
        return out, float(loss.detach())
    finally:
        with torch.no_grad():
            for p, w0 in zip(weights, saved_w):
                p.copy_(w0)
            for b, b0 in zip(model.buffers(), saved_buffers):
                b.copy_(b0)


def arch_gradient(
    model: nn.Module,
    train_batch: Batch,
    val_batch: Batch,
    xi: float,
    order: int,
    *,
    loss_fn: LossFn = F.cross_entropy,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    momentum_buffers: Sequence[torch.Tensor | None] | None = None,
    hvp_eps: float = 0.01,
) -> list[torch.Tensor]:
    """The DARTS architecture gradient, one tensor per ``model.arch_parameters()``.

    Args:
        model: a supernet with ``arch_parameters()`` and ``weight_parameters()``.
        train_batch: ``(inputs, targets)`` from the weight half of the data.
        val_batch: ``(inputs, targets)`` from the architecture half.
        xi: the unrolling step (DARTS: the weight optimizer's current lr); unused in order 1.
        order: 1 (``grad_alpha L_val(w)``) or 2 (unrolled, finite-difference HVP).
        loss_fn: ``loss_fn(logits, targets)``.
        momentum: momentum factor of the weight optimizer (order 2).
        weight_decay: its L2 weight decay (order 2).
        momentum_buffers: its momentum buffer per ``weight_parameters()`` entry that
            requires grad (None entries: no buffer yet).
        hvp_eps: finite-difference step of the Hessian-vector product, relative to
            ``||grad_w' L_val||`` (DARTS: 0.01).
    """
    hvp_eps = check_number("hvp_eps", hvp_eps, low=0.0, low_open=True)
    grads, _ = _arch_gradient(
        model,
        train_batch,
        val_batch,
        float(xi),
        check_int("order", order, minimum=1, maximum=2),
        loss_fn,
        momentum,
        weight_decay,
        momentum_buffers,
        hvp_eps,
    )
    return grads


class DartsArchitect:
    """Updates a supernet's architecture weights with Adam on the DARTS gradient.

    ``step(train_batch, val_batch, w_optimizer)`` does one update. For ``order=2`` the
    unrolling reads ``xi`` (lr), momentum and weight decay from the weight optimizer:
    exactly for ``torch.optim.SGD`` (momentum buffers from its state; all parameter groups
    holding model weights must agree on lr, momentum and weight decay); for any other
    optimizer (e.g. Adam) the unrolled step degrades to ``w - xi * grad`` with ``xi`` its lr.
    Nesterov SGD is unrolled as plain momentum.

    Args:
        model: a supernet with ``arch_parameters()`` and ``weight_parameters()``.
        lr: Adam learning rate for the alphas (DARTS: 3e-4).
        betas: Adam betas (DARTS: (0.5, 0.999)).
        weight_decay: Adam (L2) weight decay of the alphas (DARTS: 1e-3).
        order: 1 or 2.
        grad_clip: clip the alphas' gradient norm to this value; None: no clipping.
        loss_fn: ``loss_fn(logits, targets)``.
        hvp_eps: finite-difference step of the second-order term (DARTS: 0.01), see the
            module docstring.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 1e-3,
        order: int = 1,
        grad_clip: float | None = None,
        loss_fn: LossFn = F.cross_entropy,
        hvp_eps: float = 0.01,
    ):
        self._supernet = _supernet(model)
        lr = check_number("lr", lr, low=0.0, low_open=True)
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        beta1, beta2 = (check_number(f"betas[{i}]", b, low=0.0, high=1.0, high_open=True) for i, b in enumerate(betas))
        weight_decay = check_number("weight_decay", weight_decay, low=0.0)
        self.grad_clip = check_number("grad_clip", grad_clip, low=0.0, low_open=True, optional=True)
        self.hvp_eps = check_number("hvp_eps", hvp_eps, low=0.0, low_open=True)
        self.order = check_int("order", order, minimum=1, maximum=2)
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = torch.optim.Adam(
            self._supernet.arch_parameters(), lr=lr, betas=(beta1, beta2), weight_decay=weight_decay
        )

    def _unroll_settings(
        self, w_optimizer: torch.optim.Optimizer
    ) -> tuple[float, float, float, list[torch.Tensor | None] | None]:
        weights = [p for p in self._supernet.weight_parameters() if p.requires_grad]
        if not isinstance(w_optimizer, torch.optim.SGD):
            return float(w_optimizer.param_groups[0]["lr"]), 0.0, 0.0, None
        ids = {id(p) for p in weights}
        groups = [g for g in w_optimizer.param_groups if any(id(p) in ids for p in g["params"])]
        if not groups:
            raise ValueError("the weight optimizer holds none of the model's weight_parameters()")
        settings = {(float(g["lr"]), float(g.get("momentum", 0.0)), float(g.get("weight_decay", 0.0))) for g in groups}
        if len(settings) > 1:
            raise ValueError(
                f"second-order DARTS unrolls one SGD step: the weight optimizer's parameter groups must share "
                f"lr, momentum and weight_decay; got {sorted(settings)}"
            )
        xi, momentum, wd = settings.pop()
        buffers = [w_optimizer.state.get(p, {}).get("momentum_buffer") for p in weights] if momentum else None
        return xi, momentum, wd, buffers

    def step(self, train_batch: Batch, val_batch: Batch, w_optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One architecture update; returns ``{"nas/arch_loss", "nas/arch_grad_norm"}``.

        ``nas/arch_loss`` is the validation loss the gradient was taken at (at ``w`` in
        first order, at the unrolled ``w'`` in second order); the grad norm is before clipping.
        """
        if self.order == 2:
            xi, momentum, wd, buffers = self._unroll_settings(w_optimizer)
        else:
            xi, momentum, wd, buffers = 0.0, 0.0, 0.0, None
        grads, loss = _arch_gradient(
            self.model, train_batch, val_batch, xi, self.order, self.loss_fn, momentum, wd, buffers, self.hvp_eps
        )
        arch = list(self._supernet.arch_parameters())
        for p, g in zip(arch, grads):
            p.grad = g.to(p.dtype)
        if self.grad_clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(arch, self.grad_clip))
        else:
            norm = float(_norm(grads))
        self.optimizer.step()
        for p in arch:
            p.grad = None  # a later weight-loss backward must not see a stale architecture gradient
        return {"nas/arch_loss": loss, "nas/arch_grad_norm": norm}

    def state_dict(self) -> dict[str, Any]:
        """The Adam state of the alphas (tensors, copied: torch's own state_dict aliases them) and the order."""
        return {"optimizer": copy.deepcopy(self.optimizer.state_dict()), "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("order", self.order) != self.order:
            raise ValueError(f"architect state is for order {state['order']}; this architect has order {self.order}")
        self.optimizer.load_state_dict(state["optimizer"])
