"""ENAS weight steps are charged the child sampled for each step: per-module sums against one
counted pass of the whole supernet, and against hand counts of a tiny supernet."""

import pytest
import torch

from growray.cost import TrainingCompute, training_flops_per_sample
from growray.nas import Genotype
from growray.nas.enas import EnasController, EnasSupernet

torch.set_num_threads(1)

SHAPE = (1, 4, 4)


def _genotype(normal, reduce):
    concat = tuple(range(2, len(normal) // 2 + 2))
    return Genotype(normal=tuple(normal), normal_concat=concat, reduce=tuple(reduce), reduce_concat=concat)


SKIP = [("skip_connect", 0), ("skip_connect", 1)]
CONV = [("nor_conv_3x3", 0), ("nor_conv_3x3", 1)]

# A 1x4x4 input, channels 1, stem x1, 3 layers (cell 0 normal, cells 1 and 2 reduction), one
# node per cell, 2 classes. Forward FLOPs per sample (2 x multiply-adds of every conv/linear):
#   stem 3x3 1->1 on 4x4: 288
#   cell 0 (C=1, 4x4): preprocess 1x1 1->1: 32 + 32; skip = identity: 0; nor_conv_3x3 1->1: 288
#   cell 1 (C=2, 4x4 -> 2x2): preprocess 1x1 1->2: 64 + 64; stride-2 skip = FactorizedReduce(2, 2):
#     two 1x1 2->1 convs on a 2x2 output, 16 + 16 = 32; stride-2 nor_conv_3x3 2->2: 2*2*2*9*4 = 288
#   cell 2 (C=4, 2x2 -> 1x1): preprocess0 FactorizedReduce(1, 4): 16 + 16; preprocess1 1x1 2->4: 64;
#     stride-2 skip = FactorizedReduce(4, 4): 16 + 16 = 32; stride-2 nor_conv_3x3 4->4: 288
#   classifier Linear(4, 2): 16
# Training = forward + weight gradient + input gradient (3x) for every module whose output
# reaches the loss, except the stem (it reads data: 2x); a module whose output is unused
# runs its forward only.
FIXED = 2 * 288 + 3 * (32 + 32 + 64 + 64 + 32 + 64) + 3 * 16  # stem, preprocessing, classifier
HAND = {
    "all skip": (SKIP, SKIP, FIXED + 3 * (0 + 2 * 32 + 2 * 32)),
    "all conv": (CONV, CONV, FIXED + 3 * (2 * 288 + 2 * 288 + 2 * 288)),
    "normal conv, reduction skip": (CONV, SKIP, FIXED + 3 * (2 * 288 + 2 * 32 + 2 * 32)),
    "normal skip, reduction conv": (SKIP, CONV, FIXED + 3 * (0 + 2 * 288 + 2 * 288)),
    # every node reads input 1 only: each cell's preprocess0 output is unused (forward only),
    # every cell still reaches the loss through the next cell's input 1
    "input 1 only": (
        [("skip_connect", 1)] * 2,
        [("skip_connect", 1)] * 2,
        2 * 288 + (32 + 64 + 32) + 3 * (32 + 64 + 64) + 3 * 16 + 3 * (0 + 2 * 32 + 2 * 32),
    ),
}


def _tiny():
    torch.manual_seed(0)
    return EnasSupernet(
        SHAPE, 2, channels=1, layers=3, nodes=1, ops=["skip_connect", "nor_conv_3x3"], stem_multiplier=1
    )


@pytest.mark.parametrize("name", list(HAND))
def test_child_training_flops_by_hand(name):
    normal, reduce, hand = HAND[name]
    net = _tiny()
    net.set_arch(_genotype(normal, reduce))
    assert net.training_flops_per_sample(SHAPE) == hand
    assert training_flops_per_sample(net, SHAPE) == hand  # one counted pass of the supernet agrees


def test_each_weight_step_is_charged_its_own_child():
    """3 samples on the all-skip child, then 5 on the all-conv one, then 2 on a mixed one: the
    compute is the sum of each step's own child (a count of one child for every step fails)."""
    net = _tiny()
    meter = TrainingCompute()
    steps = [("all skip", 3), ("all conv", 5), ("normal skip, reduction conv", 2), ("all skip", 4)]
    for name, n in steps:
        net.set_arch(_genotype(*HAND[name][:2]))
        meter.add_step(net, SHAPE, n)
    assert meter.total_flops == sum(HAND[name][2] * n for name, n in steps)
    assert meter.total_flops == 3 * 1872 + 5 * 6672 + 2 * 4944 + 4 * 1872
    assert meter.flops_per_sample == HAND["all skip"][2] and meter.n_steps == 4


def test_sums_match_a_counted_pass_on_sampled_children():
    """Two nodes, every ENAS op and a 5x5 input (odd sizes through the reductions): the sum of
    per-module counts equals one counted forward + backward pass of the supernet, for sampled
    children and for children whose cells leave an input (and so an earlier cell) unused."""
    torch.manual_seed(1)
    net = EnasSupernet((2, 5, 5), 3, channels=2, layers=4, nodes=2)
    controller = EnasController(n_nodes=2, op_names=net.op_names)
    gen = torch.Generator().manual_seed(0)
    children = [controller.sample(generator=gen)[0] for _ in range(6)]
    one = [("sep_conv_3x3", 1), ("max_pool_3x3", 1), ("sep_conv_5x5", 2), ("skip_connect", 1)]
    zero = [("skip_connect", 0), ("sep_conv_3x3", 0), ("avg_pool_3x3", 2), ("sep_conv_3x3", 0)]
    children += [_genotype(one, zero), _genotype(zero, one), _genotype(one, one)]
    costs = set()
    for child in children:
        net.set_arch(child)
        costs.add(net.training_flops_per_sample((2, 5, 5)))
        assert costs >= {training_flops_per_sample(net, (2, 5, 5))}, child
    assert len(costs) > 3  # the children differ in cost


def test_eval_and_static_costs_follow_the_architecture_set():
    """``architecture_key`` carries the genotype (``cost_key``), so the trainer's cached
    forward counts (``cost/flops``, ``cost/eval_flops``) follow the cell set too."""
    from growray.train.costs import CostMeter

    net = _tiny()
    meter = CostMeter(None, SHAPE, torch.device("cpu"))
    flops = []
    for name in ("all skip", "all conv"):
        net.set_arch(_genotype(*HAND[name][:2]))
        meter.add_eval(net, 10)
        flops.append(meter.static(net, {})["cost/flops"])
    fwd_skip = 288 + 288 + 16 + 2 * 32 + 2 * 32  # stem, preprocessing, classifier, the two reductions' skips
    fwd_conv = 288 + 288 + 16 + 3 * 2 * 288
    assert flops == [fwd_skip, fwd_conv]
    assert meter.eval_flops == 10 * (fwd_skip + fwd_conv)


def test_enas_trial_charges_each_weight_step_its_sampled_child():
    """Through the trainer and the ENAS hook, with the sampler replaced by one alternating the
    all-skip and all-conv children: the weight-step part of cost/train_flops (everything but
    the parts beside the weight steps) is each step's batch size x its child's hand count.

    The images are 8x8 (on 4x4 the last cell's 1x1 maps leave the hook's batch-statistics
    evaluation one value per channel): every convolution then has 4x the positions of the
    4x4 count above, the classifier the same 16 FLOPs (48 in training)."""
    import numpy as np

    from growray.config import validate_dict
    from growray.data import Dataset
    from growray.kinds.nas.enas import EnasHook
    from growray.train import build_trainer

    rng = np.random.default_rng(0)

    def split(n):
        return rng.standard_normal((n, 1, 8, 8)).astype(np.float32), rng.integers(0, 2, n).astype(np.int64)

    data = Dataset("digits", *split(40), *split(8), *split(8), input_shape=(1, 8, 8), n_classes=2)
    exp = validate_dict(
        {
            "name": "enas_cost",
            "seed": 0,
            "data": {"name": "digits", "image": True},
            "model": {
                "name": "enas_supernet",
                "layers": 3,
                "channels": 1,
                "nodes": 1,
                "stem_multiplier": 1,
                "ops": ["skip_connect", "nor_conv_3x3"],
            },
            "trainer": {"epochs": 2, "batch_size": 8, "optimizer": "sgd", "lr": 0.05},
            "nas": {"method": "enas", "controller": {"steps": 1, "samples_per_step": 2}, "derive_samples": 2},
            "costs": {"latency": {"enabled": False}},
        }
    )
    trainer = build_trainer(exp, data)
    (hook,) = [h for h in trainer.hooks if isinstance(h, EnasHook)]
    children = [_genotype(*HAND["all skip"][:2]), _genotype(*HAND["all conv"][:2])]
    cost = {child: 4 * (HAND[name][2] - 48) + 48 for child, name in zip(children, ("all skip", "all conv"))}
    drawn = iter(children * 100)
    hook._sample = lambda: next(drawn)  # type: ignore[method-assign]
    steps = []
    on_batch_start = hook.on_batch_start

    def record(tr, xb, yb):
        on_batch_start(tr, xb, yb)
        steps.append((tr.model.arch, len(xb)))

    hook.on_batch_start = record  # type: ignore[method-assign]
    m = trainer.fit()
    weights = m["cost/train_flops"] - sum(v for k, v in m.items() if k.startswith("cost/train_flops/"))
    assert {a for a, _ in steps} == set(children) and len(steps) == trainer.step
    assert weights == sum(cost[a] * n for a, n in steps)
    assert m["cost/train_flops/arch"] > 0
