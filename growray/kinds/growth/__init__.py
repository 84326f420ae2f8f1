"""The ``growth`` kind: a network that grows while it trains.

Section ``growth`` (:class:`GrowthConfig`): a trigger (when/where/how many), an initializer
(how), optionally a deepener (inserting layers), an optimizer-state policy and caps. The
kind's hook asks the strategy after every optimizer step and every epoch and records each
event with its measured function-preservation error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.growth import DEEPENERS, INITIALIZERS, TRIGGERS, GrowthStrategy, SiteLimits
from growray.kinds import KINDS, Kind, KindSetup, PluginSlot
from growray.tracking.tables import Column

from .config import GrowthConfig, NewbornDiagnosticsConfig
from .hook import GrowthHook

if TYPE_CHECKING:
    from growray.data import TensorSplits

__all__ = ["GrowthConfig", "GrowthHook", "GrowthKind", "NewbornDiagnosticsConfig"]


@KINDS.register("growth", description="a network that grows (or deepens) while it trains")
class GrowthKind(Kind[GrowthConfig]):
    """Growing networks: triggers x initializers x optimizer-state policies x caps."""

    name = "growth"
    section = GrowthConfig
    plugins: ClassVar[dict[str, PluginSlot]] = {
        "trigger": PluginSlot(TRIGGERS, construct=True),
        "initializer": PluginSlot(INITIALIZERS, construct=True),
        "deepen": PluginSlot(DEEPENERS, construct=True),
    }
    metrics: ClassVar[dict[str, str]] = {
        "growth/preservation_error": "max |output change| at the last growth event (held-out batch)",
        "growth/newborn_act_parity": "log(newborn / incumbent) activity, mean over sites measured at this step",
        "growth/newborn_grad_parity": "log(newborn / incumbent) mean |dL/dz|, mean over sites measured at this step",
        "growth/senn_eta": "SENN: natural expansion score summed over the sites at the last check",
    }
    columns: ClassVar[tuple[Column, ...]] = (Column("events", "growth/events", digits=0),)
    metric_prefixes: ClassVar[dict[str, str]] = {
        "growth/newborn_act_parity/": "newborn activation log-parity at one site",
        "growth/newborn_grad_parity/": "newborn gradient log-parity at one site",
        "growth/senn_eta/": "SENN: natural expansion score eta of one site",
        "growth/senn_delta_eta/": "SENN: lower bound delta-eta' of the best proposal at one site",
    }

    def check(self, exp: Experiment, cfg: GrowthConfig) -> list[ConfigIssue]:
        issues = []
        hidden = exp.model.get("hidden")
        if cfg.max_width is not None and isinstance(hidden, list) and hidden and max(hidden) > cfg.max_width:
            issues.append(
                ConfigIssue(
                    "growth.max_width",
                    f"smaller than the initial width {max(hidden)} of model.hidden; use >= {max(hidden)}",
                    cfg.max_width,
                )
            )
        return issues + _check_against_model(exp, cfg)

    def setup(self, exp: Experiment, cfg: GrowthConfig, splits: TensorSplits) -> KindSetup:
        # a baselines arm (growray.kinds.baselines) that never grows, or grows with random newborns
        arm = getattr(exp.kinds.get("baselines"), "arm", "grown")
        if arm not in ("grown", "random_expansion"):
            return KindSetup([], splits)
        initializer = {"name": "random_expansion"} if arm == "random_expansion" else cfg.initializer
        strategy = GrowthStrategy(
            TRIGGERS.build(cfg.trigger),
            INITIALIZERS.build(initializer),
            max_width=cfg.max_width,
            sites=cfg.sites,
            optimizer_state=cfg.optimizer_state,
            trigger_name=cfg.trigger["name"],
            initializer_name=initializer["name"],
            deepener=DEEPENERS.build(cfg.deepen) if cfg.deepen is not None else None,
            deepener_name=cfg.deepen["name"] if cfg.deepen is not None else "",
            max_depth=cfg.max_depth,
        )
        x_val, y_val = splits.val
        k = min(exp.trainer.probe_size, len(x_val))
        hook = GrowthHook(
            strategy,
            (x_val[:k], y_val[:k]),
            buffer_size=cfg.buffer_size,
            diagnostics=cfg.diagnostics,
            sites=cfg.sites,
            lr_factor_after_growth=cfg.lr_factor_after_growth,
        )
        return KindSetup([hook], splits)


def _check_against_model(exp: Experiment, cfg: GrowthConfig) -> list[ConfigIssue]:
    """Build the model on the meta device (no memory, no compute) and check the growth
    settings against its real sites and layer sizes: unknown sites, and plug-ins that cannot
    work at a site (e.g. ``north_weight`` needs width < fan-in)."""
    from growray.data import describe_dataset
    from growray.models.meta import meta_model

    shape = describe_dataset(exp.data)
    if shape is None:
        return []
    try:
        model: Any = meta_model(exp.model, shape[0], shape[1])
    except (ValueError, TypeError) as exc:
        return [ConfigIssue("model", f"cannot be built for {exp.data['name']} inputs {shape[0]}: {exc}")]
    sites = list(model.sites())
    issues = []
    unknown = [s for s in cfg.sites or [] if s not in sites]
    if unknown:
        issues.append(
            ConfigIssue("growth.sites", f"not sites of this model; its sites are {', '.join(sites)}", unknown)
        )
    limits = SiteLimits(max_width=cfg.max_width, max_depth=cfg.max_depth, buffer_size=cfg.buffer_size)
    plugins: list[tuple[str, dict[str, Any], Any, str]] = []
    if cfg.deepen is not None:
        plugins.append(("growth.deepen.name", cfg.deepen, DEEPENERS.build(cfg.deepen), "cannot deepen after site"))
    plugins += [
        ("growth.initializer.name", cfg.initializer, INITIALIZERS.build(cfg.initializer), "cannot grow site"),
        ("growth.trigger.name", cfg.trigger, TRIGGERS.build(cfg.trigger), "cannot watch site"),
    ]
    for site in (s for s in cfg.sites or sites if s in sites):
        for path, section, plugin, what in plugins:
            reason = plugin.check_site(model, site, limits)
            if reason:
                issues.append(ConfigIssue(path, f"{what} {site}: {reason}", section["name"]))
    out: list[ConfigIssue] = []
    for issue in issues:
        if issue not in out:
            out.append(issue)
    return out
