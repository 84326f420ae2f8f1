"""The continual kind through the one trainer: frozen progressive columns, finetune's
forgetting, DEN's expansion decision, config checks."""

from __future__ import annotations

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.continual import CL_METHODS, ContinualMLP, TaskSequence
from growray.data import TensorSplits, load_dataset
from growray.kinds.continual import ContinualHook
from growray.testing.kinds import KindConformance
from growray.train import Hook, Trainer, build_trainer

torch.set_num_threads(1)


def _raw(method: str, setting: str = "task", epochs: int = 4, order: list[int] | None = None, **trainer: object):
    return {
        "name": "cl-test",
        "seed": 0,
        "data": {"name": "split_digits", "setting": setting, "class_order": order or [0, 1, 2, 3]},
        "model": {"name": "continual_mlp", "hidden": [16]},
        "trainer": {"epochs": epochs, "batch_size": 32, "lr": 0.01, "optimizer": "adam", **trainer},
        "continual": {"method": method},
    }


def _fit(raw: dict, extra: list[Hook] | None = None) -> Trainer:
    exp = validate_dict(raw)
    trainer = build_trainer(exp, load_dataset(exp.data, seed=exp.seed))
    trainer.hooks += extra or []
    trainer.fit()
    return trainer


class _TaskZeroOutputs(Hook):
    """Task 0's logits on fixed inputs, right after task 0 (epoch E) and at the end."""

    name = "probe"

    def __init__(self, x: torch.Tensor, after_epoch: int):
        self.x, self.after_epoch, self.outputs, self.params = x, after_epoch, [], []

    def _record(self, trainer: Trainer) -> None:
        model = trainer.model
        assert isinstance(model, ContinualMLP)
        current = model.task
        model.set_task(0)
        model.eval()
        with torch.no_grad():
            self.outputs.append(model(self.x).clone())
        model.train()
        model.set_task(current)
        self.params.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch == self.after_epoch:
            self._record(trainer)
        return {}

    def on_fit_end(self, trainer, metrics):
        self._record(trainer)
        return {}


def test_progressive_outputs_on_earlier_tasks_are_bit_identical_after_a_later_task():
    x = torch.randn(32, 64)
    probe = _TaskZeroOutputs(x, after_epoch=2)
    trainer = _fit(_raw("progressive", epochs=4), [probe])
    after_task0, after_task1 = probe.outputs
    assert torch.equal(after_task0, after_task1)  # frozen column and head: not a bit moved
    before, after = probe.params
    # recorded once task 1 had begun (its column exists) and again after training it: the new
    # column moved, every parameter of column 0 and of head 0 did not
    assert not torch.equal(before["columns.1.0.weight"], after["columns.1.0.weight"])
    for k in ("columns.0.0.weight", "columns.0.0.bias", "heads.0.weight", "heads.0.bias"):
        assert torch.equal(before[k], after[k]), k
    hook = trainer.hooks[0]
    assert isinstance(hook, ContinualHook)
    assert hook.matrix.get(1, 1) > 0.9  # and the new column (with laterals) learned task 1


def test_finetune_forgets_the_first_task_class_incremental():
    trainer = _fit(_raw("finetune", setting="class", epochs=20))
    hook = trainer.hooks[0]
    assert isinstance(hook, ContinualHook)
    assert hook.matrix.get(0, 0) > 0.9
    assert hook.matrix.get(1, 1) > 0.9
    # one shared head, no replay: training task 1 pushes task 0's logits down
    assert hook.matrix.forgetting(1) > 0.3
    assert hook.matrix.bwt(1) < -0.3


def _toy(repeat: bool, n: int = 400) -> tuple[TaskSequence, TensorSplits]:
    """Task 0: the sign of feature 0 (classes 0/1). Task 1: the sign of feature 1 (classes 2/3),
    or task 0 again (``repeat``)."""
    gen = torch.Generator().manual_seed(0)

    def split(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(2 * m, 8, generator=gen)
        y = torch.cat([(x[:m, 0] > 0).long(), 2 + (x[m:, 1] > 0).long()])
        return x, y

    splits = TensorSplits(split(n), split(n // 4), split(n // 4), (8,), 4)
    seq = TaskSequence.of([[0, 1], [0, 1] if repeat else [2, 3]], "task", 4)
    return seq, splits


def _den_run(repeat: bool) -> ContinualHook:
    from growray.config import TrainerConfig

    seq, splits = _toy(repeat)
    den = CL_METHODS.build(
        {
            "name": "den",
            "l1": 0.2,
            "loss_threshold": 0.3,
            "expand_units": 8,
            "group_lambda": 0.0,
            "drift_threshold": 100.0,
        }
    )
    hook = ContinualHook(seq, den, splits, epochs_per_task=6, margin=0.1)
    torch.manual_seed(0)
    model = ContinualMLP((8,), 4, hidden=[4])
    cfg = TrainerConfig(epochs=12, batch_size=32, lr=0.02, optimizer="adam")
    Trainer(model, hook.splits(0), cfg, hooks=[hook]).fit()
    return hook


def test_den_expands_on_a_task_that_needs_capacity_and_not_on_a_repeated_task():
    new = _den_run(repeat=False)
    (decision,) = [e for e in new.method.state_dict()["history"] if "expanded" in e]
    # L1 pruned every input weight but feature 0's during task 0: the selected subnetwork
    # cannot see feature 1, so the loss stays above tau and DEN adds k units
    assert decision["expanded"] and decision["loss"] > 0.3
    assert new.matrix.get(1, 1) > 0.8  # the new units learned it
    repeated = _den_run(repeat=True)
    (decision,) = [e for e in repeated.method.state_dict()["history"] if "expanded" in e]
    assert not decision["expanded"] and decision["loss"] < 0.3
    assert repeated.params[1] == repeated.params[0] + 4 * 2 + 2  # task 1's head (4 units -> 2 logits) only


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"model": {"name": "mlp", "hidden": [8]}}, "model.name"),
        ({"trainer": {"epochs": 5}}, "trainer.epochs"),
        ({"data": {"name": "digits"}}, "data.name"),
        ({"continual": {"method": "progresive"}}, "continual.method"),
        ({"data": {"name": "split_digits", "setting": "class"}, "continual": {"method": "den"}}, "data.setting"),
        ({"continual": {"method": "den"}, "trainer": {"epochs": 4}}, "trainer.epochs"),
        ({"continual": {"method": "ewc", "ewc": {"lamda": 1.0}}}, "continual.ewc"),
    ],
)
def test_config_errors_name_the_path(change, path):
    raw = _raw("progressive")
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if key != "model" and key != "data" else value
    with pytest.raises(ConfigError) as err:
        validate_dict(raw)
    assert path in str(err.value)


class TestContinualKind(KindConformance):
    kind_name = "continual"
    example = {
        "name": "continual-conformance",
        "data": {"name": "split_digits", "class_order": [0, 1, 2, 3]},
        "model": {"name": "continual_mlp", "hidden": [8]},
        "trainer": {"epochs": 2, "batch_size": 128, "lr": 0.01, "log_every_steps": 2},
        "continual": {"method": "ewc", "ewc": {"fisher_samples": 16}},
    }
