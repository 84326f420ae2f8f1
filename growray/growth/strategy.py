"""GrowthStrategy: a trigger (when/where/how many) x an initializer (how) x a deepener
(how to insert layers) x caps."""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from torch import Tensor

from growray.checks import check_choice, check_int
from growray.cost import count_flops, count_params, forward_flops
from growray.growth.deepen import Deepener, DepthChange, add_new_parameters
from growray.growth.events import GrowthEvent
from growray.growth.initializers import Initializer, WidthProposal
from growray.growth.optim_state import OPTIMIZER_STATE_POLICIES, match_incumbents, migrate_optimizer, unit_rows
from growray.growth.surgery import widen
from growray.growth.triggers import GrowthRequest, Trigger, TriggerContext
from growray.models.sites import DeepenableModel, GrowableModel, as_module
from growray.registry import UnknownNameError

__all__ = ["GrowthStrategy"]


class _HintedInitializer(Protocol):
    """An initializer whose ``uses_hint`` is true: ``propose`` also takes the request's payload."""

    def propose(
        self,
        model: GrowableModel,
        site: str,
        n_new: int,
        batch: tuple[Tensor, Tensor] | None = None,
        hint: object = None,
    ) -> WidthProposal: ...


class _HintedDeepener(Protocol):
    """A deepener whose ``uses_hint`` is true: ``apply`` also takes the request's payload."""

    def apply(
        self, model: DeepenableModel, site: str, batch: tuple[Tensor, Tensor] | None = None, hint: object = None
    ) -> DepthChange: ...


