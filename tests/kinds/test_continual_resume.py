"""A worker killed mid-sequence: the restore continues at the right task (DEN mid-phase, its
masks in the checkpoint), ends where an uninterrupted run ends, and MLflow holds every per-task
row exactly once (real sqlite store, the trial's StepFilterRecorder, the kind's after_fit)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from growray.config import validate_dict
from growray.data import load_dataset
from growray.kinds import get_kind
from growray.kinds.continual import ContinualHook
from growray.tracking import MemoryRecorder, MlflowRecorder, ensure_store, get_or_create_experiment, max_logged_step
from growray.train import build_trainer
from growray.tune.trial import StepFilterRecorder

torch.set_num_threads(1)

RAW = {
    "name": "cl-resume",
    "seed": 3,
    "data": {"name": "split_digits", "setting": "task", "class_order": [0, 1, 2, 3, 4, 5]},
    "model": {"name": "continual_mlp", "hidden": [12]},
    "trainer": {"epochs": 9, "batch_size": 32, "lr": 0.01, "optimizer": "adam", "log_every_steps": 4},
    "continual": {"method": "den", "den": {"l1": 0.01, "loss_threshold": 0.05, "expand_units": 4}},
}


class _Killed(RuntimeError):
    pass


class _Stage:
    def __init__(self, trainer, uri, run_id):
        self.trainer, self.final, self.dataset, self.tracking_uri, self.run_id = trainer, {}, None, uri, run_id


def _hook(trainer) -> ContinualHook:
    hook = trainer.hooks[0]
    assert isinstance(hook, ContinualHook)
    return hook


def test_restore_mid_sequence_continues_at_the_right_task_with_each_row_once(tmp_path: Path):
    from mlflow import MlflowClient

    exp = validate_dict(RAW)
    ds = load_dataset(exp.data, seed=exp.seed)
    reference = build_trainer(exp, ds, recorder=MemoryRecorder())
    reference.fit()

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    exp_id = get_or_create_experiment(uri, "cl-resume")
    first = MlflowRecorder(uri, exp_id, run_name="trial")
    kept = tmp_path / "ckpt"

    def report(metrics, checkpoint_dir):
        epoch = int(metrics["epoch"])
        if epoch == 6:  # task 1's last epoch: its row is flushed, then the worker dies
            raise _Killed
        if checkpoint_dir is not None:
            shutil.copytree(checkpoint_dir, kept / str(epoch), dirs_exist_ok=True)

    trainer = build_trainer(exp, ds, recorder=first, report=report)
    with pytest.raises(_Killed):
        trainer.fit()
    first.discard_pending()
    first.close("FAILED")
    assert max_logged_step(uri, first.run_id, "cl/avg_acc") == 1  # rows 0 and 1 reached MLflow

    through = max_logged_step(uri, first.run_id, "val/acc")
    second = StepFilterRecorder(MlflowRecorder(uri, exp_id, run_id=first.run_id), through)
    restored = build_trainer(exp, ds, recorder=second, checkpoint_dir=str(kept / "4"))
    hook = _hook(restored)
    assert (restored.epoch, hook.task, hook.n_done) == (4, 1, 1)  # mid task 1, in DEN's retraining phase
    assert hook.method.state_dict()["phase"] == "retrain"
    restored.fit()
    second.close("FINISHED")
    final = get_kind("continual").after_fit(exp, exp.kinds["continual"], _Stage(restored, uri, first.run_id))

    ref = _hook(reference)
    assert hook.matrix.to_dict() == ref.matrix.to_dict()
    assert hook.params == ref.params and hook.flops == ref.flops
    for k, v in reference.model.state_dict().items():
        assert torch.allclose(v, restored.model.state_dict()[k], atol=1e-6), k
    assert final["cl/avg_acc"] == pytest.approx(ref.matrix.avg_acc(2))

    client = MlflowClient(uri)
    for key in ("cl/avg_acc", "cl/acc/task_0", "cl/params", "cl/train_flops"):
        steps = sorted(m.step for m in client.get_metric_history(first.run_id, key))
        assert steps == [0, 1, 2], (key, steps)  # each task's row once
    history = {m.step: m.value for m in client.get_metric_history(first.run_id, "cl/acc/task_1")}
    assert history == pytest.approx({1: ref.matrix.get(1, 1), 2: ref.matrix.get(2, 1)})
    val = client.get_metric_history(first.run_id, "val/acc")
    assert len(val) == len({m.step for m in val}) == 9  # the trainer's own exactly-once holds too
