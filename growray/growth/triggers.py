"""Triggers decide when to grow, where, and by how many units."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from growray.checks import check_choice, check_int, check_number
from growray.growth.limits import SiteLimits
from growray.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

    from growray.models.sites import GrowableModel

__all__ = [
    "TRIGGERS",
    "GrowthRequest",
    "PlateauTrigger",
    "ScheduleTrigger",
    "Trigger",
    "TriggerContext",
]


@dataclass(frozen=True)
class GrowthRequest:
    """Add ``n_units`` units at ``site`` (``kind="widen"``), or insert one block right after
    ``site`` (``kind="deepen"``; ``n_units`` is then unused, 1 by convention). ``score`` and
    ``reason`` go into the event.

    ``payload`` carries trigger-specific data to an initializer whose ``uses_hint`` is
    true (the strategy calls ``propose(..., hint=payload)``), e.g. SENN's chosen fan-in
    proposals. It may hold tensors, so it takes no part in equality.
    """

    site: str
    n_units: int
    score: float | None = None
    reason: str = ""
    kind: Literal["widen", "deepen"] = "widen"
    payload: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, ("widen", "deepen"))


@dataclass(frozen=True)
class TriggerContext:
    """What a trigger sees; the trainer calls ``check`` after each optimizer step
    (``phase="step"``) and after each epoch's validation (``phase="epoch"``)."""

    step: int
    epoch: int
    phase: Literal["step", "epoch"]
    widths: dict[str, int]
    train_loss: float | None = None
    val_loss: float | None = None
    model: GrowableModel | None = None
    batch: tuple[Tensor, Tensor] | None = None
    """Recent *training* samples (a rolling buffer kept by the growth hook, up to
    ``growth.buffer_size``): data-driven triggers measure activations/gradients on it."""


class Trigger(ABC):
    """When / where / how many. Stateful triggers keep their state JSON-able."""

    @abstractmethod
    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        """Requests to grow now (often empty)."""

    def start(self, ctx: TriggerContext) -> None:
        """Measure what the trigger compares against at initialisation (default: nothing).

        The growth hook calls it once, before the first optimizer step of a fresh run
        (``ctx.step == 0``, ``ctx.batch`` = the first ``growth.buffer_size`` training
        samples); a resumed run does not call it again (the state carries the result). A
        trigger must still work when it is never called (direct use, older checkpoints).
        """
        return None

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        """Why this trigger cannot watch ``site`` of ``model`` under ``limits`` (None: it can).

        ``growray validate`` calls it for every grown site before a run, on a model built
        on the meta device (shapes only, no values). The default accepts every site.
        """
        return None

    def diagnostics(self) -> dict[str, float]:
        """Values measured at the last check, by metric name relative to the growth
        namespace (the growth hook logs ``"x/site"`` as ``growth/x/site``); default none.

        Data only: a trigger never logs. Keys must be stable (the comparison UI reads them).
        """
        return {}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state, so a resumed trial continues the same trigger state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} is stateless; got state keys {sorted(state)}")


TRIGGERS: Registry[Trigger] = Registry("trigger")


