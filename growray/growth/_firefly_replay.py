"""Firefly's eval-mode replay: one recorded forward and backward of the model at a site, then
the layers before the site replayed as constants (``growray.growth.firefly``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.models.sites import GrowableModel, Norm, SiteModules, as_module

_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _unit_rows(t: Tensor) -> Tensor:
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _param_name(model: GrowableModel, param: Tensor) -> str:
    return next(name for name, p in model.named_parameters() if p is param)


def _layer(module: nn.Module, inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``module`` (Linear or Conv2d) applied to ``inputs`` with another weight and bias."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(inputs, weight, bias)
    return F.linear(inputs, weight, bias)


def _unit_slice(t: Tensor, start: int, end: int, spatial: int) -> Tensor:
    """Units ``[start, end)`` of a consumer input (channels of a conv input; ``spatial``
    consecutive columns per unit of a Linear input)."""
    return t[:, start:end] if t.dim() > 2 else t[:, start * spatial : end * spatial]


@contextmanager
def _forward_replaced(module: nn.Module, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, calling ``module`` runs ``fn`` on its input instead (hooks still run)."""
    saved = module.__dict__.get("forward")
    module.forward = fn  # an instance attribute shadows the method
    try:
        yield
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


class _Stop(Exception):
    """Raised by a replaced consumer to end a forward once it has what it needs."""


@dataclass
class _Recording:
    """One eval-mode forward and backward of the model at a site (all detached).

    ``inputs``, ``pre``, ``consumer_inputs``: the producer's input, its output and the
    consumer's input; ``pre_grad``, ``out_grad``: dL/d(pre) and dL/d(consumer output);
    ``before_producer``, ``before_consumer``: the outermost modules whose single call ended
    before the producer's (the consumer's) began, with their outputs (empty when some module
    runs more than once per forward, or one of them returns something other than a tensor).
    """

    inputs: Tensor
    pre: Tensor
    consumer_inputs: Tensor
    pre_grad: Tensor
    out_grad: Tensor
    before_producer: list[tuple[nn.Module, Tensor]]
    before_consumer: list[tuple[nn.Module, Tensor]]


def _record(model: GrowableModel, mods: SiteModules, x: Tensor, y: Tensor) -> _Recording:
    """Run ``model`` (in eval mode) on ``x`` once and record ``_Recording``. Gradients stop at
    the producer's output: no parameter ``.grad`` is touched, no layer before it is
    differentiated."""
    producer, consumer = mods.producer, mods.consumer
    root = as_module(model)
    by_name = dict(root.named_modules())
    parent = {m: by_name[name.rpartition(".")[0]] for name, m in by_name.items() if name}
    clock = itertools.count()
    start: dict[nn.Module, int] = {}
    end: dict[nn.Module, int] = {}
    outs: dict[nn.Module, object] = {}
    calls: dict[nn.Module, int] = {}
    seen: dict[str, Tensor] = {}

    def pre_hook(m: nn.Module, args: tuple[object, ...]) -> None:
        calls[m] = calls.get(m, 0) + 1
        start.setdefault(m, next(clock))

    def post_hook(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor | None:
        end[m] = next(clock)
        outs[m] = out
        if m is producer:  # a fresh leaf: gradients stop here
            seen["inputs"], seen["pre"] = args[0], out.detach().requires_grad_(True)
            return seen["pre"]
        if m is consumer:
            seen["consumer_inputs"], seen["z"] = args[0], out
        return None

    handles = []
    try:
        for m in parent:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook))
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y)
            pre_grad, out_grad = torch.autograd.grad(loss, [seen["pre"], seen["z"]])
    finally:
        for h in handles:
            h.remove()

    def before(boundary: nn.Module) -> list[tuple[nn.Module, Tensor]]:
        if any(c != 1 for c in calls.values()):
            return []
        done = {m for m, t in end.items() if t < start[boundary]}
        kept = []
        for m in done:
            if parent[m] in done:
                continue
            out = outs[m]
            if not isinstance(out, Tensor):
                return []
            kept.append((m, out.detach()))
        return kept

    return _Recording(
        inputs=seen["inputs"].detach(),
        pre=seen["pre"].detach(),
        consumer_inputs=seen["consumer_inputs"].detach(),
        pre_grad=pre_grad,
        out_grad=out_grad,
        before_producer=before(producer),
        before_consumer=before(consumer),
    )


def _cached(stack: ExitStack, modules: list[tuple[nn.Module, Tensor]]) -> None:
    """Within ``stack``, each module returns its recorded output instead of running."""
    for m, out in modules:
        stack.enter_context(_forward_replaced(m, lambda *_a, _out=out, **_k: _out))


def _norm_fn(norm: Norm, entries: dict[str, Tensor]) -> Callable[[Tensor], Tensor]:
    """``norm``'s forward with other per-unit entries (as a widened copy's norm computes its new
    units: BatchNorm is per channel)."""
    use_batch = norm.training or (norm.running_mean is None and norm.running_var is None)

    def fn(t: Tensor) -> Tensor:
        return F.batch_norm(
            t,
            entries.get("running_mean"),
            entries.get("running_var"),
            entries.get("weight"),
            entries.get("bias"),
            use_batch,
            0.0,
            norm.eps,
        )

    return fn


class _Adam:
    """``torch.optim.Adam`` (defaults, single-tensor CPU algorithm) on one flat tensor: the same
    elementwise updates as Adam on its pieces, without the optimizer's per-call overhead."""

    def __init__(self, param: Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.param, self.lr, self.betas, self.eps = param, lr, betas, eps
        self.exp_avg = torch.zeros_like(param)
        self.exp_avg_sq = torch.zeros_like(param)
        self.step_count = 0.0

    @torch.no_grad()
    def step(self, grad: Tensor) -> None:
        beta1, beta2 = self.betas
        self.step_count += 1.0
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = self.lr / (1 - beta1**self.step_count)
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2**self.step_count) ** 0.5).add_(self.eps)
        self.param.addcdiv_(self.exp_avg, denom, value=-step_size)
