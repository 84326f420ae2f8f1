"""Genotypes, the DARTS discretization rule, collapse signals, CellNetwork and BatchNorm recalibration."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from growray.models import MODELS, ArchSpec, build_model
from growray.nas import (
    DARTS_OPS,
    CellNetwork,
    Genotype,
    alpha_entropy,
    count_op,
    discretize,
    n_edges,
    recalibrate_batchnorm,
    skip_fraction,
)

torch.set_num_threads(1)

DARTS_LIKE = {
    "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 2], ["max_pool_3x3", 0]],
    "normal_concat": [2, 3],
    "reduce": [["max_pool_3x3", 0], ["skip_connect", 1], ["avg_pool_3x3", 2], ["sep_conv_5x5", 1]],
    "reduce_concat": [2, 3],
}
# ENAS micro cell: a node may read the same input twice; the output concatenates loose ends
ENAS_LIKE = {
    "normal": [
        ["sep_conv_3x3", 1], ["avg_pool_3x3", 1],
        ["skip_connect", 0], ["sep_conv_5x5", 2],
        ["max_pool_3x3", 3], ["max_pool_3x3", 3],
    ],
    "normal_concat": [4],
    "reduce": [
        ["sep_conv_5x5", 0], ["sep_conv_5x5", 0],
        ["avg_pool_3x3", 1], ["skip_connect", 2],
        ["sep_conv_3x3", 2], ["skip_connect", 1],
    ],
    "reduce_concat": [3, 4],
}  # fmt: skip


def _idx(name: str) -> int:
    return DARTS_OPS.index(name)


# -- Genotype data -------------------------------------------------------------------------


def test_genotype_dict_round_trip_through_json():
    g = Genotype.from_dict(DARTS_LIKE)
    assert g.n_nodes == 2
    assert g.normal[0] == ("sep_conv_3x3", 0) and isinstance(g.normal, tuple)
    d = json.loads(json.dumps(g.to_dict()))
    assert d == DARTS_LIKE
    assert Genotype.from_dict(d) == g
    # concat defaults to all intermediate nodes
    no_concat = {"normal": DARTS_LIKE["normal"], "reduce": DARTS_LIKE["reduce"]}
    assert Genotype.from_dict(no_concat).normal_concat == (2, 3)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"normal": [["sep_conv_3x3", 0], ["skip_connect", 2]]}, r"normal\[1\] \(node 0\) reads input 2"),
        ({"normal": [["sep_conv_3x4", 0], ["skip_connect", 1]]}, r"did you mean 'sep_conv_3x3'"),
        ({"normal": [["sep_conv_3x3", 0]]}, "two per node"),
        ({"normal_concat": [1, 2]}, r"intermediate nodes 2\.\.3"),
        ({"reduce_concat": [2, 2]}, "must not repeat"),
        ({"reduce": DARTS_LIKE["reduce"][:2]}, "same number of nodes"),
        ({"extra": 1}, r"unknown key\(s\) \['extra'\]"),
    ],
)
def test_genotype_validation_names_the_problem(change, match):
    bad = {**DARTS_LIKE, **change}
    with pytest.raises(ValueError, match=match):
        Genotype.from_dict(bad)


# -- discretization ------------------------------------------------------------------------


def _hand_alpha() -> torch.Tensor:
    a = torch.zeros(n_edges(3), len(DARTS_OPS))  # edges: node0 0-1, node1 2-4, node2 5-8
    a[0, _idx("none")] = 10.0  # none is the largest entry of edge (0, 0) ...
    a[0, _idx("sep_conv_3x3")] = 1.0  # ... but it is never chosen
    a[1, _idx("skip_connect")] = 2.0
    a[2, _idx("max_pool_3x3")] = 3.0  # node 1, input 0
    a[3, _idx("none")] = 50.0  # node 1, input 1: strongest raw non-none value, tiny after softmax
    a[3, _idx("dil_conv_5x5")] = 4.0
    a[4, _idx("avg_pool_3x3")] = 2.0  # node 1, input 2
    a[6, _idx("sep_conv_5x5")] = 5.0  # node 2, input 1 } a tie: the lower input comes first
    a[8, _idx("sep_conv_5x5")] = 5.0  # node 2, input 3 }
    a[7, _idx("dil_conv_3x3")] = 1.0
    return a


def test_discretize_darts_rule_on_hand_set_alpha():
    a = _hand_alpha()
    assert discretize(a, DARTS_OPS, 3) == (  # each node's edges strongest first
        ("skip_connect", 1),
        ("sep_conv_3x3", 0),
        ("max_pool_3x3", 0),
        ("avg_pool_3x3", 2),
        ("sep_conv_5x5", 1),
        ("sep_conv_5x5", 3),
    )
    # ranking by the raw logits instead of softmax weights keeps node 1's input 1
    raw = discretize(a, DARTS_OPS, 3, apply_softmax=False)
    assert raw[2:4] == (("dil_conv_5x5", 1), ("max_pool_3x3", 0))
    assert discretize(a, DARTS_OPS, 3, k=1) == (("skip_connect", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1))


def test_discretize_properties_on_random_alpha():
    torch.manual_seed(0)
    names = list(DARTS_OPS)
    for _ in range(20):
        a = torch.randn(n_edges(4), len(names)) * 3
        a[:, 0] += 4.0  # make `none` dominant on most edges
        pairs = discretize(a, names, 4)
        w = torch.softmax(a, dim=-1)[:, 1:]  # strengths without `none`
        start = 0
        for node in range(4):
            kept = pairs[2 * node : 2 * node + 2]
            inputs = [i for _, i in kept]
            assert len(set(inputs)) == 2, "two distinct predecessors"
            strengths = w[start : start + node + 2].max(dim=-1).values
            dropped = [i for i in range(node + 2) if i not in inputs]
            for op, i in kept:
                assert op != "none"
                assert names[1 + int(w[start + i].argmax())] == op
                assert all(strengths[i] >= strengths[j] for j in dropped)
            start += node + 2


def test_discretize_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\[14, 8\]"):
        discretize(torch.zeros(13, 8), DARTS_OPS, 4)
    with pytest.raises(ValueError, match="other than 'none'"):
        discretize(torch.zeros(5, 1), ["none"], 2)
    with pytest.raises(ValueError, match=r"^k must be an int in \[1, 2\]; got 3$"):
        discretize(torch.zeros(14, 8), DARTS_OPS, 4, k=3)


# -- collapse signals ----------------------------------------------------------------------


def test_skip_fraction_and_count_op():
    g = {
        "normal": [["skip_connect", 0], ["skip_connect", 1], ["avg_pool_3x3", 2], ["sep_conv_3x3", 0]],
        "reduce": [["sep_conv_3x3", 0], ["dil_conv_3x3", 1], ["sep_conv_5x5", 2], ["max_pool_3x3", 1]],
    }
    assert skip_fraction(g) == 0.75
    assert skip_fraction(Genotype.from_dict(g), cell="reduce") == 0.25
    assert count_op(g, "skip_connect") == 2
    assert count_op(g, "skip_connect", cell="reduce") == 0
    with pytest.raises(ValueError, match="'normal' or 'reduce'"):
        skip_fraction(g, cell="both")


def test_alpha_entropy_values():
    assert alpha_entropy(torch.zeros(14, 8)) == pytest.approx(math.log(8))
    peaked = torch.full((14, 8), -100.0)
    peaked[:, 3] = 100.0
    assert alpha_entropy(peaked) == 0.0
    # p = (1/4, 3/4) on edge 0, uniform over 2 ops on edge 1
    a = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    h0 = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert alpha_entropy(a) == pytest.approx((h0 + math.log(2)) / 2, rel=1e-6)  # a holds float32 log(3)


# -- CellNetwork ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_cell_network_shapes(shape):
    torch.manual_seed(0)
    net = MODELS.build({"name": "cell_network", "genotype": DARTS_LIKE, "channels": 4, "layers": 3},
                       input_shape=shape, n_classes=7)  # fmt: skip
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    assert net.sites() == [] and net.widths() == {}
    # reduction cells at 1 and 2: channels 4 -> 8 -> 16, 2 nodes concatenated
    assert net.classifier.in_features == 2 * 16


def test_cell_network_spec_round_trip_and_state_dict_is_exact():
    torch.manual_seed(0)
    net = CellNetwork((1, 8, 8), 5, DARTS_LIKE, channels=4, layers=4, drop_path=0.2)
    for _ in range(2):  # move weights and BatchNorm statistics away from their init
        loss = nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8)), torch.randint(0, 5, (4,)))
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, g in zip(net.parameters(), grads):
                p.sub_(0.1 * g)
    spec = ArchSpec.from_json(net.spec().to_json())
    assert spec.kind == "cell_network" and spec.params["genotype"] == DARTS_LIKE and spec.params["drop_path"] == 0.2
    clone = build_model(spec)
    clone.load_state_dict(net.state_dict())  # strict: same keys and shapes
    net.eval()
    clone.eval()
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(net(x), clone(x))


def test_drop_path_acts_only_in_training_mode():
    torch.manual_seed(0)
    net = CellNetwork((1, 8, 8), 3, DARTS_LIKE, channels=4, layers=3, drop_path=0.5)
    x = torch.randn(4, 1, 8, 8)
    net.eval()
    assert torch.equal(net(x), net(x))
    net.train()
    assert not torch.equal(net(x), net(x))
    with pytest.raises(ValueError, match=r"^drop_path must be a finite number in \[0, 1\); got 1\.0$"):
        CellNetwork((1, 8, 8), 3, DARTS_LIKE, drop_path=1.0)


def test_cell_network_with_an_enas_genotype():
    torch.manual_seed(0)
    net = CellNetwork((1, 8, 8), 4, ENAS_LIKE, channels=4, layers=3)
    normal = net.cells[0]
    assert normal.indices[:2] == [1, 1] and len(normal.ops) == 6  # input 1 used twice by node 0
    assert net.cells[1].reduction and net.cells[1].multiplier == 2
    assert net.cells[0].multiplier == 1  # the normal cell has 1 loose end
    assert net.classifier.in_features == 2 * 16  # the last cell (layer 2) reduces
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 4)
    out.sum().backward()
    # both ops that read input 1 get a gradient
    for j in (0, 1):
        grads = [p.grad for p in normal.ops[j].parameters()]
        assert all(g is not None for g in grads)
    assert normal.ops[0].op[0].op[1].weight.grad.abs().sum() > 0


# -- BatchNorm recalibration ---------------------------------------------------------------


def test_recalibrate_batchnorm_averages_batch_statistics_and_restores_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU())
    model.eval()
    model[1].running_mean.fill_(5.0)
    batches = [torch.randn(4, 1, 6, 6) + i for i in range(3)]
    recalibrate_batchnorm(model, ((b, torch.zeros(4)) for b in batches))  # (inputs, targets) pairs
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert model[1].momentum == 0.3
    assert not model.training and not model[1].training
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(model, [])
