"""Honest compute: op-level FLOP counts of architecture steps, growth checks and initializers,
evaluation apart, masked layers effective, each against a hand count."""

import pytest
import torch
from torch import nn

from growray.config import TrainerConfig
from growray.cost import TrainingCompute, count_flops, svd_flops, training_flops_per_sample
from growray.data import TensorSplits
from growray.growth import INITIALIZERS, TRIGGERS, GrowthStrategy, TriggerContext
from growray.kinds.growth.hook import GrowthHook
from growray.models import GrowableMLP
from growray.nas import DartsArchitect
from growray.train import Trainer

torch.set_num_threads(1)


def test_linear_algebra_formulas():
    a = torch.randn(7, 3, dtype=torch.float64)
    assert count_flops(torch.mm, a, torch.randn(3, 5, dtype=torch.float64))[1] == 2 * 7 * 3 * 5
    # Golub-Reinsch: thin U (14mn^2 + 8n^3), full U (4m^2n + 8mn^2 + 9n^3); m >= n after transposing
    assert count_flops(lambda: torch.linalg.svd(a, full_matrices=False))[1] == 14 * 7 * 9 + 8 * 27
    assert count_flops(lambda: torch.linalg.svd(a, full_matrices=True))[1] == 4 * 49 * 3 + 8 * 7 * 9 + 9 * 27
    assert count_flops(lambda: torch.linalg.svd(a.t(), full_matrices=True))[1] == svd_flops(7, 3, u="full")
    assert svd_flops(7, 3) == 4 * 7 * 9 - 36  # values only (outside a dispatch mode)
    # pinv: the thin SVD and V diag(1/s) U^T
    assert count_flops(torch.linalg.pinv, a)[1] == svd_flops(7, 3, u="thin") + 2 * 7 * 3 * 3
    assert count_flops(torch.linalg.inv, torch.eye(4, dtype=torch.float64) * 2)[1] == 2 * 4**3
    # a batch of 2 matrices costs twice one
    assert count_flops(torch.linalg.svdvals, torch.randn(2, 7, 3))[1] == 2 * svd_flops(7, 3, u="thin")
    # elementwise work counts nothing, a backward pass its matmuls
    lin = nn.Linear(4, 3)
    x = torch.randn(5, 4)
    assert count_flops(lambda: (x * 2 + 1).relu().sum())[1] == 0
    assert count_flops(lambda: lin(x).sum().backward())[1] == 2 * (2 * 5 * 4 * 3)  # forward + weight gradient


class _ToySupernet(nn.Module):
    """``K`` candidate Linear(F, C) ops mixed by softmax(alpha): a minimal DARTS edge."""

    def __init__(self, f: int = 6, c: int = 3, k: int = 2):
        super().__init__()
        self.ops = nn.ModuleList(nn.Linear(f, c) for _ in range(k))
        self.alpha = nn.Parameter(torch.zeros(k))

    def forward(self, x):
        w = torch.softmax(self.alpha, 0)
        return sum(w[i] * op(x) for i, op in enumerate(self.ops))

    def arch_parameters(self):
        return [self.alpha]

    def weight_parameters(self):
        return list(self.ops.parameters())


@pytest.mark.parametrize("order", [1, 2])
def test_darts_architecture_step_against_a_hand_count(order):
    """Per op and sample a forward costs 2FC, a weight gradient 2FC; the input gradient is never
    needed (x is data) and the alpha gradient is elementwise. First order: one forward on the
    validation batch. Second order: forward + weight gradient on the training batch (the
    unrolled step), forward + weight gradient at w' on the validation batch, then two forwards
    on the training batch at w +- eps*v (the finite-difference Hessian-vector product)."""
    f, c, k, n_t, n_v = 6, 3, 2, 8, 5
    torch.manual_seed(0)
    net = _ToySupernet(f, c, k)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.1, momentum=0.9)
    arch = DartsArchitect(net, order=order)
    train = (torch.randn(n_t, f), torch.randint(0, c, (n_t,)))
    val = (torch.randn(n_v, f), torch.randint(0, c, (n_v,)))
    _, flops = count_flops(arch.step, train, val, w_opt)
    per = 2 * f * c * k  # one pass (forward, or weight gradient) of all K ops, per sample
    hand = per * n_v if order == 1 else 2 * per * n_t + 2 * per * n_v + 2 * per * n_t
    assert flops == hand
    if order == 2:
        assert flops / (per * n_v) > 2  # the second order's extra passes are counted


