"""The Grow-vs-Prune protocol through the trainer: metrics of both arms, schedule checks, restore."""

from __future__ import annotations

import shutil

import pytest
import torch
from pydantic import ValidationError

from growray.config import TrainerConfig
from growray.data import load_dataset
from growray.kinds.plasticity import PlasticityConfig, PlasticityHook
from growray.models import GrowableMLP
from growray.tracking import MemoryRecorder
from growray.train import Trainer

torch.set_num_threads(1)

TRAINER = TrainerConfig(epochs=2, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, log_every_steps=5)


@pytest.fixture(scope="module")
def splits():
    return load_dataset({"name": "digits"}, seed=0).to_tensors("cpu")


def _run(splits, report=None, trainer_cfg=TRAINER, **plasticity):
    torch.manual_seed(0)
    model = GrowableMLP(splits.input_shape, splits.n_classes, hidden=[16, 12])
    hook = PlasticityHook(PlasticityConfig(**{"cycles": 2, **plasticity}), (splits.val[0][:64], splits.val[1][:64]))
    rec = MemoryRecorder()
    trainer = Trainer(model, splits, trainer_cfg, hooks=[hook], recorder=rec, report=report, seed=0)
    return trainer, hook, rec


@pytest.mark.parametrize(
    "arm, options",
    [
        ("grow", {}),
        ("prune", {"rewind_step": 3}),
        ("grow", {"selection": "gradmax", "insertion": "net2wider", "optimizer_state": "transplant"}),
    ],
)
def test_tiny_grow_vs_prune_logs_every_plasticity_metric(splits, arm, options):
    trainer, hook, rec = _run(splits, arm=arm, compactness=0.5, **options)
    init = {s: [sl.tensor.detach().clone() for sl in _slices(trainer.model, s)] for s in trainer.model.sites()}
    trainer.fit()
    common = {
        "cycle_acc",
        "taa",
        "active_units",
        "active_units/hidden.0",
        "active_units/hidden.1",
        "active_weights",
        "post_act_parity",
        "post_grad_parity",
        "post_grad_parity/hidden.0",
        "wt_acc",
        "wt_val_acc",
    }
    grow_only = {"exit_act_parity", "exit_grad_parity", "end_act_parity", "end_grad_parity", "end_grad_parity/cycle1"}
    logged = {k.removeprefix("plasticity/") for k in rec.metrics if k.startswith("plasticity/")}
    assert common <= logged
    assert (grow_only <= logged) == (arm == "grow")
    # both arms end at the same budget: half of every site
    assert rec.metrics["plasticity/active_units"][-1][1] == 8 + 6
    assert hook.masks.counts() == {"hidden.0": 8, "hidden.1": 6}
    assert len(rec.metrics["plasticity/cycle_acc"]) == 2  # one per cycle
    accs = [v for _, v in rec.metrics["val/acc"]]
    assert rec.metrics["plasticity/taa"][-1][1] == pytest.approx(sum(accs) / len(accs))
    wt_acc, wt_val = rec.metrics["plasticity/wt_acc"][-1][1], rec.metrics["plasticity/wt_val_acc"][-1][1]
    assert hook.wt_metrics == {"plasticity/wt_acc": wt_acc, "plasticity/wt_val_acc": wt_val}
    assert 0.2 < wt_acc <= 1 and 0.2 < wt_val <= 1  # a 14-unit ticket learns digits beyond chance (0.1)
    assert rec.artifacts["plasticity_masks.json"]["active"]["hidden.0"] == hook.masks.active("hidden.0").tolist()
    if arm == "grow":
        assert rec.metrics["plasticity/active_units"][0] == (0, 2 + 1)  # 10% of 16 and of 12 at the start
    if arm == "grow" and "insertion" not in options:
        # units never born kept their initial weights: masked slices are held through momentum
        # (net2wider legitimately rewrites newborn rows, dormant columns included)
        for s in hook.masks.sites:
            dormant = hook.masks.inactive(s)
            assert len(dormant) > 0
            for sl, before in zip(_slices(trainer.model, s), init[s]):
                assert torch.equal(sl.get(dormant), before.index_select(sl.dim, sl.index(dormant))), (s, sl.name)
    if arm == "prune":
        assert rec.metrics["plasticity/active_units"][0] == (0, 16 + 12)  # dense at the start
        for s in hook.masks.sites:  # pruned units are zero
            for sl in _slices(trainer.model, s):
                assert torch.count_nonzero(sl.get(hook.masks.inactive(s))) == 0


def _slices(model, site):
    from growray.sparse import site_slices

    return site_slices(model, site)


def test_cycles_must_divide_the_epochs(splits):
    trainer, _, _ = _run(splits, trainer_cfg=TRAINER.model_copy(update={"epochs": 3}), arm="prune")
    with pytest.raises(ValueError, match=r"plasticity.cycles=2 must divide trainer.epochs=3"):
        trainer.fit()
    trainer, _, _ = _run(splits, arm="prune", rewind_step=500)
    with pytest.raises(ValueError, match="rewind_step=500 is after the first pruning edit"):
        trainer.fit()


def test_config_checks():
    with pytest.raises(ValidationError, match="initial_fraction <= compactness"):
        PlasticityConfig(arm="grow", initial_fraction=0.6, compactness=0.5)
    with pytest.raises(ValidationError, match="did you mean 'magnitude'"):
        PlasticityConfig(score="magnitud")
    with pytest.raises(ValidationError):
        PlasticityConfig(arm="both")
    assert PlasticityConfig().arm == "prune" and PlasticityConfig().cycles == 5


def test_restore_from_a_checkpoint_continues_the_protocol_exactly(splits, tmp_path):
    opts = {"arm": "prune", "rewind_step": 2, "winning_ticket": False}
    straight, _, _ = _run(splits, **opts)
    straight.fit()

    def report(metrics, d):
        if metrics["epoch"] == 1 and d is not None:
            shutil.copytree(d, tmp_path / "ckpt")
            raise KeyboardInterrupt  # the worker dies after the first cycle's edit

    first, _, _ = _run(splits, report=report, **opts)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    hook = PlasticityHook(PlasticityConfig(cycles=2, **opts), (splits.val[0][:64], splits.val[1][:64]))
    resumed = Trainer.from_checkpoint(str(tmp_path / "ckpt"), splits, TRAINER, hooks=[hook], seed=0)
    assert hook.masks is not None and hook.masks.counts() == {"hidden.0": 8, "hidden.1": 6}
    assert hook.snapshot is not None and hook.snapshot.step == 2
    assert len(hook.val_history) == 1
    resumed.fit()
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k
