"""YAML -> validated Experiment, reporting every problem at once with its YAML path.

Pipeline: read (``yaml.safe_load``, duplicate keys rejected) -> resolve ``search.space``
file references -> validate plug-in sections against their registries -> pydantic ->
cross-field checks (search metric, search-space paths and bounds, resources).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from growray.metrics import KNOWN_METRICS, METRIC_PREFIXES, is_known_metric
from growray.registry import closest

from ._errors import ConfigError, ConfigIssue, format_path
from ._models import Experiment, SearchParam
from ._plugins import validate_plugin

__all__ = [
    "PLUGIN_PATHS",
    "apply_overrides",
    "get_path",
    "load_experiment",
    "load_yaml",
    "resolve_space_file",
    "validate_dict",
]


def _registries() -> dict[str, tuple[Any, bool]]:
    """Plug-in section path -> (registry, build once at validate time)."""
    import growray.nas  # noqa: F401  registers the supernet and cell-network models
    from growray.data import DATASETS
    from growray.growth import DEEPENERS, INITIALIZERS, TRIGGERS
    from growray.models import MODELS
    from growray.search.samplers import SAMPLERS

    return {
        "data": (DATASETS, False),
        "model": (MODELS, False),
        "growth.trigger": (TRIGGERS, True),
        "growth.initializer": (INITIALIZERS, True),
        "growth.deepen": (DEEPENERS, True),
        "search.sampler": (SAMPLERS, False),
    }


PLUGIN_PATHS = ("data", "model", "growth.trigger", "growth.initializer", "growth.deepen", "search.sampler")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; syntax errors become a ConfigError with line and column."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(where, f"YAML syntax error: {problem}")]) from None


def _space_candidates(ref: str, base_dir: Path | None) -> list[Path]:
    names = [ref] if Path(ref).suffix in (".yaml", ".yml") else [ref, f"{ref}.yaml", f"{ref}.yml"]
    # search_spaces/ folders first, so a space named like its experiment file finds the space
    roots: list[Path] = []
    if base_dir is not None:
        roots += [base_dir / "search_spaces", base_dir.parent / "search_spaces"]
    roots += [Path.cwd() / "search_spaces"]
    if base_dir is not None:
        roots += [base_dir, base_dir.parent]
    roots += [Path.cwd()]
    out: list[Path] = []
    for root in roots:
        for name in names:
            p = (root / name).resolve()
            if p not in out:
                out.append(p)
    return out


def resolve_space_file(ref: str, base_dir: Path | None, exclude: Path | None = None) -> tuple[Path | None, list[Path]]:
    """Find a search-space file by name or path (never ``exclude``, the experiment file itself)."""
    candidates = [p for p in _space_candidates(ref, base_dir) if exclude is None or p != exclude.resolve()]
    for p in candidates:
        if p.is_file():
            return p, candidates
    return None, candidates


def get_path(d: Any, parts: list[str]) -> tuple[bool, Any]:
    cur = d
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted-path values in a copy of ``raw``.

    Setting a plug-in's ``name`` to a different plug-in (``growth.trigger.name: plateau``)
    starts that section afresh: the base file's parameters belonged to the old plug-in.
    Other overrides under the section are applied after, so they survive.
    """
    out = copy.deepcopy(raw)
    ordered = sorted(overrides.items(), key=lambda kv: not kv[0].endswith(".name"))
    for path, value in ordered:
        parts = path.split(".")
        if parts[-1] == "name" and ".".join(parts[:-1]) in PLUGIN_PATHS:
            found, section = get_path(out, parts[:-1])
            if not found or not isinstance(section, dict) or section.get("name") != value:
                _set(out, parts[:-1], {"name": value})
            continue
        _set(out, parts, value)
    return out


