"""The typed experiment: the core sections plus the sections of the active experiment kinds.

In a file, a kind's section is a top-level key (``growth:``, ``nas:``); in the model the
sections of the kinds that are set live in ``Experiment.kinds`` (``exp.kinds["growth"]``,
or typed: ``growray.kinds.get_kind("growth").config(exp)``). ``to_dict`` writes them back
at the top level, after ``trainer``, with ``null`` for every registered kind that is not
set, so the resolved config reads like the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    StrictInt,
    model_serializer,
    model_validator,
)

from .schema import (
    AugmentConfig,
    CostsConfig,
    PluginDict,
    ResourcesConfig,
    SearchConfig,
    Section,
    TrackingConfig,
    TrainerConfig,
)

__all__ = ["CORE_SECTIONS", "Experiment", "kind_names", "recorded_where"]


def kind_names() -> list[str]:
    """The registered experiment kinds (every plug-in loaded first)."""
    from growray.kinds import KINDS
    from growray.plugins import load_plugins

    load_plugins()
    return KINDS.names()


def _section_model(name: str) -> type[Section]:
    from growray.kinds import get_kind

    return get_kind(name).section


class Experiment(Section):
    """One experiment file, fully resolved."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: StrictInt = Field(0, ge=0, description="data split, initial weights, data order, sampler")
    output_dir: str = Field("runs", description="sweeps write into <output_dir>/<name>/")
    data: PluginDict
    model: PluginDict
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    kinds: dict[str, SerializeAsAny[Section]] = Field(
        default_factory=dict, description="the sections of the active experiment kinds, by kind name"
    )
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, description="data.augment in a file (a key common to every dataset)"
    )

    @model_validator(mode="before")
    @classmethod
    def _augment_from_data(cls, data: Any) -> Any:
        """``data: {name: ..., augment: {...}}`` -> ``augment``: the dataset's own parameters stay
        in ``data`` (checked against its signature), augmentation is one typed section."""
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "augment" in data["data"]:
            data = dict(data)
            section = dict(data["data"])
            data["augment"] = section.pop("augment")
            data["data"] = section
        return data

    @model_validator(mode="before")
    @classmethod
    def _collect_kind_sections(cls, data: Any) -> Any:
        """Top-level kind sections -> ``kinds``; a mapping is validated by its kind's model
        (``validate_dict`` validates them first, to report their errors with their paths)."""
        if not isinstance(data, dict) or "kinds" in data:
            return data
        data = dict(data)
        sections: dict[str, Any] = {}
        for name in kind_names():
            value = data.pop(name, None)
            if value is None:
                continue
            model = _section_model(name)
            sections[name] = value if isinstance(value, model) else model.model_validate(value)
        data["kinds"] = sections
        return data

    @model_serializer(mode="wrap")
    def _kinds_at_top_level(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = {}
        dumped = handler(self)
        augment = dumped.pop("augment", None)
        for key, value in dumped.items():
            if key == "data" and isinstance(value, dict):
                out[key] = {**value, "augment": augment}
            elif key == "kinds":
                for name in kind_names():
                    out[name] = value.get(name)
            else:
                out[key] = value
        return out

    @property
    def kind(self) -> str:
        """Value of the ``growray.kind`` tag: the active kinds' tags joined by ``+``, or ``static``."""
        from growray.kinds import kind_tag

        return kind_tag(self)

    def section(self, name: str) -> Section | None:
        """The section of kind ``name``, or None when the experiment does not set it."""
        return self.kinds.get(name)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain JSON types, kind sections at the top level."""
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> Experiment:
        """A new, fully re-validated experiment with dotted-path values replaced (one trial's params)."""
        from .overrides import apply_overrides
        from .validate import validate_dict

        space = self.search.space  # Optuna's labels of list-valued choices -> the lists
        overrides = {k: space[k].decode(v) if k in space else v for k, v in overrides.items()}
        return validate_dict(apply_overrides(self.to_dict(), overrides), check_space=False)


#: top-level keys of an experiment file besides the kind sections
CORE_SECTIONS: tuple[str, ...] = tuple(k for k in Experiment.model_fields if k not in ("kinds", "augment"))


def recorded_where(path: Path) -> tuple[str, str] | None:
    """``(MLflow experiment name, tracking URI)`` of an experiment file from its ``name`` and
    ``tracking`` sections alone, as ``Experiment.experiment_name`` and ``tracking.uri`` give
    them; None when those do not validate. A store query (``growray pareto FILE``) needs no
    more, and validating the whole file imports every plug-in (torch with them)."""
    from pydantic import ValidationError

    from .files import load_yaml

    raw = load_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        return None
    try:
        tracking = TrackingConfig.model_validate(raw.get("tracking") or {})
    except ValidationError:
        return None
    return tracking.experiment or raw["name"], tracking.uri
