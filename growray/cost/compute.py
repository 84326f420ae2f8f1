"""Training compute: FLOPs of a forward + backward pass, accumulated as the network grows."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_int
from growray.cost.masked import mask_signature, masked_modules, masked_saving
from growray.cost.static import check_input_shape, flop_counter, sample_input

__all__ = ["TrainingCompute", "architecture_key", "training_flops_per_sample"]

_N_PROBE = 2  # samples in the counted batch; FLOPs of matmuls/convs are linear in it


def _scalar(out: Any) -> torch.Tensor:
    """Sum of every floating tensor in the model's output (a tensor, or a tuple/list/dict of them)."""
    if isinstance(out, torch.Tensor):
        return out.sum()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        parts = [t.sum() for t in out if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if parts:
            return torch.stack(parts).sum()
    raise TypeError(
        f"training_flops_per_sample needs a model returning a tensor (or a tuple/list/dict of tensors); "
        f"got {type(out).__name__}"
    )


def training_flops_per_sample(
    model: nn.Module, input_shape: Sequence[int], *, input_requires_grad: bool = False
) -> int:
    """Forward + backward FLOPs of one training sample, counted by ``FlopCounterMode``.

    Runs a real forward and backward pass on a batch of 2 zero samples and divides by 2.
    The input needs no gradient, so the first layer's input gradient is not computed: a
    Linear in->out costs 2*in*out forward, 2*in*out for its weight gradient and, except
    for the first layer, 2*in*out for its input gradient. With ``input_requires_grad`` the
    input is an activation inside a larger network (a candidate op of a supernet cell) and
    its gradient is computed and counted too. Frozen parameters get no
    gradient. The loss is the sum of the outputs; its elementwise cost is not counted,
    like BatchNorm, activations and bias adds. Grouped (depthwise) convolutions' weight
    gradients are counted per group, unlike torch 2.15's own formula (see ``flop_counter``).

    The pass runs in eval mode: matmul and convolution FLOPs are those of train mode,
    while BatchNorm running statistics stay untouched and dropout draws nothing from the
    global RNG; the model's mode is restored. The backward pass is ``loss.backward()``,
    as in a training step, with every parameter's ``.grad`` set aside and put back
    afterwards (``torch.autograd.grad`` would not touch ``.grad``, but FlopCounterMode's
    module tracker rejects it when a parameter is passed straight to a submodule, as in
    ``self.softmax(self.alpha)``).

    A module with a ``weight_mask`` buffer (``growray.cost.masked``) counts density x its
    FLOPs, forward and backward alike (a sparse kernel's cost; RigL's dense weight gradient
    at update steps is added apart, ``dense_gradient_extra_flops``).
    """
    x = sample_input(model, input_shape, _N_PROBE).requires_grad_(input_requires_grad)
    params = [p for p in model.parameters() if p.requires_grad]
    saved = [(p, p.grad) for p in params]
    was_training = model.training
    model.eval()
    try:
        for p in params:
            p.grad = None
        counter = flop_counter()
        with torch.enable_grad(), counter:
            loss = _scalar(model(x))
            if loss.requires_grad:
                loss.backward()
    finally:
        for p, g in saved:
            p.grad = g
        model.train(was_training)
    total = int(counter.get_total_flops())
    if masked_modules(model):
        total -= masked_saving(counter.get_flop_counts(), model)
    return total // _N_PROBE


def architecture_key(model: nn.Module, input_shape: Sequence[int]) -> Hashable:
    """What ``training_flops_per_sample`` depends on, cheaply: the model's class, every
    parameter's name, shape and ``requires_grad``, the input shape, the active count of
    every weight mask (``growray.cost.masked.mask_signature``; empty for a dense model), and
    ``model.cost_key()`` for a model that defines it.

    ``cost_key() -> Hashable`` is for a model whose forward runs a part of its modules chosen
    by state that is not a parameter (the genotype set on an ENAS supernet): the same
    parameters then cost differently under different choices.
    """
    own = getattr(model, "cost_key", None)
    return (
        type(model).__qualname__,
        check_input_shape(input_shape),
        tuple((name, tuple(p.shape), p.requires_grad) for name, p in model.named_parameters()),
        mask_signature(model),
        own() if callable(own) else None,
    )


class TrainingCompute:
    """Cumulative training compute (FLOPs) of a model whose architecture changes.

    Call ``add_step`` once per optimizer step. Per-sample FLOPs are cached by
    ``architecture_key`` and recounted (one small forward + backward pass) only for an
    architecture not seen before, e.g. after a growth event. A model that trains a newly
    sampled architecture at every step (an ENAS supernet) defines
    ``training_flops_per_sample(input_shape) -> int``, the count of the architecture set
    now under this module's conventions; ``add_step`` calls it at every step instead (a
    counted pass per step would cost about as much as the step, and the cache would keep one
    entry per step).

    Compute spent beside the weight steps (architecture steps, growth trigger checks and
    initializer proposals, RigL's dense gradients, a Grow-vs-Prune winning ticket's
    retraining) enters through ``add_flops`` with a ``kind``; it is part of ``total_flops``
    and also kept per kind (``extra``).

    Attributes:
        total_flops: forward + backward FLOPs of every sample seen so far, plus ``extra``.
        extra: FLOPs added by ``add_flops``, per kind (``arch``, ``growth``, ``sparse``,
            ``winning_ticket``).
        n_samples: samples seen so far.
        n_steps: calls to ``add_step``.
        n_counts: how many times per-sample FLOPs were counted (architectures seen since
            construction or ``load_state_dict``).
        flops_per_sample: per-sample FLOPs of the last step (0 before the first).
    """

    def __init__(self) -> None:
        self.total_flops = 0
        self.n_samples = 0
        self.n_steps = 0
        self.n_counts = 0
        self.flops_per_sample = 0
        self.extra: dict[str, int] = {}
        self._cache: dict[Hashable, int] = {}

    def add_step(self, model: nn.Module, input_shape: Sequence[int], n_samples: int) -> None:
        """Add one training step of ``n_samples`` samples (the batch size) through ``model``."""
        check_int("n_samples", n_samples, minimum=0)  # the step's batch size
        own = getattr(model, "training_flops_per_sample", None)
        if callable(own):  # the model counts the architecture it sampled for this step
            flops = check_int("model.training_flops_per_sample(input_shape)", own(input_shape), minimum=0)
        else:
            key = architecture_key(model, input_shape)
            cached = self._cache.get(key)
            if cached is None:
                cached = self._cache[key] = training_flops_per_sample(model, input_shape)
                self.n_counts += 1
            flops = cached
        self.flops_per_sample = flops
        self.total_flops += flops * n_samples
        self.n_samples += n_samples
        self.n_steps += 1

    def add_flops(self, flops: int, kind: str = "other") -> None:
        """Add compute spent outside the counted training steps (an architecture step, a
        growth check, RigL's dense weight gradient); it enters ``total_flops`` and
        ``extra[kind]``."""
        flops = check_int("flops", flops, minimum=0)
        self.total_flops += flops
        self.extra[kind] = self.extra.get(kind, 0) + flops

    def state_dict(self) -> dict[str, Any]:
        """JSON-able totals for checkpoints (the cache is not saved: it is recounted on demand)."""
        return {
            "total_flops": self.total_flops,
            "n_samples": self.n_samples,
            "n_steps": self.n_steps,
            "flops_per_sample": self.flops_per_sample,
            "extra": dict(self.extra),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore totals saved by ``state_dict``; unknown or missing keys are errors (a
        checkpoint written before ``extra`` existed loads with none)."""
        expected = set(self.state_dict())
        if isinstance(state, dict) and "extra" not in state:
            state = {**state, "extra": {}}
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"TrainingCompute state must have exactly the keys {sorted(expected)}; got {got}")
        extra = state["extra"]
        if not isinstance(extra, dict):
            raise ValueError(f"TrainingCompute state['extra'] must be a dict of kind -> FLOPs; got {extra!r}")
        values = {k: check_int(f"state[{k!r}]", state[k], minimum=0) for k in sorted(expected - {"extra"})}
        self.total_flops = values["total_flops"]
        self.n_samples = values["n_samples"]
        self.n_steps = values["n_steps"]
        self.flops_per_sample = values["flops_per_sample"]
        self.extra = {str(k): check_int(f"state['extra'][{k!r}]", v, minimum=0) for k, v in extra.items()}
        self._cache = {}
        self.n_counts = 0
