"""Pareto-aware early stopping: asynchronous successive halving by non-dominated rank.

``ParetoHalvingScheduler`` is the multi-objective analogue of ASHA. A trial is judged once at
each rung it reaches: its objective vector joins the vectors recorded at that rung, all of them
are ranked with :func:`growray.search.pareto.rank_order` (front, then crowding distance, then arrival)
and the trial continues only when it lies in the top ``ceil(n / reduction_factor)`` of the
``n`` recorded so far. As in ASHA, early arrivals are judged against fewer peers.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from growray.search.pareto import MODES, rank_order

__all__ = ["ParetoHalvingScheduler", "multi_fidelity", "tune_space"]

logger = logging.getLogger(__name__)


def _milestones(grace_period: float, max_t: float, reduction_factor: float) -> list[float]:
    out: list[float] = []
    t = float(grace_period)
    while t < max_t:
        out.append(int(t) if float(t).is_integer() else t)
        t *= reduction_factor
    return out


class ParetoHalvingScheduler(FIFOScheduler):
    """Asynchronous successive halving on several objectives at once.

    Rungs sit at ``grace_period * reduction_factor**k`` for every ``k`` with that value below
    ``max_t``. When a result's ``time_attr`` first reaches a rung (the highest rung at or below
    it that the trial has no record at yet), the trial's objective vector is recorded there
    and ranked against every vector recorded at that rung (the trial's own included, arrival
    order breaking ties, so incumbents win exact ties). The trial gets CONTINUE when its
    position is below ``ceil(n / reduction_factor)``, STOP otherwise. A result whose
    ``time_attr`` reaches ``max_t`` gets STOP (the trial is done), as with ASHA.

    Objectives come from the constructor, never from ``tune.TuneConfig``: Ray passes the
    TuneConfig's single metric/mode to :meth:`set_search_properties`, which accepts the call
    (returns True, so Ray does not reject the scheduler) and keeps this scheduler's lists.

    A result that reaches a rung but lacks an objective raises ``ValueError`` naming it, like
    Ray's own strict metric check (this aborts the sweep: a misnamed metric would otherwise
    rank every trial arbitrarily). Results between rungs may omit the objectives. NaN or
    infinite objective values are allowed and rank behind every finite vector (last front).

    The whole state is plain data (:attr:`state`, JSON-serialisable), so the scheduler pickles
    into Ray's ``tuner.pkl``. Ray does not checkpoint scheduler state itself: after
    ``Tuner.restore`` it starts from the state it had when the Tuner was built (as ASHA does),
    unless restored explicitly with :meth:`restore` or :meth:`from_state`.

    Args:
        metrics: the objective metric names, as reported by the trainable.
        modes: ``"min"`` or ``"max"`` for each metric.
        time_attr: monotonically increasing progress key of the results.
        max_t: trials are stopped once ``time_attr`` reaches it.
        grace_period: the first rung; no trial is stopped before it.
        reduction_factor: roughly ``1 / reduction_factor`` of the trials survive each rung.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        modes: Sequence[str],
        time_attr: str = "training_iteration",
        max_t: int = 100,
        grace_period: int = 1,
        reduction_factor: float = 2.0,
    ):
        errors = []
        if isinstance(metrics, str) or not metrics or not all(isinstance(m, str) and m for m in metrics):
            errors.append(
                f"metrics must be a non-empty list of metric names, e.g. ['val/loss', 'cost/params']; got {metrics!r}"
            )
        elif len(set(metrics)) != len(metrics):
            errors.append(f"metrics must name each metric once; got {list(metrics)}")
        if isinstance(modes, str) or not isinstance(modes, Sequence):
            errors.append(f"modes must be a list with one 'min' or 'max' per metric; got {modes!r}")
        else:
            bad = [m for m in modes if m not in MODES]
            if bad:
                errors.append(f"modes must each be 'min' or 'max'; got {bad} in {list(modes)}")
            elif not errors and len(modes) != len(metrics):
                errors.append(
                    f"give one mode per metric: {len(metrics)} metrics {list(metrics)} "
                    f"but {len(modes)} modes {list(modes)}"
                )
        if not isinstance(time_attr, str) or not time_attr:
            errors.append(f"time_attr must be a result key such as 'training_iteration'; got {time_attr!r}")
        if not max_t > 0:
            errors.append(f"max_t must be positive; got {max_t!r}")
        if not grace_period > 0:
            errors.append(f"grace_period must be positive; got {grace_period!r}")
        elif max_t > 0 and grace_period > max_t:
            errors.append(f"grace_period ({grace_period!r}) must be at most max_t ({max_t!r})")
        if not reduction_factor > 1:
            errors.append(
                f"reduction_factor must be greater than 1 (2 keeps about half per rung); got {reduction_factor!r}"
            )
        if errors:
            raise ValueError("ParetoHalvingScheduler: " + "; ".join(errors))

        super().__init__()
        self._metrics = list(metrics)
        self._modes = list(modes)
        self._time_attr = time_attr
        self._max_t = max_t
        self._grace_period = grace_period
        self._reduction_factor = float(reduction_factor)
        # One rung per milestone: trial id -> objective vector, in arrival order.
        self._rungs: list[dict[str, Any]] = [
            {"milestone": m, "recorded": {}} for m in _milestones(grace_period, max_t, self._reduction_factor)
        ]
        self._stopped: dict[str, float] = {}  # trial id -> rung milestone it was stopped at

    # -- Ray's scheduler interface -------------------------------------------------------------

    @property
    def metric(self) -> None:
        """None: Ray's single-metric result check must not apply (this scheduler checks its own)."""
        return None

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    @property
    def modes(self) -> list[str]:
        return list(self._modes)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Accept Ray's call with the TuneConfig metric/mode and keep this scheduler's own lists.

        Returning False would make Ray raise "the scheduler … was already instantiated with
        their own metric and mode"; a single TuneConfig metric (needed for
        ``get_best_result``) is compatible with ranking on several objectives.
        """
        if metric is not None and metric not in self._metrics:
            logger.debug(
                "ParetoHalvingScheduler ranks on %s; TuneConfig metric %r is not used for stopping",
                self._metrics,
                metric,
            )
        return True

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        t = result[self._time_attr]
        action = TrialScheduler.CONTINUE
        rung = self._rung_for(t)
        if rung is not None and trial.trial_id not in rung["recorded"]:
            action = self._judge(rung, trial.trial_id, self._objectives(trial, result))
            if action == TrialScheduler.STOP:
                self._stopped[trial.trial_id] = rung["milestone"]
        if t >= self._max_t:
            action = TrialScheduler.STOP
        return action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        # A trial ending on its own at a rung it was not judged at still counts as a peer there.
        if not result or self._time_attr not in result or any(m not in result for m in self._metrics):
            return
        rung = self._rung_for(result[self._time_attr])
        if rung is not None and trial.trial_id not in rung["recorded"]:
            rung["recorded"][trial.trial_id] = [float(result[m]) for m in self._metrics]

    def debug_string(self) -> str:
        objectives = ", ".join(f"{m} ({mode})" for m, mode in zip(self._metrics, self._modes))
        rungs = " | ".join(
            f"t={r['milestone']}: {len(r['recorded'])} recorded, keep {self._keep(len(r['recorded']))}"
            for r in self._rungs
        )
        return (
            f"Using ParetoHalving on {objectives}: {len(self._stopped)} stopped early; "
            f"rungs (by {self._time_attr}) {rungs or 'none'}"
        )

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> dict[str, Any]:
        """Everything the scheduler knows, as JSON-serialisable plain data (a copy)."""
        return json.loads(
            json.dumps(
                {
                    "metrics": self._metrics,
                    "modes": self._modes,
                    "time_attr": self._time_attr,
                    "max_t": self._max_t,
                    "grace_period": self._grace_period,
                    "reduction_factor": self._reduction_factor,
                    "rungs": self._rungs,
                    "stopped": self._stopped,
                }
            )
        )

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ParetoHalvingScheduler:
        """Rebuild a scheduler from :attr:`state`."""
        keys = ("metrics", "modes", "time_attr", "max_t", "grace_period", "reduction_factor")
        sched = cls(**{k: state[k] for k in keys})
        sched._load(state)
        return sched

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump(self.state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self._load(json.load(f))

    @property
    def stopped(self) -> dict[str, float]:
        """Trial id -> the rung milestone at which it was stopped early."""
        return dict(self._stopped)

    def recorded(self, milestone: float) -> dict[str, list[float]]:
        """Trial id -> objective vector recorded at the rung ``milestone``, in arrival order."""
        for rung in self._rungs:
            if rung["milestone"] == milestone:
                return {k: list(v) for k, v in rung["recorded"].items()}
        raise ValueError(f"no rung at {milestone!r}; rungs are at {[r['milestone'] for r in self._rungs]}")

    # -- internals -----------------------------------------------------------------------------

    def _load(self, state: dict[str, Any]) -> None:
        milestones = [r["milestone"] for r in self._rungs]
        if [r["milestone"] for r in state["rungs"]] != milestones or state["metrics"] != self._metrics:
            raise ValueError(
                f"state is for metrics {state['metrics']} with rungs {[r['milestone'] for r in state['rungs']]}; "
                f"this scheduler has metrics {self._metrics} with rungs {milestones}"
            )
        self._rungs = [{"milestone": r["milestone"], "recorded": dict(r["recorded"])} for r in state["rungs"]]
        self._stopped = dict(state["stopped"])

    def _keep(self, n: int) -> int:
        return math.ceil(n / self._reduction_factor)

    def _rung_for(self, t: Any) -> dict[str, Any] | None:
        """The highest rung whose milestone ``t`` has reached, or None below the first."""
        reached = [r for r in self._rungs if t >= r["milestone"]]
        return reached[-1] if reached else None

    def _objectives(self, trial: Any, result: dict) -> list[float]:
        missing = [m for m in self._metrics if m not in result]
        if missing:
            raise ValueError(
                f"ParetoHalvingScheduler: trial {trial.trial_id} reported {self._time_attr}="
                f"{result[self._time_attr]} without the objective(s) {missing}; it ranks on "
                f"{self._metrics}. Report every objective at each rung (tune.report({{...}})), or "
                f"construct the scheduler with the metric names the trainable reports. "
                f"Reported keys: {sorted(result)}"
            )
        return [float(result[m]) for m in self._metrics]

    def _judge(self, rung: dict[str, Any], trial_id: str, vector: list[float]) -> str:
        recorded = rung["recorded"]
        recorded[trial_id] = vector
        ids = list(recorded)
        order = rank_order([recorded[i] for i in ids], self._modes)
        position = order.index(ids.index(trial_id))
        keep = self._keep(len(ids))
        decision = TrialScheduler.CONTINUE if position < keep else TrialScheduler.STOP
        logger.debug(
            "ParetoHalving rung %s: trial %s %s ranks %d of %d (keep %d) -> %s",
            rung["milestone"],
            trial_id,
            vector,
            position + 1,
            len(ids),
            keep,
            decision,
        )
        return decision


def tune_space(space: dict[str, Any]) -> dict[str, Any]:
    """The experiment's flat search space (``{path: SearchParam}``) as a Ray Tune param space,
    for searchers that take Tune's domains (BOHB converts it to a ConfigSpace). Categorical
    choices are their labels, as with Optuna (the trial decodes them)."""
    from ray import tune

    out: dict[str, Any] = {}
    for path, p in space.items():
        if p.type == "categorical":
            out[path] = tune.choice(p.labels())
        elif p.type == "int":
            low, high = int(p.low), int(p.high)
            out[path] = tune.lograndint(low, high + 1) if p.log else tune.randint(low, high + 1)
        elif p.step:
            out[path] = tune.quniform(p.low, p.high, p.step)
        else:
            out[path] = tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
    return out


def multi_fidelity(
    name: str, metric: str, mode: str, max_t: int, reduction_factor: float, space: dict[str, Any], seed: int
) -> tuple[Any, Any]:
    """``(scheduler, searcher)`` of ``hyperband`` (Ray Tune's HyperBandScheduler; the searcher
    is growray's OptunaSearch, so None here) or ``bohb`` (HyperBandForBOHB with the TuneBOHB
    searcher over ``space``), with ``training_iteration`` (epochs) as the fidelity.

    HyperBand (Li et al. 2018) runs brackets of successive halving; Ray's synchronous version
    PAUSEs a trial at a rung until the rung is full and resumes the survivors from their last
    checkpoint, so a growing trial continues its grown architecture (the trial rebuilds the
    model from the checkpoint's spec, as after PBT's exploit or a crash).
    """
    from ray.tune.schedulers import HyperBandForBOHB, HyperBandScheduler

    if name == "hyperband":
        return HyperBandScheduler(time_attr="training_iteration", max_t=max_t, reduction_factor=reduction_factor), None
    from ray.tune.search.bohb import TuneBOHB

    searcher = TuneBOHB(space=tune_space(space), metric=metric, mode=mode, seed=seed)
    scheduler = HyperBandForBOHB(time_attr="training_iteration", max_t=max_t, reduction_factor=reduction_factor)
    return scheduler, searcher
