"""GDAS' sampler and PC-DARTS' partial channels and edge normalisation on the shared DARTS supernet."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from growray.nas import DartsSupernet, MixedOp, Nb201Supernet, channel_shuffle, gumbel_hard, tau_at
from growray.nas.pcdarts import PartialMixedOp

torch.set_num_threads(1)
SMALL = {"channels": 4, "layers": 3, "nodes": 2, "multiplier": 2, "stem_multiplier": 1}


def _darts(**kw: object) -> DartsSupernet:
    torch.manual_seed(0)
    return DartsSupernet((3, 8, 8), 5, **{**SMALL, **kw})  # type: ignore[arg-type]


def _count_op_calls(model: nn.Module) -> dict[int, int]:
    """Forward hooks on every candidate op; returns {id(mixed op): ops run in the last forward}."""
    calls: dict[int, int] = {}

    def counter(key: int):
        def hook(*_: object) -> None:
            calls[key] += 1

        return hook

    for m in model.modules():
        if isinstance(m, MixedOp):
            calls[id(m)] = 0
            for op in m.ops:
                op.register_forward_hook(counter(id(m)))
    return calls


def test_gumbel_hard_is_one_hot_with_a_straight_through_gradient():
    alpha = torch.randn(6, 5, requires_grad=True)
    h, index = gumbel_hard(alpha, 2.0, torch.Generator().manual_seed(1))
    assert torch.equal(h.detach(), F.one_hot(torch.tensor(index), 5).float())
    (h * torch.arange(5.0)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    _, index2 = gumbel_hard(alpha, 2.0, torch.Generator().manual_seed(1))
    assert index2 == index  # seeded
    assert tau_at(0, 50, 10.0, 0.1) == 10.0 and tau_at(49, 50, 10.0, 0.1) == pytest.approx(0.1)
    assert tau_at(25, 51, 10.0, 0.1) == pytest.approx(5.05)


@pytest.mark.parametrize("model", ["darts", "nb201"])
def test_gdas_forward_runs_exactly_one_op_per_edge_and_alpha_gets_a_gradient(model):
    torch.manual_seed(0)
    net = _darts() if model == "darts" else Nb201Supernet((3, 8, 8), 5, channels=4, cells_per_stage=1)
    calls = _count_op_calls(net)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    net(x)
    assert len(calls) == {"darts": 3 * 5, "nb201": 3 * 6}[model]  # cells x edges
    assert set(calls.values()) == {len(net.op_names) - 1}  # DARTS: every op but the zero op
    net.set_gumbel(10.0, torch.Generator().manual_seed(0))
    net.train()
    for k in calls:
        calls[k] = 0
    F.cross_entropy(net(x), y).backward()
    assert set(calls.values()) == {1}, "GDAS computes one op per edge"
    grads = [p.grad for p in net.arch_parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    net.eval()  # eval: the argmax op of every edge, no noise
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_pcdarts_with_k1_equals_darts():
    darts = _darts()
    pc = _darts(partial_channels=1)
    state = {k.replace(".mixed.", "."): v for k, v in pc.state_dict().items()}
    assert set(state) == set(darts.state_dict())
    pc.load_state_dict({k: darts.state_dict()[k.replace(".mixed.", ".")] for k in pc.state_dict()})
    x = torch.randn(4, 3, 8, 8)
    for mode in (True, False):
        darts.train(mode)
        pc.train(mode)
        with torch.no_grad():
            assert torch.equal(pc(x), darts(x))
    assert pc.genotype() == darts.genotype()


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(channel_shuffle(x, 1), x)


def test_partial_mixed_op_sends_one_kth_through_the_ops():
    torch.manual_seed(0)
    op = PartialMixedOp(MixedOp(2, 1, ["skip_connect", "avg_pool_3x3"]), 4, 1)
    x = torch.randn(3, 8, 5, 5)
    w = torch.tensor([1.0, 0.0])  # all weight on the identity: the edge only permutes channels
    assert torch.equal(op(x, w), channel_shuffle(x, 4))
    reduce = PartialMixedOp(MixedOp(2, 2, ["skip_connect", "max_pool_3x3"]), 4, 2)
    assert reduce(torch.randn(3, 8, 7, 7), w).shape == (3, 8, 4, 4)


def test_edge_normalisation_changes_only_the_discretization_weights_of_whole_edges():
    """Beta scales whole edges: each kept edge's op is the argmax of its own softmax(alpha)
    (beta never changes an op), while beta decides which edges a node keeps."""
    net = _darts(edge_normalization=True)
    assert net.beta_normal is not None and len(net.arch_parameters()) == 4
    alpha = torch.randn(5, 8)
    with torch.no_grad():
        net.alpha_normal.copy_(alpha)
    ops_of = {}
    for trial in range(4):
        with torch.no_grad():
            net.beta_normal.copy_(torch.randn(5, generator=torch.Generator().manual_seed(trial)) * 5)
        g = net.genotype()
        starts = [0, 2]
        for j, (op, inp) in enumerate(g.normal):
            edge = starts[j // 2] + inp
            best = max((c for c in range(8) if net.op_names[c] != "none"), key=lambda c: alpha[edge, c].item())
            assert op == net.op_names[best]
            ops_of.setdefault(edge, set()).add(op)
        # ranking: softmax(beta) x the edge's strongest non-none op weight
        w = net.discretization_weights()["normal"]
        s = net.edge_scales()["normal"].detach()
        sa = torch.softmax(alpha, -1)
        torch.testing.assert_close(w, sa * s.unsqueeze(-1))
    assert all(len(v) == 1 for v in ops_of.values())
    # and the forward: a node sums softmax(beta)-weighted edges
    cell = net.cell_list()[0]
    s0 = torch.randn(2, 4, 8, 8)
    net.eval()
    weights = torch.softmax(net.alpha_normal, -1)
    scale = net.edge_scales()["normal"]
    with torch.no_grad():
        got = cell(s0, s0, weights, None, scale)
        states = [cell.preprocess0(s0), cell.preprocess1(s0)]
        edges = cell.edge_list()
        n0 = scale[0] * edges[0](states[0], weights[0]) + scale[1] * edges[1](states[1], weights[1])
        states.append(n0)
        n1 = sum(scale[2 + j] * edges[2 + j](states[j], weights[2 + j]) for j in range(3))
        torch.testing.assert_close(got, torch.cat([n0, n1], dim=1))


def test_partial_channels_must_divide_the_channels():
    with pytest.raises(ValueError, match="must divide channels=4"):
        _darts(partial_channels=3)
