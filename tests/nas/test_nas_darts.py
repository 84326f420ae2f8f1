"""DARTS supernet, architect (first/second order) and the discretized network with inherited weights."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import growray.nas  # noqa: F401 - registers the models
from growray.models import MODELS, build_model
from growray.nas import (
    DARTS_OPS,
    DartsArchitect,
    DartsSupernet,
    Genotype,
    arch_gradient,
    n_edges,
    recalibrate_batchnorm,
)
from growray.registry import UnknownNameError

torch.set_num_threads(1)


def _batch(shape, n=4, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, n_classes, (n,), generator=g)


def test_models_are_registered():
    assert "darts_supernet" in MODELS and "cell_network" in MODELS


@pytest.mark.parametrize("shape, nodes", [((1, 8, 8), 2), ((3, 16, 16), 4), ((1, 7, 7), 3)])
def test_supernet_forward_backward_shapes(shape, nodes):
    torch.manual_seed(0)
    model = MODELS.build(
        {"name": "darts_supernet", "channels": 4, "layers": 3, "nodes": nodes, "multiplier": nodes},
        input_shape=shape,
        n_classes=5,
    )
    assert model.alpha_normal.shape == (n_edges(nodes), len(DARTS_OPS)) == model.alpha_reduce.shape
    assert model.alpha_normal.abs().max() < 1e-2  # 1e-3 * N(0, 1)
    assert len(model.edges()) == n_edges(nodes) and model.edges()[:3] == [(0, 0), (0, 1), (1, 0)]
    x, y = _batch(shape, n_classes=5)
    out = model(x)
    assert out.shape == (4, 5)
    F.cross_entropy(out, y).backward()
    for a in model.arch_parameters():
        assert a.grad is not None and a.grad.abs().sum() > 0
    arch_ids = {id(a) for a in model.arch_parameters()}
    weights = model.weight_parameters()
    assert not arch_ids & {id(p) for p in weights}
    assert len(weights) + 2 == len(list(model.parameters()))
    for name, w in model.alphas().items():
        assert name in ("normal", "reduce") and not w.requires_grad
        torch.testing.assert_close(w.sum(dim=-1), torch.ones(n_edges(nodes)))
    geno = model.genotype()
    assert geno.n_nodes == nodes and geno.normal_concat == tuple(range(2, nodes + 2))
    assert model.sites() == [] and model.widths() == {}


def test_supernet_spec_round_trip_keeps_alphas():
    torch.manual_seed(0)
    model = DartsSupernet(
        (1, 8, 8), 3, channels=4, layers=2, nodes=2, multiplier=2, ops=["skip_connect", "sep_conv_3x3"]
    )
    with torch.no_grad():
        model.alpha_normal.normal_()
    assert "alpha_normal" in model.state_dict()
    clone = build_model(model.spec())
    clone.load_state_dict(model.state_dict())
    model.eval()
    clone.eval()
    x, _ = _batch((1, 8, 8))
    assert torch.equal(model(x), clone(x))
    assert clone.genotype() == model.genotype()
    assert {op for op, _ in model.genotype().normal} <= {"skip_connect", "sep_conv_3x3"}


def test_supernet_rejects_bad_op_sets_and_sizes():
    with pytest.raises(UnknownNameError, match="did you mean 'sep_conv_3x3'"):
        DartsSupernet((1, 8, 8), 3, ops=["sep_conv_3x4"])
    with pytest.raises(ValueError, match="other than 'none'"):
        DartsSupernet((1, 8, 8), 3, ops=["none"])
    with pytest.raises(ValueError, match="must not repeat"):
        DartsSupernet((1, 8, 8), 3, ops=["skip_connect", "skip_connect"])
    with pytest.raises(ValueError, match=r"multiplier .* must be <= nodes=2; got 4"):
        DartsSupernet((1, 8, 8), 3, nodes=2)
    with pytest.raises(ValueError, match=r"input_shape must be \(C, H, W\)"):
        DartsSupernet((64,), 3)


# -- second-order gradient against finite differences ----------------------------------------


def test_second_order_arch_gradient_matches_finite_differences():
    """d/d alpha L_val(w - xi (grad_w L_train(w, alpha) + mu m + wd w), alpha), float64."""
    torch.manual_seed(0)
    ops = ["skip_connect", "sep_conv_3x3", "avg_pool_3x3"]
    model = DartsSupernet((1, 6, 6), 3, channels=2, layers=3, nodes=1, multiplier=1, stem_multiplier=1, ops=ops)
    model.double()
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_()
    train = tuple(t.double() if t.is_floating_point() else t for t in _batch((1, 6, 6), n=6, seed=1))
    val = tuple(t.double() if t.is_floating_point() else t for t in _batch((1, 6, 6), n=6, seed=2))
    xi, mu, wd = 0.5, 0.9, 0.01
    weights = model.weight_parameters()
    buffers = [torch.randn_like(p) * 0.1 for p in weights]

    g1 = arch_gradient(model, train, val, xi, 1)
    # hvp_eps well below DARTS' 0.01: on this 2-channel net a 0.01 step crosses ReLU kinks
    kw = {"momentum": mu, "weight_decay": wd, "momentum_buffers": buffers, "hvp_eps": 1e-4}
    g2 = arch_gradient(model, train, val, xi, 2, **kw)

    names = [n for n, _ in model.named_parameters() if n not in ("alpha_normal", "alpha_reduce")]
    w0 = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters() if n in names}

    def unrolled_val_loss(alpha_n: torch.Tensor, alpha_r: torch.Tensor) -> float:
        params = {**w0, "alpha_normal": alpha_n, "alpha_reduce": alpha_r}
        loss_t = F.cross_entropy(functional_call(model, params, (train[0],)), train[1])
        grads = torch.autograd.grad(loss_t, [w0[n] for n in names])
        w1 = {n: (w0[n] - xi * (g + mu * b + wd * w0[n])).detach() for n, g, b in zip(names, grads, buffers)}
        out = functional_call(model, {**w1, "alpha_normal": alpha_n, "alpha_reduce": alpha_r}, (val[0],))
        return float(F.cross_entropy(out, val[1]))

    h = 1e-5
    an, ar = (a.detach().clone() for a in model.arch_parameters())
    fd = [torch.zeros_like(an), torch.zeros_like(ar)]
    for k, base in enumerate((an, ar)):
        for idx in range(base.numel()):
            plus, minus = base.clone(), base.clone()
            plus.view(-1)[idx] += h
            minus.view(-1)[idx] -= h
            args_p = (plus, ar) if k == 0 else (an, plus)
            args_m = (minus, ar) if k == 0 else (an, minus)
            fd[k].view(-1)[idx] = (unrolled_val_loss(*args_p) - unrolled_val_loss(*args_m)) / (2 * h)
    fd_flat, g2_flat, g1_flat = (torch.cat([t.flatten() for t in v]) for v in (fd, g2, g1))
    err2 = float((g2_flat - fd_flat).norm() / fd_flat.norm())
    err1 = float((g1_flat - fd_flat).norm() / fd_flat.norm())
    assert err2 < 1e-5, f"second-order gradient is off by {err2:.2e} (relative)"
    assert err1 > 30 * err2, "the unrolled term must matter in this setting, or the test proves nothing"


# -- the architect -------------------------------------------------------------------------


def _tiny_supernet(seed=0):
    torch.manual_seed(seed)
    ops = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    return DartsSupernet((1, 8, 8), 3, channels=2, layers=3, nodes=2, multiplier=2, ops=ops)


def _weight_step(model, opt, batch):
    opt.zero_grad()
    F.cross_entropy(model(batch[0]), batch[1]).backward()
    opt.step()


@pytest.mark.parametrize("order", [1, 2])
def test_architect_step_updates_alphas_and_restores_weights(order):
    model = _tiny_supernet()
    train, val = _batch((1, 8, 8), seed=1), _batch((1, 8, 8), seed=2)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    _weight_step(model, w_opt, train)  # momentum buffers exist
    architect = DartsArchitect(model, order=order, grad_clip=10.0)
    weights = [p.detach().clone() for p in model.weight_parameters()]
    grads = [p.grad.clone() for p in model.weight_parameters()]
    buffers = [b.clone() for b in model.buffers()]
    alphas = [a.detach().clone() for a in model.arch_parameters()]
    metrics = architect.step(train, val, w_opt)
    assert set(metrics) == {"nas/arch_loss", "nas/arch_grad_norm"} and metrics["nas/arch_loss"] > 0
    assert all(torch.equal(p, w) for p, w in zip(model.weight_parameters(), weights))
    assert all(torch.equal(p.grad, g) for p, g in zip(model.weight_parameters(), grads))
    assert all(not torch.equal(a, a0) for a, a0 in zip(model.arch_parameters(), alphas))
    assert all(a.grad is None for a in model.arch_parameters())
    if order == 2:  # the perturbed forwards leave no trace in the BatchNorm statistics
        assert all(torch.equal(b, b0) for b, b0 in zip(model.buffers(), buffers))


def test_architect_state_dict_round_trip_continues_identically():
    model = _tiny_supernet()
    train, val = _batch((1, 8, 8), seed=1), _batch((1, 8, 8), seed=2)
    w_opt = torch.optim.Adam(model.weight_parameters(), lr=1e-3)  # order 2 degrades to w - lr * grad
    a = DartsArchitect(model, order=2)
    a.step(train, val, w_opt)
    twin = copy.deepcopy(model)
    b = DartsArchitect(twin, order=2)
    b.load_state_dict(a.state_dict())
    a.step(train, val, w_opt)
    b.step(train, val, torch.optim.Adam(twin.weight_parameters(), lr=1e-3))
    for p, q in zip(model.arch_parameters(), twin.arch_parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="order 2"):
        DartsArchitect(twin, order=1).load_state_dict(a.state_dict())


def test_architect_rejects_bad_settings():
    model = _tiny_supernet()
    with pytest.raises(ValueError, match=r"^order must be an int in \[1, 2\]; got 3$"):
        DartsArchitect(model, order=3)
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0; got 0\.0$"):
        DartsArchitect(model, lr=0.0)
    with pytest.raises(TypeError, match="arch_parameters"):
        DartsArchitect(torch.nn.Linear(2, 2))
    ws = model.weight_parameters()
    w_opt = torch.optim.SGD([{"params": ws[:3], "lr": 0.1}, {"params": ws[3:], "lr": 0.2}], lr=0.1)
    with pytest.raises(ValueError, match="must share lr, momentum and weight_decay"):
        DartsArchitect(model, order=2).step(_batch((1, 8, 8)), _batch((1, 8, 8)), w_opt)


# -- discretized network with inherited weights ----------------------------------------------

PEAKED = {
    "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["dil_conv_3x3", 0], ["max_pool_3x3", 2],
               ["avg_pool_3x3", 1], ["sep_conv_5x5", 3]],
    "normal_concat": [2, 3, 4],
    "reduce": [["max_pool_3x3", 0], ["skip_connect", 1], ["dil_conv_5x5", 1], ["avg_pool_3x3", 2],
               ["skip_connect", 0], ["sep_conv_3x3", 3]],
    "reduce_concat": [2, 3, 4],
}  # fmt: skip


def _peaked_alpha(pairs, nodes: int, scale: float) -> torch.Tensor:
    """+scale on each kept (edge, op); -scale elsewhere; a dropped edge puts +scale on `none`."""
    a = torch.full((n_edges(nodes), len(DARTS_OPS)), -scale)
    start = 0
    for node in range(nodes):
        kept = {inp: op for op, inp in pairs[2 * node : 2 * node + 2]}
        for inp in range(node + 2):
            a[start + inp, DARTS_OPS.index(kept.get(inp, "none"))] = scale
        start += node + 2
    return a


def test_discretized_network_inherits_weights_and_matches_a_peaked_supernet():
    """With alphas at +-20, softmax puts 1 - O(e^-40) on the chosen ops and `none` on dropped edges.

    The supernet then computes the discrete network's function up to the e^-40-weighted
    unchosen ops and float rounding of the mixture sums: equal only approximately.
    """
    torch.manual_seed(0)
    model = DartsSupernet((3, 8, 8), 4, channels=4, layers=3, nodes=3, multiplier=3)
    geno = Genotype.from_dict(PEAKED)
    with torch.no_grad():
        model.alpha_normal.copy_(_peaked_alpha(geno.normal, 3, 20.0))
        model.alpha_reduce.copy_(_peaked_alpha(geno.reduce, 3, 20.0))
    assert model.genotype() == geno  # `none` is never chosen, dropped edges lose
    for seed in range(3):  # non-trivial BatchNorm running statistics
        model(_batch((3, 8, 8), n=8, seed=seed)[0])
    net = model.discretized()
    assert net.spec().params["affine"] is False and net.spec().params["pool_bn"] is True
    assert net.genotype == geno and net.training
    model.eval()
    net.eval()
    x, _ = _batch((3, 8, 8), n=5, seed=9)
    torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-5)
    # a less peaked supernet is visibly a different function (the relaxed-vs-discrete gap)
    with torch.no_grad():
        model.alpha_normal.copy_(_peaked_alpha(geno.normal, 3, 1.0))
    assert (net(x) - model(x)).abs().max() > 1e-2
    # inherited BN statistics are then recalibrated for the discrete network
    before = net.cells[0].ops[0].op[0].op[3].running_mean.clone()
    recalibrate_batchnorm(net, [_batch((3, 8, 8), n=8, seed=s)[0] for s in range(2)])
    assert not torch.equal(before, net.cells[0].ops[0].op[0].op[3].running_mean) and not net.training


def test_discretized_rejects_incompatible_genotypes():
    model = DartsSupernet(
        (1, 8, 8), 3, channels=4, layers=3, nodes=2, multiplier=2, ops=["skip_connect", "sep_conv_3x3"]
    )
    two_nodes = {
        "normal": [["max_pool_3x3", 0], ["skip_connect", 1], ["sep_conv_3x3", 2], ["skip_connect", 0]],
        "reduce": [["skip_connect", 0], ["skip_connect", 1], ["sep_conv_3x3", 2], ["skip_connect", 0]],
    }
    with pytest.raises(ValueError, match=r"op\(s\) \['max_pool_3x3'\] that this supernet does not have"):
        model.discretized(two_nodes)
    with pytest.raises(ValueError, match="multiplier=2"):
        model.discretized({**two_nodes, "normal": two_nodes["reduce"], "normal_concat": [3]})
