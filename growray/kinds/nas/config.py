"""The ``nas`` section: supernet search (a registered NAS method), the gap measurement, and retraining.

The supernet itself is the ``model`` section (``darts_supernet`` / ``enas_supernet``, usually
filled from ``search_spaces/darts_cnn.yaml`` or ``enas_micro.yaml`` with ``model: {space: ...}``);
the weights are trained by the ``trainer`` section; this section holds what is specific to
the architecture search.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from growray.config import Section
from growray.registry import UnknownNameError

from .methods import NAS_METHODS

__all__ = ["ControllerConfig", "NasConfig", "RetrainConfig"]


class ControllerConfig(Section):
    """ENAS controller (an LSTM trained by REINFORCE). Defaults: the official CIFAR micro search."""

    lr: StrictFloat = Field(3.5e-3, gt=0, description="Adam learning rate")
    hidden: StrictInt = Field(100, ge=1, description="LSTM hidden units")
    tanh_constant: StrictFloat = Field(1.1, gt=0, description="logits = C * tanh(logits / T)")
    op_tanh_reduce: StrictFloat = Field(2.5, gt=0, description="op logits use C / op_tanh_reduce")
    temperature: StrictFloat = Field(5.0, gt=0)
    baseline_decay: StrictFloat = Field(0.99, ge=0, lt=1, description="moving-average reward baseline")
    entropy_weight: StrictFloat = Field(1e-4, ge=0, description="entropy bonus")
    steps: StrictInt = Field(30, ge=0, description="controller updates after each epoch of shared-weight training")
    samples_per_step: StrictInt = Field(
        10, ge=1, description="architectures whose REINFORCE terms are averaged per update"
    )
    grad_clip: StrictFloat | None = Field(None, gt=0)


class RetrainConfig(Section):
    """Train the discretized architecture from scratch (the evaluation network).

    ``channels``/``layers`` default to the supernet's; DARTS' paper evaluation uses 36 and 20
    (with cutout 16, drop path 0.2 growing linearly, an auxiliary head of weight 0.4, 600
    epochs). On the NAS-Bench-201 space ``layers`` is the cells per stage. The other fields
    default to the ``trainer`` section's values.
    """

    enabled: bool = Field(False, description="retrain in the trial, after the search (else: growray retrain RUN_ID)")
    epochs: StrictInt | None = Field(None, ge=1)
    channels: StrictInt | None = Field(None, ge=1)
    layers: StrictInt | None = Field(None, ge=1)
    lr: StrictFloat | None = Field(None, gt=0, le=10)
    batch_size: StrictInt | None = Field(None, ge=1)
    weight_decay: StrictFloat | None = Field(None, ge=0)
    drop_path: StrictFloat = Field(0.0, ge=0, lt=1, description="drop-path probability in the evaluation network")
    drop_path_schedule: Literal["constant", "linear"] = Field(
        "constant", description="linear: drop path grows from 0 to drop_path over the epochs (DARTS' train.py)"
    )
    auxiliary_weight: StrictFloat = Field(
        0.0, ge=0, description="loss weight of an auxiliary head after the 2nd reduction cell (DARTS: 0.4; 0: none)"
    )
    cutout: StrictInt | None = Field(
        None, ge=0, description="data.augment.cutout of the retraining (DARTS: 16); None keeps the search's"
    )
    seed: StrictInt | None = Field(
        None, description="initial weights of the retrained network (default: the experiment's seed)"
    )


class NasConfig(Section):
    """Architecture search on a supernet (DARTS, GDAS, PC-DARTS, ENAS), with the relaxed-vs-discretized gap."""

    method: str = Field(description="the NAS method: a name registered in NAS_METHODS (darts, gdas, pcdarts, enas)")
    # --- DARTS
    order: Literal[1, 2] = Field(1, description="DARTS: 1 first-order, 2 second-order (unrolled) architecture gradient")
    arch_lr: StrictFloat = Field(3e-4, gt=0, description="DARTS: Adam learning rate of alpha")
    arch_betas: tuple[StrictFloat, StrictFloat] = Field((0.5, 0.999), description="DARTS: Adam betas of alpha")
    arch_weight_decay: StrictFloat = Field(1e-3, ge=0, description="DARTS: weight decay of alpha")
    arch_grad_clip: StrictFloat | None = Field(None, gt=0, description="DARTS: clip alpha's gradient norm")
    warmup_epochs: StrictInt = Field(0, ge=0, description="DARTS: epochs of weight-only training before alpha steps")
    # --- both
    arch_split: StrictFloat = Field(
        0.5,
        gt=0,
        lt=1,
        description="share of the training split held out for architecture steps (DARTS) / controller rewards (ENAS)",
    )
    eval_every_epochs: StrictInt = Field(
        1, ge=1, description="measure the relaxed/discrete gap every N epochs (and at the end)"
    )
    bn_calibration_batches: StrictInt = Field(
        4, ge=1, description="training batches that recalibrate BatchNorm statistics of the discretized network"
    )
    early_stop_skips: StrictInt | None = Field(
        None, ge=1, description="DARTS+: stop the search when the normal cell holds this many skip_connect (e.g. 2)"
    )
    # --- ENAS
    controller: ControllerConfig = Field(default_factory=ControllerConfig)
    derive_samples: StrictInt = Field(
        100, ge=1, description="ENAS: cells sampled and scored on a validation batch to derive one"
    )
    # --- after the search
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    # --- the method's own settings: ``nas.<method>: {...}`` in a file (see _method_settings)
    settings: SerializeAsAny[Section] | None = Field(
        None, description="the settings model a NAS method registers, if any"
    )

    @classmethod
    def file_keys(cls) -> list[str]:
        """Every field but ``settings``, which a file gives as ``nas.<method>``."""
        return sorted(k for k in cls.model_fields if k != "settings")

    @classmethod
    def subsection_model(cls, key: str) -> type[Section] | None:
        """``nas.<key>``: the settings model of the NAS method ``key``, if it registers one."""
        if key in NAS_METHODS:
            model: type[Section] | None = NAS_METHODS.get(key).capability("settings")
            return model
        return None

    @model_validator(mode="before")
    @classmethod
    def _method_settings(cls, data: Any) -> Any:
        """``nas: {method: m, m: {...}}`` -> ``settings``: the method's own settings model, when it
        registers one (``settings=`` capability), validated with errors at ``nas.m.<key>``."""
        if not isinstance(data, dict) or not isinstance(data.get("method"), str):
            return data
        if "settings" in data:
            if isinstance(data["settings"], Section | None):  # a validated config, re-validated
                return data
            raise ValueError("'settings' is not a key of the nas section: a method's settings go under nas.<method>")
        method = data["method"]
        model = cls.subsection_model(method)
        if model is None:
            return data
        data = dict(data)
        raw = data.pop(method, None)
        try:
            data["settings"] = raw if isinstance(raw, model) else model.model_validate(raw or {})
        except ValidationError as exc:
            errors: list[Any] = [
                {k: v for k, v in {**e, "loc": (method, *e["loc"])}.items() if k in ("type", "loc", "input", "ctx")}
                for e in exc.errors()
            ]
            raise ValidationError.from_exception_data(exc.title, errors) from None
        return data

    @model_serializer(mode="wrap")
    def _settings_under_the_method(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        settings = out.pop("settings", None)
        if settings is not None:
            out[self.method] = settings
        return out

    @field_validator("method")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in NAS_METHODS:  # a ValueError, so pydantic reports it with its path
            raise ValueError(str(UnknownNameError("NAS method", v, NAS_METHODS.names())))
        return v

    @model_validator(mode="after")
    def _check(self) -> NasConfig:
        b1, b2 = self.arch_betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"arch_betas must both be in [0, 1); got {list(self.arch_betas)}")
        return self
