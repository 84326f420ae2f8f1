"""The cost metrics of a training run: params and FLOPs at every architecture change, latency
at an interval, training compute as it accumulates, evaluation compute apart (``cost/*``,
DESIGN.md)."""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import torch
from torch import nn

from growray.config import CostsConfig
from growray.cost import (
    LatencyProtocol,
    TrainingCompute,
    architecture_key,
    count_params,
    forward_flops,
    measure_latency,
)

__all__ = ["CostMeter"]

#: forward FLOPs per sample by (model spec, ``architecture_key``), for every CostMeter of this
#: process: a reused Ray actor runs many trials of a sweep, which mostly start from the same
#: architecture (counting one takes a FlopCounterMode pass, ~20 ms for a small MLP)
_PROCESS_FLOPS: dict[Hashable, int] = {}
_PROCESS_FLOPS_MAX = 256


def _process_key(model: nn.Module, arch: Hashable) -> Hashable | None:
    """``(spec as JSON, arch)``: the constructor arguments decide what ``arch`` (parameter
    shapes, masks, ``cost_key``) cannot, such as an activation; None for a model without a
    spec, which is then counted per meter only."""
    spec = getattr(model, "spec", None)
    if not callable(spec):
        return None
    try:
        return json.dumps(spec().to_dict(), sort_keys=True), arch
    except (TypeError, ValueError, AttributeError):
        return None


class CostMeter:
    """Params, FLOPs, latency and training compute of one model as it trains (and grows).

    Args:
        costs: the ``costs`` section; None measures no latency.
        input_shape: one sample's shape.
        device: where latency is measured (the trial's device).
    """

    def __init__(self, costs: CostsConfig | None, input_shape: tuple[int, ...], device: torch.device) -> None:
        self.cfg = costs
        self.input_shape = input_shape
        self.device = device
        self.compute = TrainingCompute()
        self.eval_flops = 0  # forward FLOPs of every evaluated sample (val, test, NAS gap): not training
        self.latency: dict[str, float] = {}  # latest cost/latency_* values
        self._latency_arch: str | None = None  # the architecture they were measured on
        self._cache: tuple[tuple[Any, ...], int, int] | None = None
        self._eval_cache: dict[Any, int] = {}

    def static(self, model: nn.Module, widths: dict[str, int]) -> dict[str, float]:
        """``cost/params`` and ``cost/flops`` (per sample), recomputed only when widths, weight
        masks or the architecture set on a supernet change (masked weights are not counted:
        ``growray.cost.masked``; the architecture: ``growray.cost.architecture_key``)."""
        arch = architecture_key(model, self.input_shape)
        key = (tuple(widths.values()), arch)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, count_params(model), self._forward_flops(model, arch))
        _, params, flops = self._cache
        return {"cost/params": float(params), "cost/flops": float(flops)}

    def add_eval(self, model: nn.Module, n_samples: int) -> None:
        """Count an evaluation pass of ``n_samples`` through ``model`` (forward only, effective
        FLOPs for masked layers) into ``cost/eval_flops``; cached per architecture."""
        flops = self._forward_flops(model, architecture_key(model, self.input_shape))
        self.eval_flops += flops * int(n_samples)

    def _forward_flops(self, model: nn.Module, arch: Any) -> int:
        """``forward_flops`` of the architecture ``arch`` (its ``architecture_key``), counted once
        for ``cost/flops`` and the evaluation passes alike."""
        flops = self._eval_cache.get(arch)
        if flops is None:
            key = _process_key(model, arch)
            flops = None if key is None else _PROCESS_FLOPS.get(key)
            if flops is None:
                flops = forward_flops(model, self.input_shape)
                if key is not None:
                    if len(_PROCESS_FLOPS) >= _PROCESS_FLOPS_MAX:
                        del _PROCESS_FLOPS[next(iter(_PROCESS_FLOPS))]  # the oldest entry
                    _PROCESS_FLOPS[key] = flops
            self._eval_cache[arch] = flops
        return flops

    def compute_metrics(self) -> dict[str, float]:
        """``cost/train_flops`` (weight steps and everything added beside them),
        ``cost/train_flops/<kind>`` (the part each kind added: ``arch``, ``growth``,
        ``sparse``, ``winning_ticket``) and ``cost/eval_flops``."""
        out = {"cost/train_flops": float(self.compute.total_flops), "cost/eval_flops": float(self.eval_flops)}
        out.update({f"cost/train_flops/{kind}": float(v) for kind, v in sorted(self.compute.extra.items())})
        return out

    def compute_changes(self, metrics: dict[str, float]) -> dict[str, float]:
        """The ``compute_metrics`` whose values differ from those in ``metrics``: what was spent
        since they were taken (the trainer's final metrics take in the compute hooks spend at
        the end of a run, such as a winning ticket's retraining)."""
        return {k: v for k, v in self.compute_metrics().items() if metrics.get(k) != v}

    def protocol(self) -> LatencyProtocol | None:
        """The latency protocol (logged as params), or None when latency is off."""
        lat = self.cfg.latency if self.cfg is not None else None
        if lat is None or not lat.enabled:
            return None
        return LatencyProtocol(
            batch_sizes=tuple(lat.batch_sizes),
            dtype=lat.dtype,
            threads=lat.threads if lat.threads is not None else torch.get_num_threads(),
            warmup=lat.warmup,
            min_run_time=lat.min_run_time,
        )

    def measure_latency_if_due(self, model: nn.Module, arch: str, epoch: int, last: bool) -> None:
        """Re-measure latency every ``costs.every_epochs`` epochs (and at the last one), only
        when the architecture ``arch`` (its spec's JSON) changed since the last measurement."""
        protocol = self.protocol()
        if protocol is None or self.cfg is None:
            return
        due = last or epoch % self.cfg.every_epochs == 0 or not self.latency
        if not due or arch == self._latency_arch:
            return
        results = measure_latency(model, self.input_shape, protocol, self.device)
        head = results[0]
        self.latency = {
            "cost/latency_ms": head.median_ms,
            "cost/latency_p95_ms": head.p95_ms,
            "cost/latency_spread": head.spread,  # repeats' medians: (max - min) / min
        }
        for r in results[1:]:
            self.latency[f"cost/latency_ms/bs{r.batch_size}"] = r.median_ms
        self._latency_arch = arch

    def state_dict(self) -> dict[str, Any]:
        return {
            "compute": self.compute.state_dict(),
            "eval_flops": self.eval_flops,
            "latency": self.latency,
            "latency_arch": self._latency_arch,
        }

    def load_state_dict(self, meta: dict[str, Any]) -> None:
        """Restore from a checkpoint's meta (the keys ``state_dict`` wrote, at its top level)."""
        if "compute" in meta:
            self.compute.load_state_dict(meta["compute"])
        self.eval_flops = int(meta.get("eval_flops", 0))
        self.latency = dict(meta.get("latency", {}))
        self._latency_arch = meta.get("latency_arch")
