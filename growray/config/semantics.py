"""Cross-field checks of a typed experiment: metrics, sampler support, resources, and
each active kind's own checks (``Kind.check``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from growray.metrics import is_known_metric, known_metrics
from growray.registry import closest

from .errors import ConfigIssue
from .space_checks import check_space, grid_size, static_space_checks

if TYPE_CHECKING:
    from growray.kinds import Kind

    from .experiment import Experiment

__all__ = ["check_experiment", "check_metric"]


def check_metric(metric: Any, kinds: Iterable[Kind[Any]], where: str = "search.metric") -> list[ConfigIssue]:
    """``metric`` must be one that trials of these kinds report."""
    if not isinstance(metric, str):
        return []
    names, prefixes = known_metrics(kinds)
    if is_known_metric(metric, names, prefixes):
        return []
    valid = sorted(names) + [p + "<site>" for p in sorted(prefixes)]
    hint = closest(metric, sorted(names))
    msg = "not a metric that trials of this experiment report; accepted: " + ", ".join(valid)
    if hint:
        msg += f" (did you mean {hint!r}?)"
    return [ConfigIssue(where, msg, metric)]


def check_experiment(exp: Experiment, *, check_space_bounds: bool) -> list[ConfigIssue]:
    """Everything a valid schema does not guarantee; ``check_space_bounds`` also validates the
    experiment at every bound and choice of the search space (skipped for one trial's config)."""
    from growray.kinds import active_kinds

    active = active_kinds(exp)
    kinds = [kind for kind, _ in active]
    issues = check_metric(exp.search.metric, kinds)
    for i, o in enumerate(exp.search.objectives):
        issues += check_metric(o.metric, kinds, f"search.objectives[{i}].metric")
    for i, c in enumerate(exp.search.constraints):
        issues += check_metric(c.metric, kinds, f"search.constraints[{i}].metric")
    issues += _check_sampler_support(exp)
    if exp.resources.gpu > 0 and exp.trainer.device == "cpu":
        issues.append(
            ConfigIssue(
                "resources.gpu",
                "trials ask Ray for a GPU but trainer.device is 'cpu'; set one of them",
                exp.resources.gpu,
            )
        )
    issues += _check_store_folder(exp.tracking.uri)
    data_issues = _check_data(exp)
    issues += data_issues
    if not data_issues:  # kinds build the model from the dataset's shape
        for kind, cfg in active:
            issues += kind.check(exp, cfg)
    if check_space_bounds:
        # Branch checks re-validate the base: on an invalid base they would repeat its errors.
        if issues:
            issues += static_space_checks(exp.to_dict()["search"]["space"])
        else:
            issues += check_space(exp)
    return issues


def _check_store_folder(uri: str) -> list[ConfigIssue]:
    """A sqlite store's folder must exist or be creatable, and be writable."""
    import os
    from pathlib import Path

    if not uri.startswith("sqlite:///"):
        return []
    path = Path(uri[len("sqlite:///") :].split("?", 1)[0]).expanduser()
    if str(path) in ("", ":memory:"):
        return []
    folder = path.resolve().parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [
            ConfigIssue(
                "tracking.uri",
                f"cannot write the MLflow store here: {existing or folder} is not a writable folder",
                uri,
            )
        ]
    if path.exists() and not os.access(path, os.W_OK):
        return [ConfigIssue("tracking.uri", f"the MLflow store {path} is read-only", uri)]
    return []


def _check_data(exp: Experiment) -> list[ConfigIssue]:
    """The dataset's own checks that need no files (its ``describe`` capability: parameter
    ranges, that a given ``root`` exists), at ``data.<parameter>``."""
    from growray.data import describe_dataset

    try:
        describe_dataset(exp.data)
    except (ValueError, TypeError) as exc:
        first = str(exc).split(" ", 1)[0].strip(":")
        return [ConfigIssue(f"data.{first}" if first in exp.data else "data", str(exc))]
    return []


def _check_sampler_support(exp: Experiment) -> list[ConfigIssue]:
    """Samplers that cannot handle several objectives, constraints or a continuous space are
    rejected with the reason and the samplers that can."""
    from growray.search.samplers import SAMPLERS

    name = exp.search.sampler["name"]
    entry = SAMPLERS.get(name)
    issues = []
    if exp.search.multi_objective and not entry.capability("multi_objective"):
        issues.append(
            ConfigIssue(
                "search.sampler.name",
                f"{name!r} optimizes one objective; for search.objectives use one of: "
                + ", ".join(SAMPLERS.names(multi_objective=True)),
                name,
            )
        )
    if entry.capability("discrete"):
        for key, p in exp.search.space.items():
            if p.type == "float" and p.step is None:
                issues.append(
                    ConfigIssue(
                        f"search.space.{key}",
                        f"sampler {name!r} enumerates a grid: give this float parameter a 'step', or make it categorical",
                        "no step",
                    )
                )
        size = grid_size(exp.search.space)
        if size is not None and exp.search.num_samples > size:
            issues.append(
                ConfigIssue(
                    "search.num_samples",
                    f"the grid has {size} points; more trials would repeat points: use num_samples <= {size}",
                    exp.search.num_samples,
                )
            )
    constrained = SAMPLERS.names(constraints=True)
    if exp.search.constraints and name not in constrained:
        issues.append(
            ConfigIssue(
                "search.sampler.name",
                f"{name!r} ignores constraints (it samples without looking at trial results); "
                f"use one of: {', '.join(constrained)}",
                name,
            )
        )
    return issues