def _set(d: dict[str, Any], parts: list[str], value: Any) -> None:
    cur: Any = d
    for part in parts[:-1]:
        if isinstance(cur, list) and part.isdigit():
            cur = cur[int(part)]
            continue
        if not isinstance(cur.get(part), (dict, list)):
            cur[part] = {}
        cur = cur[part]
    last = parts[-1]
    if isinstance(cur, list) and last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value


def _pydantic_issues(exc: ValidationError) -> list[ConfigIssue]:
    issues = []
    for err in exc.errors():
        # pydantic reports union branches and validators as extra path elements; keep the user's path.
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and (p.startswith(("function-", "dict[")) or p == "str"))
        )
        if err["type"] == "extra_forbidden":
            issues.append(ConfigIssue(format_path(loc), "unknown key" + _key_hint(loc)))
        elif err["type"] == "missing":
            issues.append(ConfigIssue(format_path(loc), "required key is missing"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            issues.append(ConfigIssue(format_path(loc), msg, err.get("input")))
    return issues


def _key_hint(loc: tuple[Any, ...]) -> str:
    """' (accepted: ...; did you mean ...?)' for an unknown key at ``loc``."""
    from ._models import (
        CostsConfig,
        GrowthConfig,
        LatencyConfig,
        NewbornDiagnosticsConfig,
        ResourcesConfig,
        SchedulerConfig,
        SearchConfig,
        TrackingConfig,
        TrainerConfig,
    )

    sections = {
        (): Experiment,
        ("trainer",): TrainerConfig,
        ("growth",): GrowthConfig,
        ("growth", "diagnostics"): NewbornDiagnosticsConfig,
        ("search",): SearchConfig,
        ("search", "scheduler"): SchedulerConfig,
        ("resources",): ResourcesConfig,
        ("tracking",): TrackingConfig,
        ("costs",): CostsConfig,
        ("costs", "latency"): LatencyConfig,
    }
    model = sections.get(tuple(loc[:-1]))
    if model is None:
        return ""
    accepted = sorted(model.model_fields)
    hint = closest(str(loc[-1]), accepted)
    return f"; accepted: {', '.join(accepted)}" + (f" (did you mean {hint!r}?)" if hint else "")


def validate_dict(
    raw: Any, *, source: str | None = None, base_dir: Path | None = None, check_space: bool = True
) -> Experiment:
    """Validate a parsed experiment mapping; raise ConfigError listing every issue."""
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("<root>", "an experiment file is a YAML mapping", raw)], source)
    raw = copy.deepcopy(raw)
    issues: list[ConfigIssue] = []

    # 1. search.space given as a file reference
    search = raw.get("search")
    if isinstance(search, dict) and isinstance(search.get("space"), str):
        ref = search["space"]
        found, searched = resolve_space_file(ref, base_dir, Path(source) if source else None)
        if found is None:
            issues.append(
                ConfigIssue(
                    "search.space", "search-space file not found; looked in: " + ", ".join(map(str, searched)), ref
                )
            )
            search["space"] = {}
        else:
            try:
                loaded = load_yaml(found)
            except ConfigError as exc:
                issues += exc.issues
                loaded = {}
            if isinstance(loaded, dict) and set(loaded) == {"space"}:
                loaded = loaded["space"]
            if not isinstance(loaded, dict):
                issues.append(ConfigIssue("search.space", f"{found} must hold a mapping of parameter paths", ref))
                loaded = {}
            search["space"] = loaded

    # 1b. a model section that starts from an architecture space file (search_spaces/darts_cnn.yaml)
    model_section = raw.get("model")
    if isinstance(model_section, dict) and "space" in model_section:
        issues += _include_model_space(raw, model_section, base_dir, Path(source) if source else None)

    # 2. plug-in sections
    for path, (registry, construct) in _registries().items():
        parts = path.split(".")
        found, section = get_path(raw, parts)
        if not found or section is None:
            continue
        normalized, plugin_issues = validate_plugin(section, registry, tuple(parts), construct=construct)
        issues += plugin_issues
        if normalized is not None:
            _set(raw, parts, normalized)
        else:  # keep pydantic from repeating the error; the issue is already recorded
            _set(raw, parts, {"name": "__invalid__"})

    # 3. types, ranges, unknown keys
    exp: Experiment | None = None
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as exc:
        issues += _pydantic_issues(exc)

    # 4. cross-field checks
    if exp is not None and not issues:
        issues += _check_semantics(exp, check_space=check_space)
    elif isinstance(raw.get("search"), dict):
        issues += _check_metric(raw["search"].get("metric", "val/acc"))
        if check_space and isinstance(raw["search"].get("space"), dict):
            issues += _static_space_checks(raw["search"]["space"])

    if issues:
        raise ConfigError(_dedupe(issues), source)
    assert exp is not None
    return exp


