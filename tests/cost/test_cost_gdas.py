"""GDAS weight steps are charged the ops each step's forward sampled: hand counts of a tiny
supernet, live counts of the steps that ran, and agreement with one counted pass of the whole
supernet (``growray.nas.relaxed_cost``)."""

import pytest
import torch
import torch.nn.functional as F

from growray.cost import TrainingCompute, count_flops, training_flops_per_sample
from growray.nas import DartsSupernet, MixedOp, Nb201Supernet

torch.set_num_threads(1)

SHAPE = (1, 4, 4)
OPS = ["skip_connect", "nor_conv_3x3"]
SKIP, CONV = (0, 0), (1, 1)  # the op index of both edges of the one node (inputs 0 and 1)

# A 1x4x4 input, channels 1, stem x1, 3 layers (cell 0 normal, cells 1 and 2 reduction, both
# on alpha_reduce), one node per cell (two edges), 2 classes. Forward FLOPs per sample (2 x
# multiply-adds of every conv/linear):
#   stem 3x3 1->1 on 4x4: 288
#   cell 0 (C=1, 4x4): preprocess 1x1 1->1: 32 + 32; skip = identity: 0; nor_conv_3x3 1->1: 288
#   cell 1 (C=2, 4x4 -> 2x2): preprocess 1x1 1->2: 64 + 64; stride-2 skip = FactorizedReduce(2, 2):
#     two 1x1 2->1 convs on a 2x2 output, 16 + 16 = 32; stride-2 nor_conv_3x3 2->2: 2*2*2*9*4 = 288
#   cell 2 (C=4, 2x2 -> 1x1): preprocess0 FactorizedReduce(1, 4): 16 + 16; preprocess1 1x1 2->4: 64;
#     stride-2 skip = FactorizedReduce(4, 4): 16 + 16 = 32; stride-2 nor_conv_3x3 4->4: 288
#   classifier Linear(4, 2): 16
# Training = forward + weight gradient + input gradient (3x) for every module: every edge
# exists in every sample and reaches the loss; the stem reads data (2x).
FIXED = 2 * 288 + 3 * (32 + 32 + 64 + 64 + 32 + 64) + 3 * 16  # stem, preprocessing, classifier
NORMAL_EDGE = {0: 0, 1: 288}  # forward FLOPs of op o on an edge of cell 0
REDUCE_EDGE = {0: 32, 1: 288}  # ... on an edge of cell 1, and of cell 2
HAND = {
    "all skip": (SKIP, SKIP, FIXED + 3 * (0 + 2 * 32 + 2 * 32)),
    "all conv": (CONV, CONV, FIXED + 3 * (2 * 288 + 2 * 288 + 2 * 288)),
    "normal conv, reduction skip": (CONV, SKIP, FIXED + 3 * (2 * 288 + 2 * 32 + 2 * 32)),
    "normal skip, reduction conv": (SKIP, CONV, FIXED + 3 * (0 + 2 * 288 + 2 * 288)),
    "one conv per cell": ((1, 0), (0, 1), FIXED + 3 * (288 + (32 + 288) + (32 + 288))),
}


def _hand(normal, reduce) -> int:
    """The hand count of any sample of the tiny supernet, from the table above."""
    return FIXED + 3 * (sum(NORMAL_EDGE[o] for o in normal) + 2 * sum(REDUCE_EDGE[o] for o in reduce))


def _tiny(**kw):
    torch.manual_seed(0)
    net = DartsSupernet(SHAPE, 2, channels=1, layers=3, nodes=1, multiplier=1, stem_multiplier=1, ops=OPS, **kw)
    net.set_gumbel(1.0, torch.Generator().manual_seed(0))
    return net


def _force(net, indices: dict[str, tuple[int, ...]]) -> None:
    """Alpha rows peaked at ``indices``: GDAS' Gumbel sampler then draws exactly those ops."""
    with torch.no_grad():
        for kind, alpha in net.alpha_logits().items():
            alpha.fill_(-1e3)
            for row, o in enumerate(indices[kind]):
                alpha[row, o] = 1e3


def _step(net, n: int) -> int:
    """One training forward + backward of ``n`` samples (alpha's straight-through gradient
    included); returns the FLOPs it ran, counted as it runs."""
    net.train()
    x, y = torch.randn(n, *net.input_shape), torch.arange(n) % net.n_classes
    _, flops = count_flops(lambda: F.cross_entropy(net(x), y).backward())
    return flops