class GrowthStrategy:
    """Asks the trigger, grows with the initializer (or deepener), migrates the optimizer,
    returns events.

    Width requests (``kind="widen"``) skip sites listed by ``model.locked_sites()`` (a
    DropIn block still ramping ties its width to its input's). Depth requests
    (``kind="deepen"``) insert a block after the requested site with ``deepener``; its new
    parameters join the site producer's optimizer group (``deepen.add_new_parameters``).

    Args:
        trigger: decides when, where and how many.
        initializer: fills the new units. When it has ``uses_hint = True``, ``propose`` is
            called with ``hint=request.payload``.
        max_width: no site grows beyond this many units (None: no cap).
        sites: only these sites may grow or be deepened after (None: every site the
            trigger names).
        optimizer_state: a policy in ``OPTIMIZER_STATE_POLICIES``.
        trigger_name, initializer_name: registered names, recorded in the events (the class
            names when empty).
        deepener: inserts blocks for depth requests (None: depth requests are an error).
        deepener_name: its registered name, recorded in depth events (class name when empty).
        max_depth: no insertion beyond this many hidden blocks (``len(model.sites())``,
            the ``growth/depth`` metric); None: no cap.
    """

    def __init__(
        self,
        trigger: Trigger,
        initializer: Initializer,
        max_width: int | None = None,
        sites: list[str] | None = None,
        optimizer_state: str = "zero",
        trigger_name: str = "",
        initializer_name: str = "",
        deepener: Deepener | None = None,
        deepener_name: str = "",
        max_depth: int | None = None,
    ):
        if not isinstance(trigger, Trigger):
            raise TypeError(f"trigger must be a Trigger; got {type(trigger).__name__}")
        if not isinstance(initializer, Initializer):
            raise TypeError(f"initializer must be an Initializer; got {type(initializer).__name__}")
        if sites is not None and (isinstance(sites, str) or not all(isinstance(s, str) for s in sites)):
            raise ValueError(f"sites must be a list of site names or null; got {sites!r}")
        if deepener is not None and not isinstance(deepener, Deepener):
            raise TypeError(
                f"deepener must be a Deepener (growray.growth.DEEPENERS) or None; got {type(deepener).__name__}"
            )
        self.trigger = trigger
        self.initializer = initializer
        self.deepener = deepener
        self.deepener_name = deepener_name or ("" if deepener is None else type(deepener).__name__)
        self.max_depth = check_int("max_depth", max_depth, minimum=1, optional=True)
        self.max_width = check_int("max_width", max_width, minimum=1, optional=True)
        self.sites = None if sites is None else list(sites)
        self.optimizer_state = check_choice("optimizer_state", optimizer_state, OPTIMIZER_STATE_POLICIES)
        self.trigger_name = trigger_name or type(trigger).__name__
        self.initializer_name = initializer_name or type(initializer).__name__
        self.overhead_flops = 0  # FLOPs of trigger checks and proposals not yet taken (take_overhead_flops)

    def step(
        self,
        model: GrowableModel,
        optimizer: torch.optim.Optimizer | None,
        ctx: TriggerContext,
        probe: tuple[Tensor, Tensor],
    ) -> list[GrowthEvent]:
        """Grow if the trigger asks; one event per grown site (often none). The FLOPs of the
        trigger's check and the initializer's proposals (what the method computes, not the
        event's measurements) accumulate in ``overhead_flops``."""
        requests = self._counted(self.trigger.check, ctx)
        if not requests:
            return []
        model_sites = model.sites()
        for name in self.sites or []:
            if name not in model_sites:
                raise UnknownNameError("site", name, model_sites)
        x = probe[0]
        was_training = model.training
        events: list[GrowthEvent] = []
        model.eval()  # probe forwards and initializer passes must not touch BN statistics
        try:
            for req in requests:
                if req.site not in model_sites:
                    raise UnknownNameError("site", req.site, model_sites)
                if self.sites is not None and req.site not in self.sites:
                    continue
                event = (
                    self._deepen(model, optimizer, ctx, req, x)
                    if req.kind == "deepen"
                    else (self._widen(model, optimizer, ctx, req, x))
                )
                if event is not None:
                    events.append(event)
                model_sites = model.sites()
        finally:
            model.train(was_training)
        return events

    def _counted(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        result, flops = count_flops(fn, *args, **kwargs)
        self.overhead_flops += flops
        return result

    def start(self, ctx: TriggerContext) -> None:
        """The trigger's measurement at initialisation (``Trigger.start``), counted."""
        self._counted(self.trigger.start, ctx)

    def take_overhead_flops(self) -> int:
        """The FLOPs counted since the last call (and reset them)."""
        flops, self.overhead_flops = self.overhead_flops, 0
        return flops

    def _event(
        self, model: GrowableModel, ctx: TriggerContext, req: GrowthRequest, x: Tensor, **fields: Any
    ) -> GrowthEvent:
        return GrowthEvent(
            step=ctx.step,
            epoch=ctx.epoch,
            trigger=self.trigger_name,
            trigger_score=None if req.score is None else float(req.score),
            reason=req.reason,
            params_after=count_params(as_module(model)),
            flops_after=forward_flops(as_module(model), tuple(x.shape[1:])),
            **fields,
        )

    def _widen(
        self,
        model: GrowableModel,
        optimizer: torch.optim.Optimizer | None,
        ctx: TriggerContext,
        req: GrowthRequest,
        x: Tensor,
    ) -> GrowthEvent | None:
        locked = model.locked_sites() if isinstance(model, DeepenableModel) else {}
        if req.site in locked:
            return None
        width = model.widths()[req.site]
        n = req.n_units if self.max_width is None else min(req.n_units, self.max_width - width)
        if n <= 0:
            return None
        params_before, flops_before = (
            count_params(as_module(model)),
            forward_flops(as_module(model), tuple(x.shape[1:])),
        )
        with torch.no_grad():
            before = model(x)
        # Initializers learn from recent *training* samples, never from the held-out probe.
        if self.initializer.uses_hint:  # the uses_hint contract: propose takes hint=
            hinted = cast(_HintedInitializer, self.initializer)
            proposal = self._counted(hinted.propose, model, req.site, n, batch=ctx.batch, hint=req.payload)
        else:
            proposal = self._counted(self.initializer.propose, model, req.site, n, batch=ctx.batch)
        changes = widen(model, req.site, proposal)
        if optimizer is not None:
            sources = self._sources(model, req.site, width) if self.optimizer_state == "transplant" else None
            migrate_optimizer(optimizer, changes, self.optimizer_state, sources)
        with torch.no_grad():
            after = model(x)
        return self._event(
            model,
            ctx,
            req,
            x,
            site=req.site,
            kind="widen",
            n_added=n,
            width_before=width,
            width_after=model.widths()[req.site],
            initializer=self.initializer_name,
            preserves_function=bool(self.initializer.preserves_function),
            params_before=params_before,
            flops_before=flops_before,
            preservation_error=float((after - before).abs().max().item()),
        )

    def _deepen(
        self,
        model: GrowableModel,
        optimizer: torch.optim.Optimizer | None,
        ctx: TriggerContext,
        req: GrowthRequest,
        x: Tensor,
    ) -> GrowthEvent | None:
        if self.deepener is None:
            raise ValueError(
                f"the {self.trigger_name} trigger asked to insert a layer after {req.site!r} (a 'deepen' request) but "
                "this strategy has no deepener; configure one (growth.deepen: {name: net2deeper} or "
                "{name: dropin, steps: 500}) or use a trigger that only widens"
            )
        if self.max_depth is not None and len(model.sites()) >= self.max_depth:
            return None
        if not isinstance(model, DeepenableModel):
            raise TypeError(
                f"the {self.trigger_name} trigger asked to insert a layer after {req.site!r}, but a "
                f"{type(model).__name__} cannot hold inserted blocks (it is not a DeepenableModel)"
            )
        params_before, flops_before = (
            count_params(as_module(model)),
            forward_flops(as_module(model), tuple(x.shape[1:])),
        )
        with torch.no_grad():
            before = model(x)
        anchor = model.site_modules(req.site).producer.weight
        if self.deepener.uses_hint:  # the uses_hint contract: apply takes hint=
            hinted = cast(_HintedDeepener, self.deepener)
            change = hinted.apply(model, req.site, batch=ctx.batch, hint=req.payload)
        else:
            change = self.deepener.apply(model, req.site, batch=ctx.batch)
        if optimizer is not None:
            add_new_parameters(optimizer, model, change.new_params, anchor)
        with torch.no_grad():
            after = model(x)
        return self._event(
            model,
            ctx,
            req,
            x,
            site=change.new_site,
            kind="deepen",
            n_added=change.width,
            width_before=0,
            width_after=change.width,
            initializer=self.deepener_name,
            preserves_function=bool(self.deepener.preserves_function),
            params_before=params_before,
            flops_before=flops_before,
            preservation_error=float((after - before).abs().max().item()),
            after=req.site,
        )

    @staticmethod
    def _sources(model: GrowableModel, site: str, n_old: int) -> Tensor:
        """Each newborn's most similar incumbent, by fan-in and fan-out direction together."""
        units = unit_rows(model.site_modules(site))
        return match_incumbents(units[:n_old], units[n_old:])

    def state_dict(self) -> dict[str, Any]:
        return self.trigger.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.trigger.load_state_dict(state)