def _include_model_space(
    raw: dict[str, Any], section: dict[str, Any], base_dir: Path | None, exclude: Path | None
) -> list[ConfigIssue]:
    """``model: {space: darts_cnn, channels: 8}``: the file's ``model`` mapping, then the keys
    given next to ``space`` on top of it."""
    ref = section["space"]
    if not isinstance(ref, str):
        return [ConfigIssue("model.space", "the name of an architecture-space file in search_spaces/", ref)]
    found, searched = resolve_space_file(ref, base_dir, exclude)
    if found is None:
        raw["model"] = {k: v for k, v in section.items() if k != "space"}
        return [
            ConfigIssue(
                "model.space", "architecture-space file not found; looked in: " + ", ".join(map(str, searched)), ref
            )
        ]
    try:
        loaded = load_yaml(found)
    except ConfigError as exc:
        return exc.issues
    if not isinstance(loaded, dict) or not isinstance(loaded.get("model"), dict):
        return [ConfigIssue("model.space", f"{found} must hold a 'model' mapping (an architecture space)", ref)]
    unknown = sorted(set(loaded) - {"model", "description"})
    if unknown:
        return [
            ConfigIssue("model.space", f"{found}: unknown top-level keys {unknown}; accepted: model, description", ref)
        ]
    raw["model"] = {**loaded["model"], **{k: v for k, v in section.items() if k != "space"}}
    return []


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    for issue in issues:
        if issue not in out:
            out.append(issue)
    return out


def _check_metric(metric: Any) -> list[ConfigIssue]:
    if not isinstance(metric, str) or is_known_metric(metric):
        return []
    valid = sorted(KNOWN_METRICS) + [p + "<site>" for p in METRIC_PREFIXES]
    hint = closest(metric, sorted(KNOWN_METRICS))
    msg = "not a metric that trials report; accepted: " + ", ".join(valid)
    if hint:
        msg += f" (did you mean {hint!r}?)"
    return [ConfigIssue("search.metric", msg, metric)]


def _check_semantics(exp: Experiment, *, check_space: bool) -> list[ConfigIssue]:
    issues = _check_metric(exp.search.metric)
    for i, o in enumerate(exp.search.objectives):
        issues += [ConfigIssue(f"search.objectives[{i}].metric", x.message, x.value) for x in _check_metric(o.metric)]
    for i, c in enumerate(exp.search.constraints):
        issues += [ConfigIssue(f"search.constraints[{i}].metric", x.message, x.value) for x in _check_metric(c.metric)]
    issues += _check_sampler_support(exp)
    if exp.resources.gpu > 0 and exp.trainer.device == "cpu":
        issues.append(
            ConfigIssue(
                "resources.gpu",
                "trials ask Ray for a GPU but trainer.device is 'cpu'; set one of them",
                exp.resources.gpu,
            )
        )
    if exp.growth is not None and exp.growth.max_width is not None:
        hidden = exp.model.get("hidden")
        if isinstance(hidden, list) and hidden and max(hidden) > exp.growth.max_width:
            issues.append(
                ConfigIssue(
                    "growth.max_width",
                    f"smaller than the initial width {max(hidden)} of model.hidden; use >= {max(hidden)}",
                    exp.growth.max_width,
                )
            )
    if exp.growth is not None:
        issues += _check_growth_against_model(exp)
    if exp.nas is not None:
        issues += _check_nas(exp)
    if exp.plasticity is not None:
        issues += _check_plasticity(exp)
    if check_space and isinstance(exp.search.space, dict):
        # Branch checks re-validate the base: on an invalid base they would repeat its errors.
        if issues:
            issues += _static_space_checks(exp.to_dict()["search"]["space"])
        else:
            issues += _check_space(exp)
    return issues


