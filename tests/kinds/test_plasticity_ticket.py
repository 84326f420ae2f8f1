"""The Grow-vs-Prune winning ticket: seeded from the experiment seed; original, rewind or fresh weights."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from growray.config import TrainerConfig
from growray.data import load_dataset
from growray.kinds.plasticity import PlasticityConfig, PlasticityHook
from growray.models import GrowableMLP
from growray.train import Trainer

torch.set_num_threads(1)

TRAINER = TrainerConfig(epochs=2, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.0, log_every_steps=5)


@pytest.fixture(scope="module")
def splits():
    return load_dataset({"name": "digits"}, seed=0).to_tensors("cpu")


def _trained(splits, seed, **plasticity):
    torch.manual_seed(seed)  # as build_trainer draws the run's initial weights
    model = GrowableMLP(splits.input_shape, splits.n_classes, hidden=[16, 12])
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = PlasticityConfig(**{"cycles": 2, "arm": "prune", "compactness": 0.5, "wt_epochs": 1, **plasticity})
    hook = PlasticityHook(cfg, (splits.val[0][:64], splits.val[1][:64]), seed=seed)
    trainer = Trainer(model, splits, TRAINER, hooks=[hook], seed=seed)
    final = trainer.fit()
    return trainer, hook, initial, final


def _start(hook, trainer):
    with torch.random.fork_rng():
        return {k: v.detach().clone() for k, v in hook.ticket_start(trainer).named_parameters()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_fresh_draw_follows_the_experiment_seed_and_differs_from_the_runs_init(splits):
    t0, h0, init0, final0 = _trained(splits, 0)
    t1, h1, _, _ = _trained(splits, 1)
    assert h0.ticket_seed == 0 and h1.ticket_seed == 1  # no fixed wt_seed any more
    fresh0, fresh1 = _start(h0, t0), _start(h1, t1)
    assert not _same(fresh0, fresh1)  # another seed, another ticket
    assert not _same(fresh0, init0)  # a fresh draw, not the run's own initialisation
    assert _same(fresh0, _start(h0, t0))  # deterministic
    assert 0 < final0["plasticity/wt_acc"] <= 1


def test_original_restores_the_runs_initial_weights(splits):
    trainer, hook, initial, final = _trained(splits, 2, wt_init="original")
    assert _same(_start(hook, trainer), initial)
    assert 0 < final["plasticity/wt_acc"] <= 1


def test_rewind_uses_the_imp_rewind_weights(splits):
    trainer, hook, initial, _ = _trained(splits, 3, wt_init="rewind", rewind_step=4)
    start = _start(hook, trainer)
    assert hook.snapshot is not None and hook.snapshot.step == 4
    assert _same(start, hook.snapshot.params) and not _same(start, initial)


def test_rewind_needs_the_prune_arm():
    with pytest.raises(ValidationError, match="wt_init=rewind uses the prune arm's IMP rewind weights"):
        PlasticityConfig(arm="grow", compactness=0.5, wt_init="rewind")