@pytest.mark.parametrize("name", list(HAND))
def test_sampled_ops_training_flops_by_hand(name):
    normal, reduce, hand = HAND[name]
    assert _hand(normal, reduce) == hand
    net = _tiny()
    _force(net, {"normal": normal, "reduce": reduce})
    assert _step(net, 2) == 2 * hand  # what the step ran
    assert net.edge_indices(training=True) == {"normal": normal, "reduce": reduce}
    assert net.training_flops_per_sample(SHAPE) == hand  # what it is charged
    assert training_flops_per_sample(net, SHAPE) == hand  # one counted pass (eval: the argmax, the same ops)


def test_each_weight_step_is_charged_its_own_sample():
    """3 samples on the all-skip ops, then 5 on the all-conv ones, 2 mixed, 4 all-skip: the
    compute is the sum of each step's own sample (a count of the first sample for every
    step, the cache by parameter shapes, charges 14 x 1872 and fails)."""
    net = _tiny()
    meter = TrainingCompute()
    steps = [("all skip", 3), ("all conv", 5), ("normal skip, reduction conv", 2), ("all skip", 4)]
    ran = 0
    for name, n in steps:
        _force(net, {"normal": HAND[name][0], "reduce": HAND[name][1]})
        ran += _step(net, n)
        meter.add_step(net, SHAPE, n)
    assert meter.total_flops == ran == sum(HAND[name][2] * n for name, n in steps)
    assert meter.total_flops == 3 * 1872 + 5 * 6672 + 2 * 4944 + 4 * 1872
    assert meter.flops_per_sample == HAND["all skip"][2] and meter.n_steps == 4


def test_unforced_samples_are_charged_what_ran():
    """Near-uniform alpha at tau 10: the samples change from step to step and every step is
    charged what its forward + backward ran (counted live)."""
    net = _tiny()
    net.set_gumbel(10.0, torch.Generator().manual_seed(3))
    meter, ran, costs = TrainingCompute(), 0, set()
    for _ in range(12):
        ran += _step(net, 3)
        meter.add_step(net, SHAPE, 3)
        costs.add(meter.flops_per_sample)
        assert meter.flops_per_sample == _hand(*net.edge_indices(training=True).values())
    assert meter.total_flops == ran and len(costs) >= 3


def test_counting_before_any_sample_is_an_error():
    with pytest.raises(RuntimeError, match="no training forward has sampled"):
        _tiny().training_flops_per_sample(SHAPE)