def _check_growth_against_model(exp: Experiment) -> list[ConfigIssue]:
    """Build the model on the meta device (no memory, no compute) and check the growth
    settings against its real sites and layer sizes: unknown sites, and initializers that
    cannot grow a site (e.g. ``north_weight`` needs width < fan-in)."""
    import torch

    from growray.data import describe_dataset
    from growray.growth import DEEPENERS, INITIALIZERS, TRIGGERS, SiteLimits
    from growray.models import MODELS

    assert exp.growth is not None
    shape = describe_dataset(exp.data)
    if shape is None:
        return []
    try:
        with torch.device("meta"):
            model = MODELS.build(exp.model, input_shape=shape[0], n_classes=shape[1])
    except (ValueError, TypeError) as exc:
        return [ConfigIssue("model", f"cannot be built for {exp.data['name']} inputs {shape[0]}: {exc}")]
    sites = model.sites()
    issues = []
    unknown = [s for s in exp.growth.sites or [] if s not in sites]
    if unknown:
        issues.append(
            ConfigIssue("growth.sites", f"not sites of this model; its sites are {', '.join(sites)}", unknown)
        )
    grown = [s for s in exp.growth.sites or sites if s in sites]
    initializer = INITIALIZERS.build(exp.growth.initializer)
    trigger = TRIGGERS.build(exp.growth.trigger)
    deepener = DEEPENERS.build(exp.growth.deepen) if exp.growth.deepen is not None else None
    limits = SiteLimits(exp.growth.max_width, exp.growth.max_depth, exp.growth.buffer_size)
    for site in grown:
        if deepener is not None and (reason := deepener.check_site(model, site, limits)):
            issues.append(
                ConfigIssue(
                    "growth.deepen.name", f"cannot deepen after site {site}: {reason}", exp.growth.deepen["name"]
                )
            )
        if reason := initializer.check_site(model, site, limits):
            issues.append(
                ConfigIssue(
                    "growth.initializer.name", f"cannot grow site {site}: {reason}", exp.growth.initializer["name"]
                )
            )
        if reason := trigger.check_site(model, site, limits):
            issues.append(
                ConfigIssue("growth.trigger.name", f"cannot watch site {site}: {reason}", exp.growth.trigger["name"])
            )
    return _dedupe(issues)


def _check_nas(exp: Experiment) -> list[ConfigIssue]:
    import torch

    from growray.data import describe_dataset
    from growray.models import MODELS

    from ._nas import SUPERNETS

    assert exp.nas is not None
    issues = []
    want = SUPERNETS[exp.nas.method]
    if exp.model["name"] != want:
        issues.append(
            ConfigIssue(
                "model.name",
                f"nas.method {exp.nas.method!r} searches a {want!r} model "
                f"(e.g. model: {{space: {'darts_cnn' if want == 'darts_supernet' else 'enas_micro'}}})",
                exp.model["name"],
            )
        )
    if exp.growth is not None:
        issues.append(
            ConfigIssue("growth", "a trial either grows a network or searches a supernet: remove growth or nas", "set")
        )
    shape = describe_dataset(exp.data)
    if shape is not None and not issues:
        try:
            with torch.device("meta"):
                MODELS.build(exp.model, input_shape=shape[0], n_classes=shape[1])
        except (ValueError, TypeError) as exc:
            hint = " (digits: set data.image: true)" if exp.data["name"] == "digits" and len(shape[0]) == 1 else ""
            issues.append(
                ConfigIssue("model", f"cannot be built for {exp.data['name']} inputs {shape[0]}: {exc}{hint}")
            )
    if exp.nas.warmup_epochs >= exp.trainer.epochs:
        issues.append(
            ConfigIssue(
                "nas.warmup_epochs",
                f"must be below trainer.epochs ({exp.trainer.epochs}), or no architecture step ever happens",
                exp.nas.warmup_epochs,
            )
        )
    return issues


