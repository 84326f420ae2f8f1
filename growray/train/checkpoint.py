"""Trial checkpoints: the architecture travels with the weights.

A checkpoint folder holds
  ``arch.json``  the model's ArchSpec (the model is rebuilt from it, never from the config:
                 PBT copies configs across trials, and growth changes the architecture);
  ``state.pt``   model and optimizer state, RNG states, hooks' tensor state (loaded with
                 ``weights_only=True``);
  ``meta.json``  step, epoch, growth events so far, hook states, MLflow run id, timings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from growray.models import ArchSpec, build_model

__all__ = ["CHECKPOINT_FILES", "CheckpointData", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]

CHECKPOINT_FILES = ("arch.json", "state.pt", "meta.json")


@dataclass
class CheckpointData:
    spec: ArchSpec
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng_state: torch.Tensor
    data_rng_state: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    hook_tensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per hook name, what ``Hook.tensor_state`` returned (masks, an architecture optimizer...)."""

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def epoch(self) -> int:
        return int(self.meta["epoch"])


def save_checkpoint(directory: str | Path, data: CheckpointData) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "arch.json").write_text(data.spec.to_json())
    torch.save(
        {
            "model": data.model_state,
            "optimizer": data.optimizer_state,
            "rng": data.rng_state,
            "data_rng": data.data_rng_state,
            "hooks": data.hook_tensors,
        },
        d / "state.pt",
    )
    (d / "meta.json").write_text(json.dumps(data.meta, indent=1, default=_json_default))
    return d


def load_checkpoint(directory: str | Path, map_location: str | torch.device = "cpu") -> CheckpointData:
    d = Path(directory)
    missing = [f for f in CHECKPOINT_FILES if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{d} is not a growray checkpoint: missing {missing}")
    spec = ArchSpec.from_json((d / "arch.json").read_text())
    state = torch.load(d / "state.pt", map_location=map_location, weights_only=True)
    meta = json.loads((d / "meta.json").read_text())
    return CheckpointData(
        spec=spec,
        model_state=state["model"],
        optimizer_state=state["optimizer"],
        rng_state=state["rng"].cpu(),
        data_rng_state=state["data_rng"].cpu(),
        meta=meta,
        hook_tensors=state.get("hooks", {}),
    )


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} into meta.json")


def model_from_checkpoint(directory: str, device: torch.device) -> nn.Module:
    """The model of a checkpoint, rebuilt from its spec (never from a config) with its weights."""
    from growray.plugins import load_plugins

    load_plugins()  # every registered model can be rebuilt (supernets, cell networks, ...)
    ckpt = load_checkpoint(directory, map_location=device)
    model = build_model(ckpt.spec).to(device)
    model.load_state_dict(ckpt.model_state)
    return model
