"""ProgressRecorder: one line per epoch for commands that train in the foreground (retrain)."""

from __future__ import annotations

import re
from pathlib import Path

from growray.config import load_experiment
from growray.data import load_dataset
from growray.tracking import MemoryRecorder, ProgressRecorder
from growray.train import build_trainer

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"


def test_one_line_per_epoch_and_everything_passed_on() -> None:
    exp = load_experiment(QUICKSTART, {"trainer.epochs": 2, "costs.latency.enabled": False})
    inner, lines = MemoryRecorder(), []
    trainer = build_trainer(exp, load_dataset(exp.data, seed=0), recorder=ProgressRecorder(inner, 2, lines.append))
    final = trainer.fit()
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert all(re.search(r"train/loss \d\.\d{4} .*val/acc \d\.\d{4} .*\(\d+ s\)$", line) for line in lines), lines
    assert f"val/acc {final['val/acc']:.4f}" in lines[-1]
    assert inner.metrics["val/acc"][-1][1] == final["val/acc"] and "plots/growth_timeline.png" in inner.artifacts