def _check_plasticity(exp: Experiment) -> list[ConfigIssue]:
    p = exp.plasticity
    assert p is not None
    issues = []
    if exp.trainer.epochs % p.cycles:
        issues.append(
            ConfigIssue(
                "plasticity.cycles",
                f"trainer.epochs ({exp.trainer.epochs}) must be a multiple of the "
                f"cycles; e.g. trainer.epochs: {p.cycles * max(1, exp.trainer.epochs // p.cycles)}",
                p.cycles,
            )
        )
    for other in ("growth", "nas"):
        if getattr(exp, other) is not None:
            issues.append(
                ConfigIssue(
                    other,
                    f"the Grow-vs-Prune protocol edits unit masks of a fixed network: remove {other} or plasticity",
                    "set",
                )
            )
    if exp.model["name"] != "mlp":
        issues.append(
            ConfigIssue("model.name", "plasticity edits the hidden units of an 'mlp' model", exp.model["name"])
        )
    elif p.sites is not None:
        hidden = exp.model.get("hidden", [32])
        known = [f"hidden.{i}" for i in range(len(hidden))]
        unknown = [s for s in p.sites if s not in known]
        if unknown:
            issues.append(
                ConfigIssue("plasticity.sites", f"not sites of this model; its sites are {', '.join(known)}", unknown)
            )
    return issues