@pytest.mark.parametrize(
    "build",
    [
        lambda: DartsSupernet((2, 5, 5), 3, channels=4, layers=4, nodes=2, multiplier=2, stem_multiplier=1),
        lambda: DartsSupernet((2, 5, 5), 3, channels=4, layers=4, nodes=2, multiplier=1, partial_channels=2),
        lambda: Nb201Supernet((2, 5, 5), 3, channels=2, cells_per_stage=1),
    ],
    ids=["darts-ops", "partial-channels", "nb201"],
)
def test_sums_match_a_counted_pass_on_sampled_ops(build):
    """Every op of DARTS' (and NAS-Bench-201's) set, odd sizes through the reductions, PC-DARTS'
    partial edges: the per-op sum equals one counted pass of the supernet computing the same ops,
    and the live count of the step, for random samples (``none`` included)."""
    torch.manual_seed(1)
    net = build()
    net.set_gumbel(1.0, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(2)
    costs = set()
    for _ in range(5):
        chosen = {
            k: tuple(torch.randint(0, len(net.op_names), (a.shape[0],), generator=gen).tolist())
            for k, a in net.alpha_logits().items()
        }
        _force(net, chosen)
        ran = _step(net, 2)
        cost = net.training_flops_per_sample(net.input_shape)
        assert 2 * cost == ran and cost == training_flops_per_sample(net, net.input_shape), chosen
        costs.add(cost)
    assert len(costs) > 2  # the samples differ in cost


def test_softmax_supernet_is_charged_every_op():
    """DARTS' relaxation (no Gumbel) computes every op of every edge: one counted pass."""
    torch.manual_seed(0)
    net = DartsSupernet(SHAPE, 2, channels=1, layers=3, nodes=1, multiplier=1, stem_multiplier=1, ops=OPS)
    assert net.edge_indices(training=True) is None and net.cost_key() is None
    every = FIXED + 3 * (2 * 288 + 2 * (32 + 288) + 2 * (32 + 288))
    assert net.training_flops_per_sample(SHAPE) == training_flops_per_sample(net, SHAPE) == every
    assert _step(net, 2) == 2 * every


def test_eval_and_static_costs_follow_the_argmax_cell():
    """``cost_key`` is the eval forward's argmax ops, so the trainer's cached forward counts
    (``cost/flops``, ``cost/eval_flops``) follow alpha."""
    from growray.train.costs import CostMeter

    net = _tiny()
    meter = CostMeter(None, SHAPE, torch.device("cpu"))
    flops = []
    for name in ("all skip", "all conv"):
        _force(net, {"normal": HAND[name][0], "reduce": HAND[name][1]})
        meter.add_eval(net, 10)
        flops.append(meter.static(net, {})["cost/flops"])
    fwd_skip = 288 + 288 + 16 + 2 * 32 + 2 * 32  # stem, preprocessing, classifier, the reductions' skips
    fwd_conv = 288 + 288 + 16 + 3 * 2 * 288
    assert flops == [fwd_skip, fwd_conv]
    assert meter.eval_flops == 10 * (fwd_skip + fwd_conv)


def test_gdas_trial_charges_each_weight_step_its_sampled_ops():
    """Through the trainer and the GDAS hook (real Gumbel samples at tau 10): the weight-step
    part of cost/train_flops is each step's batch size x the hand count of the ops its forward
    ran, read from forward hooks on the candidate ops. The images are 8x8: every convolution
    has 4x the positions of the 4x4 count above, the classifier the same 48 in training."""
    import numpy as np

    from growray.config import validate_dict
    from growray.data import Dataset
    from growray.train import build_trainer

    rng = np.random.default_rng(0)

    def split(n):
        return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 2, n).astype(np.int64)

    data = Dataset("digits", *split(48), *split(8), *split(8), input_shape=(1, 8, 8), n_classes=2)
    model = {"name": "darts_supernet", "layers": 3, "channels": 1, "nodes": 1, "multiplier": 1}
    exp = validate_dict(
        {
            "name": "gdas_cost",
            "seed": 0,
            "data": {"name": "digits", "image": True},
            "model": {**model, "stem_multiplier": 1, "ops": OPS},
            "trainer": {"epochs": 2, "batch_size": 6, "optimizer": "sgd", "lr": 0.05},
            "nas": {"method": "gdas", "gdas": {"tau_max": 10.0, "tau_min": 5.0}, "bn_calibration_batches": 1},
            "costs": {"latency": {"enabled": False}},
        }
    )
    trainer = build_trainer(exp, data)
    net = trainer.model
    ran: dict[tuple[int, int], int] = {}  # (cell, edge) -> the op of the last training forward
    for c, cell in enumerate(net.cell_list()):
        for e, edge in enumerate(cell.edge_list()):
            assert isinstance(edge, MixedOp)
            for o, op in enumerate(edge.ops):
                op.register_forward_hook(
                    lambda m, i, out, at=(c, e), o=o: ran.__setitem__(at, o) if m.training else None
                )
    steps = []
    add_step = trainer.costs.compute.add_step

    def record(model, shape, n):
        normal, red1, red2 = ((ran[(c, 0)], ran[(c, 1)]) for c in range(3))
        assert red1 == red2  # both reduction cells run alpha_reduce's one sample
        steps.append((normal, red1, n))
        add_step(model, shape, n)

    trainer.costs.compute.add_step = record  # type: ignore[method-assign]
    m = trainer.fit()
    weights = m["cost/train_flops"] - sum(v for k, v in m.items() if k.startswith("cost/train_flops/"))
    cost = {(a, b): 4 * (_hand(a, b) - 48) + 48 for a, b, _ in steps}
    assert len(steps) == trainer.step and len(set(cost.values())) >= 2  # the samples differed in cost
    assert weights == sum(cost[(a, b)] * n for a, b, n in steps)
    assert m["cost/train_flops/arch"] > 0