@TRIGGERS.register("schedule")
class ScheduleTrigger(Trigger):
    """Every ``every_steps`` optimizer steps, widen every site by ``n_units`` or insert a layer.

    Fires at phase "step" when ``step > start_step``, ``step % every_steps == 0`` and, if
    ``stop_step`` is set, ``step <= stop_step``. With ``kind: deepen`` it asks for one block
    after ``deepen_site`` ("last": the last site in forward order, "first": the first, or a
    site name; names are stable, so a named site stays the same layer).

    Args:
        every_steps, n_units, start_step, stop_step: as above (``n_units`` only for widen).
        kind: "widen" or "deepen" (the strategy needs a deepener for the latter).
        deepen_site: "last", "first" or a site name (only for deepen).
    """

    def __init__(
        self,
        every_steps: int = 100,
        n_units: int = 4,
        start_step: int = 0,
        stop_step: int | None = None,
        kind: Literal["widen", "deepen"] = "widen",
        deepen_site: str = "last",
    ):
        self.every_steps = check_int("every_steps", every_steps, minimum=1)
        self.n_units = check_int("n_units", n_units, minimum=1)
        self.start_step = check_int("start_step", start_step, minimum=0)
        self.stop_step = check_int("stop_step", stop_step, minimum=0, optional=True)
        if self.stop_step is not None and self.stop_step < self.start_step:
            raise ValueError(f"stop_step must be >= start_step ({start_step}) or null; got {stop_step}")
        self.kind: Literal["widen", "deepen"] = check_choice("kind", kind, ("widen", "deepen"))
        if not isinstance(deepen_site, str) or not deepen_site:
            raise ValueError(f"deepen_site must be 'last', 'first' or a site name; got {deepen_site!r}")
        self.deepen_site = deepen_site

    def _deepen_target(self, widths: dict[str, int]) -> str | None:
        sites = list(widths)
        if not sites:
            return None
        if self.deepen_site == "last":
            return sites[-1]
        if self.deepen_site == "first":
            return sites[0]
        if self.deepen_site not in sites:
            raise ValueError(
                f"deepen_site {self.deepen_site!r} is not a site of this model; use 'last', 'first' or one of {sites}"
            )
        return self.deepen_site

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        s = ctx.step
        if ctx.phase != "step" or s <= self.start_step or s % self.every_steps:
            return []
        if self.stop_step is not None and s > self.stop_step:
            return []
        reason = f"schedule: step {s} is a multiple of every_steps={self.every_steps}"
        if self.kind == "deepen":
            site = self._deepen_target(ctx.widths)
            return [] if site is None else [GrowthRequest(site, 1, None, reason, kind="deepen")]
        return [GrowthRequest(site, self.n_units, None, reason) for site in ctx.widths]


@TRIGGERS.register("plateau")
class PlateauTrigger(Trigger):
    """Grow every site when the validation loss stops improving.

    At phase "epoch": an epoch is "bad" unless ``val_loss < best - min_delta``. After
    ``patience`` consecutive bad epochs, request ``n_units`` for every site and reset the
    count; then stay quiet for ``cooldown`` epochs (the best loss is still tracked).
    The request's score is ``val_loss - best`` (>= -min_delta).
    """

    def __init__(self, patience: int = 2, min_delta: float = 1e-3, n_units: int = 4, cooldown: int = 0):
        self.patience = check_int("patience", patience, minimum=1)
        self.min_delta = check_number("min_delta", min_delta, low=0)
        self.n_units = check_int("n_units", n_units, minimum=1)
        self.cooldown = check_int("cooldown", cooldown, minimum=0)
        self.best: float | None = None
        self.n_bad = 0
        self.cooldown_left = 0

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase != "epoch":
            return []
        if ctx.val_loss is None:
            raise ValueError(
                "PlateauTrigger needs ctx.val_loss at phase 'epoch' (configure a validation split), got None"
            )
        loss = float(ctx.val_loss)
        if self.best is None or loss < self.best - self.min_delta:
            self.best, self.n_bad = loss, 0
        else:
            self.n_bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.n_bad = 0
            return []
        if self.n_bad < self.patience:
            return []
        reason = (
            f"plateau: val_loss {loss:.6g} not below best {self.best:.6g} - min_delta {self.min_delta:g} "
            f"for {self.n_bad} epochs"
        )
        score = loss - self.best
        self.n_bad = 0
        self.cooldown_left = self.cooldown
        return [GrowthRequest(site, self.n_units, score, reason) for site in ctx.widths]

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "n_bad": self.n_bad, "cooldown_left": self.cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"best", "n_bad", "cooldown_left"}
        if set(state) != expected:
            raise ValueError(f"PlateauTrigger state needs keys {sorted(expected)}; got {sorted(state)}")
        self.best = None if state["best"] is None else float(state["best"])
        self.n_bad = int(state["n_bad"])
        self.cooldown_left = int(state["cooldown_left"])