def _static_space_checks(space: dict[str, Any]) -> list[ConfigIssue]:
    """Checks that need no valid base experiment: section and key names, plug-in choices."""
    from ._models import GrowthConfig, ResourcesConfig, TrainerConfig
    from ._nas import NasConfig
    from ._plasticity import PlasticityConfig

    sections = {
        "trainer": TrainerConfig,
        "growth": GrowthConfig,
        "resources": ResourcesConfig,
        "nas": NasConfig,
        "plasticity": PlasticityConfig,
    }
    registries = _registries()
    issues: list[ConfigIssue] = []
    for key, param in space.items():
        where = format_path(("search", "space", key))
        parts = str(key).split(".")
        if parts[0] not in Experiment.model_fields:
            hint = closest(parts[0], sorted(Experiment.model_fields))
            issues.append(
                ConfigIssue(
                    where,
                    f"{parts[0]!r} is not a section of the experiment" + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
            continue
        model = sections.get(parts[0])
        if model is not None and len(parts) == 2 and parts[1] not in model.model_fields:
            hint = closest(parts[1], sorted(model.model_fields))
            issues.append(
                ConfigIssue(
                    where,
                    f"{parts[0]} has no key {parts[1]!r}; accepted: {', '.join(sorted(model.model_fields))}"
                    + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
            continue
        section = ".".join(parts[:-1])
        if parts[-1] == "name" and section in registries and isinstance(param, dict):
            registry = registries[section][0]
            for choice in param.get("choices") or []:
                if choice not in registry:
                    hint = closest(str(choice), registry.names())
                    issues.append(
                        ConfigIssue(
                            f"{where}.choices",
                            f"unknown {registry.kind}; registered: {', '.join(registry.names())}"
                            + (f" (did you mean {hint!r}?)" if hint else ""),
                            choice,
                        )
                    )
    return issues


def _check_sampler_support(exp: Experiment) -> list[ConfigIssue]:
    """Samplers that cannot handle several objectives or constraints are rejected with the reason."""
    from growray.search.samplers import SAMPLERS

    name = exp.search.sampler["name"]
    entry = SAMPLERS.get(name)
    CONSTRAINED_SAMPLERS = SAMPLERS.names(constraints=True)
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
    if entry.capability("discrete") and isinstance(exp.search.space, dict):
        for key, p in exp.search.space.items():
            if p.type == "float" and p.step is None:
                issues.append(
                    ConfigIssue(
                        f"search.space.{key}",
                        f"sampler {name!r} enumerates a grid: give this float "
                        "parameter a 'step', or make it categorical",
                        "no step",
                    )
                )
        size = _grid_size(exp.search.space)
        if size is not None and exp.search.num_samples > size:
            issues.append(
                ConfigIssue(
                    "search.num_samples",
                    f"the grid has {size} points; more trials would repeat points: use num_samples <= {size}",
                    exp.search.num_samples,
                )
            )
    if exp.search.constraints and name not in CONSTRAINED_SAMPLERS:
        issues.append(
            ConfigIssue(
                "search.sampler.name",
                f"{name!r} ignores constraints (it samples without looking at trial results); "
                f"use one of: {', '.join(CONSTRAINED_SAMPLERS)}",
                name,
            )
        )
    return issues


def _grid_size(space: dict[str, SearchParam]) -> int | None:
    """Points of an unconditional discrete grid (None when conditional or not discrete)."""
    size = 1
    for p in space.values():
        if p.when:
            return None
        if p.type == "categorical":
            size *= len(p.choices or [])
        elif p.type == "int":
            size *= (int(p.high) - int(p.low)) // int(p.step or 1) + 1  # type: ignore[arg-type]
        elif p.step is not None:
            size *= int(round((p.high - p.low) / p.step)) + 1  # type: ignore[operator]
        else:
            return None
    return size


def _candidate_values(p: SearchParam) -> list[Any]:
    if p.type == "categorical":
        return list(p.choices or [])
    if p.type == "int":
        return [int(p.low), int(p.high)]  # type: ignore[arg-type]
    return [p.low, p.high]


def _check_space(exp: Experiment) -> list[ConfigIssue]:
    """Every searched path must exist, and every bound/choice must give a valid experiment."""
    issues: list[ConfigIssue] = []
    base = exp.to_dict()
    space: dict[str, SearchParam] = exp.search.space  # type: ignore[assignment]
    seen: list[str] = []
    for key, param in space.items():
        where = ("search", "space", key)
        if not key or any(not part for part in key.split(".")):
            issues.append(
                ConfigIssue(format_path(where), "a parameter is a dotted path into the experiment, e.g. trainer.lr")
            )
            continue
        if key.split(".")[0] in ("search", "tracking", "name", "output_dir"):
            issues.append(
                ConfigIssue(format_path(where), "this section cannot be searched (it describes the sweep itself)")
            )
            continue
        conditions: dict[str, Any] = {}
        for cond_path, cond_value in (param.when or {}).items():
            cond_where = format_path(where + ("when", cond_path))
            if cond_path not in seen and not get_path(base, cond_path.split("."))[0]:
                issues.append(
                    ConfigIssue(
                        cond_where, "a condition refers to an earlier search parameter or an existing config path"
                    )
                )
                continue
            conditions[cond_path] = cond_value[0] if isinstance(cond_value, list) and cond_value else cond_value
        for value in _candidate_values(param):
            trial = {**conditions, key: value}
            try:
                validate_dict(apply_overrides(base, trial), check_space=False)
            except ConfigError as exc:
                for inner in exc.issues:
                    issues.append(
                        ConfigIssue(format_path(where), f"with {key}={value!r}: {inner.path}: {inner.message}")
                    )
                break
        seen.append(key)
    return issues


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read, resolve and validate an experiment file (plus optional ``--set`` overrides)."""
    path = Path(path)
    raw = load_yaml(path)
    if overrides and isinstance(raw, dict):
        raw = apply_overrides(raw, overrides)
    return validate_dict(raw, source=str(path), base_dir=path.resolve().parent)
