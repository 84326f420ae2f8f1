"""Trainer extensions used by NAS and pruning hooks: per-batch callbacks, tensor state in
checkpoints, weight-only optimizers, cosine learning rate and gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from growray.config import validate_dict
from growray.data import load_dataset
from growray.tracking import MemoryRecorder
from growray.train import Hook, Trainer, build_trainer, load_checkpoint
from growray.train.trainer import scheduled_lr, weight_parameters

torch.set_num_threads(1)

EXP = {
    "name": "t",
    "seed": 1,
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [8]},
    "trainer": {"epochs": 3, "batch_size": 256, "optimizer": "sgd", "lr": 0.1},
    "costs": {"latency": {"enabled": False}},
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"name": "digits"}, seed=0)


class _Counting(Hook):
    name = "counting"

    def __init__(self):
        self.batches = 0
        self.mask = torch.zeros(3)

    def on_batch_start(self, trainer, xb, yb):
        assert xb.shape[0] == yb.shape[0]
        self.batches += 1
        self.mask[self.batches % 3] += 1

    def tensor_state(self):
        return {"mask": self.mask.clone(), "batches": self.batches}

    def load_tensor_state(self, state):
        self.mask = state["mask"].clone()
        self.batches = int(state["batches"])


def test_batch_hook_sees_every_step_and_tensor_state_round_trips(digits, tmp_path):
    exp = validate_dict(EXP)
    hook = _Counting()
    trainer = build_trainer(exp, digits)
    trainer.hooks.append(hook)
    trainer.fit()
    assert hook.batches == trainer.step > 0
    trainer.save(str(tmp_path))
    ckpt = load_checkpoint(tmp_path)
    assert torch.equal(ckpt.hook_tensors["counting"]["mask"], hook.mask)
    fresh = _Counting()
    splits = digits.to_tensors("cpu")
    Trainer.from_checkpoint(str(tmp_path), splits, exp.trainer, hooks=[fresh])
    assert fresh.batches == hook.batches and torch.equal(fresh.mask, hook.mask)


def test_cosine_schedule_anneals_per_epoch_to_lr_min(digits):
    exp = validate_dict({**EXP, "trainer": {**EXP["trainer"], "lr_schedule": "cosine", "lr_min": 0.001}})
    cfg = exp.trainer
    assert scheduled_lr(cfg, 0) == pytest.approx(0.1)
    assert scheduled_lr(cfg, 3) == pytest.approx(0.001)
    assert scheduled_lr(cfg, 1) == pytest.approx(0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi / 3)))
    rec = MemoryRecorder()
    trainer = build_trainer(exp, digits, recorder=rec)
    trainer.fit()
    lrs = [v for _, v in rec.metrics["train/lr"]]
    assert lrs == pytest.approx([scheduled_lr(cfg, e) for e in range(3)])


def test_gradient_clipping_bounds_the_update(digits):
    exp = validate_dict({**EXP, "trainer": {**EXP["trainer"], "epochs": 1, "grad_clip": 1e-3, "momentum": 0.0}})
    trainer = build_trainer(exp, digits)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    # every SGD step moves the weights by at most lr * clip
    moved = math.sqrt(sum(((p.detach() - b) ** 2).sum().item() for p, b in zip(trainer.model.parameters(), before)))
    assert moved <= trainer.step * 0.1 * 1e-3 + 1e-9


def test_models_may_keep_parameters_out_of_the_weight_optimizer():
    class WithArch(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Linear(2, 2)
            self.alpha = nn.Parameter(torch.zeros(3))

        def weight_parameters(self):
            return list(self.w.parameters())

    m = WithArch()
    assert all(p is not m.alpha for p in weight_parameters(m))
    assert len(weight_parameters(nn.Linear(2, 2))) == 2