def test_growth_overhead_north_weight_check_by_hand():
    """north_weight measures [W | b] (M x (F+1)) with one SVD per check (a thin SVD under the
    counter, see growray.cost.ops) and nothing else."""
    torch.manual_seed(0)
    model = GrowableMLP((10,), 3, hidden=[4])
    strategy = GrowthStrategy(TRIGGERS.build({"name": "north_weight", "check_every": 1}), INITIALIZERS.build("random"))
    ctx = TriggerContext(1, 0, "step", model.widths(), model=model)
    strategy.step(model, None, ctx, (torch.zeros(2, 10), torch.zeros(2, dtype=torch.long)))
    assert strategy.take_overhead_flops() == svd_flops(4, 11, u="thin")
    assert strategy.take_overhead_flops() == 0  # taken
    off = TriggerContext(2, 0, "step", model.widths(), model=model)
    strategy.trigger.check_every = 2  # off-schedule step: the check returns at once, no FLOPs
    strategy.step(model, None, TriggerContext(3, 0, "step", model.widths(), model=model), (torch.zeros(2, 10),) * 2)
    assert strategy.take_overhead_flops() == 0 and off.step == 2


def _splits(n_train=64, n_val=20, n_test=12, f=10, c=3):
    g = torch.Generator().manual_seed(0)

    def split(n):
        return torch.randn(n, f, generator=g), torch.randint(0, c, (n,), generator=g)

    return TensorSplits(split(n_train), split(n_val), split(n_test), input_shape=(f,), n_classes=c)


