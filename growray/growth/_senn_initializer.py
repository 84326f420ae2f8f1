"""The ``senn`` initializer: the fan-in SENN's trigger chose (or a fresh search), zero fan-out
(see ``growray.growth.senn``)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor

from growray.checks import check_int, check_number
from growray.growth._senn_site import measure_site, senn_supported
from growray.growth.initializers import INITIALIZERS, Initializer, RandomInitializer, WidthProposal, _fresh_norm
from growray.growth.senn_score import optimize_proposals, sample_winner
from growray.models.sites import GrowableModel

__all__ = ["SENNInitializer"]


@INITIALIZERS.register("senn")
class SENNInitializer(Initializer):
    """SENN initializer: the chosen fan-in, a zero fan-out (function preserved exactly).

    With ``hint`` (the ``senn`` trigger's request payload, ``{"fan_in": [[...]], "bias": [...]}``)
    the first ``n_new`` hinted units are used; missing ones (or all, when ``hint`` is None) come
    from running the proposal optimisation on ``batch`` here, one unit at a time with virtual
    rescoring (see ``SENNTrigger``); its random draws come from torch's global RNG. BatchNorm
    entries of new units are fresh (gamma 1, beta 0, running mean 0, var 1: identity-like, the
    candidate activations were computed that way); without a producer bias the offset goes to
    beta. Sites that are not dense (``senn_supported``) get the ``random`` initializer's
    fan-in (zero fan-out).

    Args:
        n_proposals, n_steps, step_size, temperature, tikhonov: as for ``SENNTrigger``.
    """

    uses_hint: ClassVar[bool] = True

    def __init__(
        self,
        n_proposals: int = 100,
        n_steps: int = 10,
        step_size: float = 0.3,
        temperature: float = 10.0,
        tikhonov: float = 0.1,
    ):
        self.n_proposals = check_int("n_proposals", n_proposals, minimum=1)
        self.n_steps = check_int("n_steps", n_steps, minimum=0)
        self.step_size = check_number("step_size", step_size, low=0, low_open=True)
        self.temperature = check_number("temperature", temperature, low=0, low_open=True)
        self.tikhonov = check_number("tikhonov", tikhonov, low=0)

    @property
    def preserves_function(self) -> bool:
        return True

    def _hinted(self, hint: object, n_in: int, n_new: int) -> list[tuple[list[float], float]]:
        if hint is None:
            return []
        if (
            not isinstance(hint, dict)
            or not isinstance(hint.get("fan_in"), list)
            or not isinstance(hint.get("bias"), list)
        ):
            raise ValueError(
                f"senn hint must be {{'fan_in': [[...]], 'bias': [...]}} (a senn trigger payload); got {hint!r}"
            )
        rows = [(list(r), float(b)) for r, b in zip(hint["fan_in"], hint["bias"])]
        for r, _ in rows:
            if len(r) != n_in:
                raise ValueError(f"senn hint: fan-in rows need {n_in} entries (the producer's inputs); got {len(r)}")
        return rows[:n_new]

    def propose(
        self,
        model: GrowableModel,
        site: str,
        n_new: int,
        batch: tuple[Tensor, Tensor] | None = None,
        hint: object = None,
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        if not senn_supported(model, site):
            return RandomInitializer().propose(model, site, n_new, batch)
        mods = model.site_modules(site)
        w, cw = mods.producer.weight, mods.consumer.weight
        units = self._hinted(hint, w.shape[1], n_new)
        if len(units) < n_new:
            if batch is None:
                raise ValueError("senn needs batch=(x, y) of recent training samples (or a trigger hint); got None")
            data, g, g_hat = measure_site(model, site, batch, self.tikhonov)
            for _ in range(n_new - len(units)):
                gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
                fan_ins, gains = optimize_proposals(
                    data.inputs,
                    data.activation,
                    data.stats,
                    n_proposals=self.n_proposals,
                    n_steps=self.n_steps,
                    step_size=self.step_size,
                    tikhonov=self.tikhonov,
                    generator=gen,
                    slope=data.slope,
                )
                u = fan_ins[sample_winner(gains, self.temperature, gen)]
                data.add_input(data.activation((u @ data.inputs.t())[None])[0], g, g_hat, self.tikhonov)
                row = u[:-1] if data.has_offset else u
                units.append(([float(v) for v in row], float(u[-1]) if data.has_offset else 0.0))
        with torch.no_grad():
            fan_in = torch.tensor([r for r, _ in units], dtype=w.dtype, device=w.device)
            offsets = torch.tensor([b for _, b in units], dtype=w.dtype, device=w.device)
            fan_out = torch.zeros((cw.shape[0], n_new), dtype=cw.dtype, device=cw.device)
        norm = _fresh_norm(mods.norm, n_new, w)
        bias = None
        if mods.producer.bias is not None:
            bias = offsets
        elif norm is not None and mods.norm is not None:  # candidates were act(z / sqrt(1 + eps)): beta
            norm["bias"] = offsets / math.sqrt(1.0 + float(mods.norm.eps))  # carries the scaled offset
        return WidthProposal(fan_in, bias, fan_out, None, norm)
