"""A toy experiment kind that lives outside the growray package (the plug-in proof).

It is found through the ``growray.plugins`` entry point declared in
``growray_toy_kind-0.1.dist-info/entry_points.txt`` beside this file, as an installed
package's would be. Section ``toy``: after every epoch the hook perturbs every weight
tensor with Gaussian noise of ``sigma`` times that tensor's standard deviation ("shake"
regularisation) and reports the norm of the noise it added as ``toy/noise_norm``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from pydantic import Field

from growray.config import ConfigIssue, Experiment, Section
from growray.kinds import KINDS, Kind, KindSetup, TrialOutcome
from growray.train import Hook, Trainer


class ToyConfig(Section):
    """The ``toy`` section."""

    sigma: float = Field(0.05, ge=0, description="noise std relative to each weight tensor's std")
    every_epochs: int = Field(1, ge=1, description="shake every N epochs")


class ShakeHook(Hook):
    name = "toy"

    def __init__(self, cfg: ToyConfig, seed: int) -> None:
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(seed)

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        if trainer.epoch % self.cfg.every_epochs:
            return {}
        total = 0.0
        with torch.no_grad():
            for p in trainer.model.parameters():
                if p.dim() < 2:
                    continue
                noise = torch.randn(p.shape, generator=self.gen) * (self.cfg.sigma * float(p.std()))
                p.add_(noise.to(p.device))
                total += float(noise.pow(2).sum())
        return {"toy/noise_norm": total**0.5}

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state().tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(torch.tensor(state["gen"], dtype=torch.uint8))


@KINDS.register("toy", description="weights shaken by Gaussian noise after each epoch (a plug-in from outside growray)")
class ToyKind(Kind[ToyConfig]):
    name = "toy"
    section = ToyConfig
    metrics: ClassVar[dict[str, str]] = {"toy/noise_norm": "norm of the noise added at the epoch's end"}

    def check(self, exp: Experiment, cfg: ToyConfig) -> list[ConfigIssue]:
        if cfg.every_epochs > exp.trainer.epochs:
            return [
                ConfigIssue(
                    "toy.every_epochs",
                    f"larger than trainer.epochs ({exp.trainer.epochs}): the weights would never be shaken",
                    cfg.every_epochs,
                )
            ]
        return []

    def setup(self, exp: Experiment, cfg: ToyConfig, splits: Any) -> KindSetup:
        return KindSetup([ShakeHook(cfg, exp.seed)], splits)

    def sweep_artifacts(self, exp: Experiment, cfg: ToyConfig, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        lines = ["| trial | toy.sigma | val/acc |", "|---|---|---|"]
        for t in sorted(trials, key=lambda t: t.trial_id):
            lines.append(f"| {t.trial_id} | {t.config.get('toy.sigma', cfg.sigma):.4f} | {t.metrics['val/acc']:.4f} |")
        return {"toy_report.md": "\n".join(lines) + "\n"}