def test_trainer_reports_eval_flops_apart_and_growth_overhead_in_train_flops():
    """An MLP 10-8-3 for 2 epochs: eval = forward FLOPs x (2 validation passes + 1 test pass);
    train = per-sample training FLOPs x samples + the growth hook's counted checks."""
    data = _splits()
    torch.manual_seed(0)
    model = GrowableMLP((10,), 3, hidden=[8])
    cfg = TrainerConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.1)
    # a weight trigger that never fires (gamma 1: threshold = phi0 * M) but checks every step
    strategy = GrowthStrategy(
        TRIGGERS.build({"name": "north_weight", "check_every": 1, "gamma": 1.0}), INITIALIZERS.build("random")
    )
    hook = GrowthHook(strategy, probe=data.val, buffer_size=16)
    trainer = Trainer(model, data, cfg, hooks=[hook])
    metrics = trainer.fit()
    fwd = 2 * (10 * 8 + 8 * 3)
    assert metrics["cost/eval_flops"] == fwd * (2 * 20 + 12)
    steps = 2 * (64 // 16)
    per_sample = 2 * (10 * 8 + 8 * 3) + 2 * (10 * 8 + 8 * 3) + 2 * 8 * 3  # forward, weight grads, one input grad
    growth = (steps + 1) * svd_flops(8, 11, u="thin")  # every step's check and the one at initialisation
    assert metrics["cost/train_flops/growth"] == growth
    assert metrics["cost/train_flops"] == per_sample * 64 * 2 + growth
    assert trainer.widths() == {"hidden.0": 8}


def test_masked_layer_counts_effective_flops_by_hand():
    """A Linear 10->8 with 20 of its 80 weights active (density 1/4), then Linear 8->3: the
    masked layer costs 1/4 of its forward and weight gradient (it is first: no input grad)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))
    mask = torch.zeros(8, 10)
    mask.view(-1)[torch.randperm(80)[:20]] = 1.0
    model[0].register_buffer("weight_mask", mask, persistent=False)
    hand = (2 * 10 * 8 + 2 * 10 * 8) // 4 + 3 * (2 * 8 * 3)  # masked fwd + wgrad; dense fwd + wgrad + igrad
    assert training_flops_per_sample(model, (10,)) == hand
    meter = TrainingCompute()
    meter.add_step(model, (10,), 16)
    meter.add_flops(100, "growth")
    assert meter.total_flops == 16 * hand + 100 and meter.extra == {"growth": 100}
    restored = TrainingCompute()
    restored.load_state_dict(meter.state_dict())
    assert restored.extra == {"growth": 100} and restored.total_flops == meter.total_flops
    old = {k: v for k, v in meter.state_dict().items() if k != "extra"}  # a checkpoint from before `extra`
    restored.load_state_dict(old)
    assert restored.extra == {}


def test_unit_masks_count_active_units_only_by_hand():
    """Grow vs Prune's unit masks: 2 of 8 hidden units active in a 10-8-3 MLP. Both layers then
    have density 2/8 (the masked units' fan-in rows and fan-out columns are inactive), in the
    forward pass, the weight gradients and the hidden layer's input gradient; detached, the
    count is dense again."""
    from growray.cost import count_params, forward_flops
    from growray.sparse import UnitMasks

    torch.manual_seed(0)
    model = GrowableMLP((10,), 3, hidden=[8])
    dense = training_flops_per_sample(model, (10,))
    assert dense == 2 * (10 * 8) * 2 + 2 * (8 * 3) * 3
    masks = UnitMasks({"hidden.0": torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])}).attach(model)
    assert training_flops_per_sample(model, (10,)) == dense // 4
    assert forward_flops(model, (10,)) == 2 * (10 * 8 + 8 * 3) // 4
    assert count_params(model) == count_params(model, dense=True) - 6 * 10 - 6 * 3
    masks.set_units("hidden.0", torch.tensor([1]), True)  # 3 of 8: the cache follows the change
    assert training_flops_per_sample(model, (10,)) == dense * 3 // 8
    masks.detach()
    assert training_flops_per_sample(model, (10,)) == dense


def _nas_trial(method: str, **nas):
    from growray.config.validate import validate_dict
    from growray.train import build_trainer

    model = {
        "name": f"{method}_supernet",
        "layers": 1,
        "channels": 2,
        "nodes": 1,
        "ops": ["skip_connect", "sep_conv_3x3"],
    }
    if method == "darts":
        model["multiplier"] = 1
    exp = validate_dict(
        {
            "name": "nas",
            "seed": 2,
            "data": {"name": "digits", "image": True},
            "model": model,
            "trainer": {"epochs": 1, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, "eval_batch_size": 2048},
            "nas": {"method": method, "controller": {"steps": 2, "samples_per_step": 2}, "derive_samples": 2, **nas},
            "costs": {"latency": {"enabled": False}},
        }
    )
    from growray.data import load_dataset

    trainer = build_trainer(exp, load_dataset({"name": "digits", "image": True}, seed=0))
    return trainer, trainer.fit()


@pytest.mark.slow  # three short supernet trials (~2 min under load)
def test_nas_trials_add_their_search_compute_to_train_flops():
    """The hooks' architecture side reaches cost/train_flops (and cost/train_flops/arch): the
    second-order DARTS step costs more than twice the first-order one (hand count above);
    ENAS's controller sampling, training and deriving count too."""
    arch = {}
    for order in (1, 2):
        trainer, m = _nas_trial("darts", order=order)
        weights = trainer.costs.compute.total_flops - m["cost/train_flops/arch"]
        assert m["cost/train_flops"] == pytest.approx(weights + m["cost/train_flops/arch"]) and weights > 0
        arch[order] = m["cost/train_flops/arch"]
        assert m["cost/eval_flops"] > 0
    assert arch[2] > 2 * arch[1] > 0
    _, m = _nas_trial("enas")
    assert m["cost/train_flops/arch"] > 0
