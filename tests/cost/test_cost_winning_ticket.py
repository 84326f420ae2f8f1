"""The Grow-vs-Prune winning ticket's retraining is part of the run's compute: its training as
cost/train_flops/winning_ticket (in cost/train_flops), its evaluation in cost/eval_flops, both
against a hand count."""

import torch

from growray.config import TrainerConfig
from growray.data import TensorSplits
from growray.kinds.plasticity import PlasticityConfig, PlasticityHook
from growray.models import GrowableMLP
from growray.tracking import MemoryRecorder
from growray.train import Trainer

torch.set_num_threads(1)


def _splits(n_train=64, n_val=20, n_test=12, f=10, c=3):
    g = torch.Generator().manual_seed(0)

    def split(n):
        return torch.randn(n, f, generator=g), torch.randint(0, c, (n,), generator=g)

    return TensorSplits(split(n_train), split(n_val), split(n_test), input_shape=(f,), n_classes=c)


def test_winning_ticket_retraining_is_counted_by_hand():
    """An MLP 10-8-3, prune arm, 2 cycles of 1 epoch: epoch 1 dense, then 4 of the 8 hidden
    units pruned (compactness 0.5), epoch 2 and the ticket's 2 epochs at 4 of 8. A unit mask
    with k of 8 units active leaves both layers at density k/8, forward and backward alike."""
    data = _splits()
    torch.manual_seed(0)
    model = GrowableMLP((10,), 3, hidden=[8])
    hook = PlasticityHook(PlasticityConfig(arm="prune", cycles=2, compactness=0.5, wt_epochs=2), data.val, seed=0)
    rec, reported = MemoryRecorder(), []
    cfg = TrainerConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.1)
    trainer = Trainer(model, data, cfg, hooks=[hook], recorder=rec, report=lambda m, _: reported.append(m))
    m = trainer.fit()
    assert hook.masks is not None and hook.masks.counts() == {"hidden.0": 4}

    dense_train = 2 * (10 * 8) * 2 + 2 * (8 * 3) * 3  # forward + weight grads; input grad of layer 2 only
    dense_fwd = 2 * (10 * 8 + 8 * 3)
    half_train, half_fwd = dense_train * 4 // 8, dense_fwd * 4 // 8
    run = 64 * dense_train + 64 * half_train  # epoch 1 dense, epoch 2 pruned
    ticket = 2 * 64 * half_train  # 2 epochs of 64 samples, all under the final mask
    assert m["cost/train_flops/winning_ticket"] == ticket == 2 * 64 * 232
    assert m["cost/train_flops"] == run + ticket
    assert set(trainer.costs.compute.extra) == {"winning_ticket"}
    # evaluation: the run's val passes (dense, then pruned) and test, then the ticket's 2 val + 1 test
    run_eval = 20 * dense_fwd + 20 * half_fwd + 12 * half_fwd
    ticket_eval = 2 * 20 * half_fwd + 12 * half_fwd
    assert m["cost/eval_flops"] == run_eval + ticket_eval
    # the last report (Tune's) and the final logged values carry the ticket too; finalizing again changes nothing
    assert (
        reported[-1]["cost/train_flops"] == run + ticket and reported[-1]["cost/eval_flops"] == run_eval + ticket_eval
    )
    assert rec.metrics["cost/train_flops"][-1] == (trainer.step, run + ticket)
    assert rec.metrics["cost/train_flops/winning_ticket"][-1] == (trainer.step, ticket)
    again = trainer.finalize()
    assert again["cost/train_flops"] == run + ticket and trainer.costs.compute.total_flops == run + ticket
