"""ENAS on NAS-Bench-201: the controller's cells and likelihoods, REINFORCE on it, and the
supernet running one sampled cell on shared weights."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from growray.models import MODELS
from growray.nas import NB201_OPS, EnasSearch, Nb201EnasController, Nb201Genotype, Nb201Supernet

torch.set_num_threads(1)


def test_the_controller_samples_one_valid_op_per_edge_and_covers_every_op():
    ctrl = Nb201EnasController(hidden=16)
    genotypes, log_probs, entropies = ctrl.sample_batch(300, torch.Generator().manual_seed(0))
    assert log_probs.shape == entropies.shape == (300,)
    for g in genotypes:
        assert isinstance(g, Nb201Genotype) and g.n_nodes == 4 and len(g.ops) == 6
        assert set(g.ops) <= set(NB201_OPS) and g.table_key() is not None
    for e in range(6):  # every op is drawn on every edge (uniform-ish at initialisation)
        assert {g.ops[e] for g in genotypes} == set(NB201_OPS)
    subset = Nb201EnasController(nodes=3, op_names=("skip_connect", "nor_conv_3x3"), hidden=8)
    cells = subset.sample_batch(50, torch.Generator().manual_seed(1))[0]
    assert all(len(g.ops) == 3 and set(g.ops) <= {"skip_connect", "nor_conv_3x3"} for g in cells)


def test_the_likelihood_is_a_distribution_over_every_cell():
    """On a 3-node cell (3 edges, 3 ops: 27 cells) the probabilities sum to 1, the sampled
    log-probabilities are the scored ones, and the entropy bound holds."""
    ops = ("none", "skip_connect", "nor_conv_3x3")
    ctrl = Nb201EnasController(nodes=3, op_names=ops, hidden=8, tanh_constant=2.5, op_tanh_reduce=1.0)
    cells = [Nb201Genotype(c) for c in itertools.product(ops, repeat=3)]
    with torch.no_grad():
        total = ctrl.log_prob_batch(cells).exp().sum().item()
        sampled, lp, h = ctrl.sample_batch(20, torch.Generator().manual_seed(3))
        torch.testing.assert_close(ctrl.log_prob_batch(sampled), lp)
    assert total == pytest.approx(1.0, abs=1e-5)
    assert ((h > 0) & (h <= 3 * math.log(3) + 1e-6)).all()
    single, lp1, _ = ctrl.sample(torch.Generator().manual_seed(3))
    assert lp1.item() == pytest.approx(ctrl.log_prob(single).item(), abs=1e-6)


def test_logits_are_clipped_as_enas_clips_op_logits():
    """Amplitude A = C / op_tanh_reduce bounds a decision's log-odds by 2A, however large the
    head's weights (a 2-node cell: one edge, one decision)."""
    ctrl = Nb201EnasController(nodes=2, hidden=8, tanh_constant=1.1, op_tanh_reduce=2.5)
    with torch.no_grad():
        for p in ctrl.op_head.parameters():
            p.mul_(1000.0)  # would saturate any unclipped softmax
        lp = ctrl.log_prob_batch([Nb201Genotype((op,)) for op in NB201_OPS])
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    spread = (lp.max() - lp.min()).item()
    assert 0.8 * 2 * 0.44 < spread <= 2 * 0.44 + 1e-6  # saturated at the clip, not beyond


def test_log_prob_rejects_cells_it_cannot_sample():
    ctrl = Nb201EnasController(op_names=("skip_connect", "nor_conv_3x3"), hidden=8)
    with pytest.raises(ValueError, match=r"uses \['avg_pool_3x3'\]; the controller's ops"):
        ctrl.log_prob(Nb201Genotype.from_table_key("444444"))
    with pytest.raises(ValueError, match="cells of 4 nodes"):
        ctrl.log_prob(Nb201Genotype(("skip_connect",) * 3))
    with pytest.raises(ValueError, match="op_names must be unique"):
        Nb201EnasController(op_names=("none", "none"))


def test_reinforce_finds_the_rewarded_cell():
    """Reward: the share of edges that hold nor_conv_3x3. REINFORCE raises the mean reward,
    and the derived cell is the all-conv3x3 one (table key 333333)."""
    ctrl = Nb201EnasController(hidden=16, tanh_constant=2.5, op_tanh_reduce=1.0, temperature=1.0)
    search = EnasSearch(
        ctrl, lr=0.05, entropy_weight=0.0, samples_per_step=8, generator=torch.Generator().manual_seed(0)
    )

    def reward(g: Nb201Genotype) -> float:
        return g.count_op("nor_conv_3x3") / 6

    first = search.train_controller(reward, steps=1)["nas/controller_reward"]  # about uniform: 1/5
    for _ in range(10):
        last = search.train_controller(reward, steps=10)["nas/controller_reward"]
    assert first < 0.4 and last > 0.8
    best, score = search.derive(reward, n_samples=50)
    assert best.table_key() == "333333" and score == 1.0


def _supernet() -> Nb201Supernet:
    torch.manual_seed(0)
    model = MODELS.build(
        {"name": "nb201_supernet", "channels": 4, "cells_per_stage": 1}, input_shape=(1, 8, 8), n_classes=3
    )
    assert isinstance(model, Nb201Supernet)
    return model


def test_a_set_cell_trains_only_its_ops():
    model = _supernet()
    cell = Nb201Genotype.from_arch_str(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    )
    model.set_arch(cell)
    assert model.arch == cell and model.cost_key() == cell
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    torch.nn.functional.cross_entropy(model.train()(x), y).backward()
    assert model.alpha.grad is None  # alpha takes no part
    search_cells = [c for c in model.cells if hasattr(c, "edges")]
    for c in search_cells:
        for edge, chosen in zip(c.edges, cell.ops):
            for name in edge.op_names:
                grads = [p.grad for p in edge.op(name).parameters()]
                if name == chosen and grads:
                    assert all(g is not None for g in grads), name
                else:
                    assert all(g is None for g in grads), (name, chosen)
    model.set_arch(None)
    assert model.arch is None and model(x).shape == (6, 3)  # the relaxation again
    with pytest.raises(ValueError, match="does not have"):
        Nb201Supernet((1, 8, 8), 3, channels=4, cells_per_stage=1, ops=["none", "skip_connect"]).set_arch(cell)


def test_arch_accuracy_scores_with_batch_statistics_and_restores_modes():
    model = _supernet()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,))
    cell = Nb201Genotype.from_table_key("333132")
    model.train()
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    acc = model.arch_accuracy(x, y, cell)
    assert model.training and model.arch == cell and 0.0 <= acc <= 1.0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())  # statistics untouched
    model.eval().set_eval_batch_stats(True)
    with torch.no_grad():
        expected = (model(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(expected)
    model.set_arch(None)
    with pytest.raises(RuntimeError, match="needs a cell"):
        model.arch_accuracy(x, y)
