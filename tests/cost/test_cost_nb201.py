"""ENAS on the NAS-Bench-201 supernet: each weight step is charged its sampled cell, summed from
per-op counts (``growray.nas.relaxed_cost``) instead of a counted pass of every new cell."""

import pytest
import torch
import torch.nn.functional as F

from growray.cost import TrainingCompute, count_flops, training_flops_per_sample
from growray.nas import Nb201Genotype, Nb201Supernet, relaxed_cost

torch.set_num_threads(1)

SHAPE = (1, 4, 4)
# A 1x4x4 input, channels 1, one cell per stage with 3 nodes (edges 1<-0, 2<-0, 2<-1; the
# output is node 2), 2 classes. Forward FLOPs per sample (2 x multiply-adds of every conv/linear):
#   stem 3x3 1->1 on 4x4: 288
#   stage 0 (C=1, 4x4), 1 (C=2, 2x2), 2 (C=4, 1x1): nor_conv_3x3 2*C*C*9*H*W = 288 in every
#     stage, nor_conv_1x1 2*C*C*H*W = 32 in every stage; none, skip_connect, avg_pool_3x3: 0
#   residual block 1->2 (4x4 -> 2x2): conv_a 3x3 stride 2: 2*1*2*9*4 = 144, conv_b 3x3 2->2:
#     2*2*2*9*4 = 288, downsample 1x1 1->2 after pooling: 2*1*2*4 = 16; 448
#   residual block 2->4 (2x2 -> 1x1): 2*2*4*9 = 144, 2*4*4*9 = 288, 2*2*4 = 16; 448
#   classifier Linear(4, 2): 16
# Training = forward + weight gradient + input gradient (3x) for every module: every edge
# exists in every cell and reaches the output (``none`` is x * 0: autograd still runs the
# backward through it); the stem reads data (2x).
FIXED = 2 * 288 + 3 * (448 + 448) + 3 * 16
EDGE = {"none": 0, "skip_connect": 0, "avg_pool_3x3": 0, "nor_conv_1x1": 32, "nor_conv_3x3": 288}
HAND = {
    "|none~0|+|none~0|none~1|": FIXED,
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|": FIXED + 3 * 3 * (3 * 288),
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|": FIXED + 3 * 3 * (288 + 32),
    "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_1x1~1|": FIXED + 3 * 3 * 32,
}


def _tiny():
    torch.manual_seed(0)
    return Nb201Supernet(SHAPE, 2, channels=1, cells_per_stage=1, nodes=3)


def _step(net, n):
    net.train()
    x, y = torch.randn(n, *net.input_shape), torch.arange(n) % net.n_classes
    return count_flops(lambda: F.cross_entropy(net(x), y).backward())[1]


@pytest.mark.parametrize("cell", list(HAND))
def test_cell_training_flops_by_hand(cell):
    hand = HAND[cell]
    assert hand == FIXED + 9 * sum(EDGE[op] for op in Nb201Genotype.from_arch_str(cell).ops)
    net = _tiny()
    net.set_arch(cell)
    assert _step(net, 2) == 2 * hand  # what a step of the cell runs
    assert net.training_flops_per_sample(SHAPE) == hand
    assert training_flops_per_sample(net, SHAPE) == hand  # one counted pass agrees


def test_sums_match_a_counted_pass_for_sampled_cells(monkeypatch):
    """NAS-Bench-201's 4-node cell, 2 cells per stage, a 7x7 input (odd sizes through the
    residual blocks): the per-op sum equals one counted pass for random cells, and once every
    op of every edge has been counted a new cell costs no counted pass at all."""
    torch.manual_seed(1)
    net = Nb201Supernet((2, 7, 7), 3, channels=4, cells_per_stage=2)
    shape = net.input_shape
    gen = torch.Generator().manual_seed(0)
    cells = [Nb201Genotype((op,) * 6) for op in net.op_names]  # every op on every edge
    cells += [
        Nb201Genotype(tuple(net.op_names[i] for i in torch.randint(0, 5, (6,), generator=gen).tolist()))
        for _ in range(8)
    ]
    costs = []
    for cell in cells:
        net.set_arch(cell)
        costs.append(net.training_flops_per_sample(shape))
        assert costs[-1] == training_flops_per_sample(net, shape), cell.arch_str()
    assert len(set(costs)) > 4

    calls = []
    real = relaxed_cost.training_flops_per_sample
    monkeypatch.setattr(relaxed_cost, "training_flops_per_sample", lambda *a, **k: calls.append(a) or real(*a, **k))
    meter = TrainingCompute()
    for cell, n in zip(cells[5:], (3, 1, 4, 1, 5, 9, 2, 6)):
        net.set_arch(cell)
        meter.add_step(net, shape, n)
    assert calls == [] and meter.n_counts == 0  # sums of counts kept, no counted pass
    assert meter.total_flops == sum(c * n for c, n in zip(costs[5:], (3, 1, 4, 1, 5, 9, 2, 6)))


def test_each_enas_weight_step_is_charged_its_cell():
    """A sequence of cells through ``TrainingCompute``: the sum of each step's own cell."""
    net = _tiny()
    meter = TrainingCompute()
    steps = list(zip(HAND, (3, 5, 2, 4)))
    ran = 0
    for cell, n in steps:
        net.set_arch(cell)
        ran += _step(net, n)
        meter.add_step(net, SHAPE, n)
    assert meter.total_flops == ran == sum(HAND[cell] * n for cell, n in steps)
