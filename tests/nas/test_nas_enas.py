"""ENAS (micro): controller validity and likelihoods, REINFORCE, derivation, shared-weight supernet."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch

from growray.models import MODELS, build_model
from growray.nas.enas import EnasController, EnasSearch, EnasSupernet
from growray.nas.genotype import Genotype
from growray.nas.ops import ENAS_OPS

torch.set_num_threads(1)


def _all_genotypes(n_nodes: int, ops: tuple[str, ...]) -> list[Genotype]:
    """Every genotype a controller with ``n_nodes`` and ``ops`` can produce."""
    per_node = [list(itertools.product(ops, range(node + 2))) for node in range(n_nodes)]
    cells = [
        tuple(p for pairs in choice for p in pairs)
        for choice in itertools.product(*[list(itertools.product(opts, repeat=2)) for opts in per_node])
    ]
    concat = tuple(range(2, n_nodes + 2))
    return [Genotype(normal=a, normal_concat=concat, reduce=b, reduce_concat=concat) for a in cells for b in cells]


def _skips(g: Genotype) -> int:
    return sum(op == "skip_connect" for op, _ in g.normal)


# ---------------------------------------------------------------- controller


def test_controller_samples_only_valid_cells():
    torch.manual_seed(0)
    ctrl = EnasController(n_nodes=5)
    with torch.no_grad():
        genotypes, log_probs, entropies = ctrl.sample_batch(1000)
    assert len(genotypes) == 1000 and log_probs.shape == entropies.shape == (1000,)
    seen = {"normal": set(), "reduce": set()}
    for g in genotypes:
        assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5, 6)
        for name in ("normal", "reduce"):
            pairs = getattr(g, name)
            assert len(pairs) == 10  # 2 (op, input) pairs per node
            for k, (op, idx) in enumerate(pairs):
                assert op in ENAS_OPS
                assert 0 <= idx <= k // 2 + 1, (name, k, idx)  # only cell inputs and earlier nodes
                seen[name].add((k // 2, idx, op))
    # not degenerate: every (node, input, op) choice occurs in both cells
    every = {(node, i, op) for node in range(5) for i in range(node + 2) for op in ENAS_OPS}
    assert seen["normal"] == every and seen["reduce"] == every
    assert torch.all(log_probs < 0) and torch.all(entropies > 0)


def test_sampling_is_reproducible_with_a_generator():
    torch.manual_seed(0)
    ctrl = EnasController(n_nodes=3)
    a = ctrl.sample(torch.Generator().manual_seed(7))[0]
    b = ctrl.sample(torch.Generator().manual_seed(7))[0]
    assert a == b


def test_log_prob_of_a_genotype_equals_its_sampled_log_prob():
    torch.manual_seed(1)
    ctrl = EnasController(n_nodes=5)
    for _ in range(3):
        g, lp, _ = ctrl.sample()
        scored = ctrl.log_prob(g)
        assert (scored - lp).abs().item() <= 1e-6
        assert scored.requires_grad
    genotypes, lps, _ = ctrl.sample_batch(8)
    assert (ctrl.log_prob_batch(genotypes) - lps).abs().max().item() <= 1e-5
    ctrl.log_prob(genotypes[0]).backward()
    assert ctrl.op_head.weight.grad is not None and ctrl.op_head.weight.grad.abs().sum() > 0


def test_probabilities_of_every_genotype_sum_to_one():
    torch.manual_seed(2)
    ops = ("sep_conv_3x3", "skip_connect")
    ctrl = EnasController(n_nodes=1, op_names=ops, hidden=8, temperature=1.0, tanh_constant=3.0)
    everything = _all_genotypes(1, ops)
    assert len(everything) == 256
    with torch.no_grad():
        total = ctrl.log_prob_batch(everything).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_op_logits_are_clipped_to_the_reduced_tanh_amplitude():
    # with T = 1 and huge op-head outputs, op logits saturate at +-C/op_tanh_reduce, so the
    # most extreme op probability is softmax([a, -a]) with a = 1.1 / 2.5
    ctrl = EnasController(n_nodes=1, op_names=("sep_conv_3x3", "skip_connect"), hidden=4, temperature=1.0)
    with torch.no_grad():
        ctrl.op_head.weight.zero_()
        ctrl.op_head.bias.copy_(torch.tensor([100.0, -100.0]))
    g = Genotype(
        normal=(("sep_conv_3x3", 0), ("sep_conv_3x3", 1)),
        normal_concat=(2,),
        reduce=(("sep_conv_3x3", 0), ("sep_conv_3x3", 0)),
        reduce_concat=(2,),
    )
    a = 1.1 / 2.5
    best_op = math.log(math.exp(a) / (math.exp(a) + math.exp(-a)))
    inputs = ctrl.log_prob(g).item() - 4 * best_op  # the 4 input decisions
    assert -4 * math.log(2) - 4 * 1.1 <= inputs <= -4 * math.log(2) + 4 * 1.1
    with torch.no_grad():  # the 4 op decisions contribute exactly 4 * best_op
        ctrl.attn_v.weight.zero_()  # uniform inputs: 4 * log(1/2)
        assert ctrl.log_prob(g).item() == pytest.approx(4 * best_op - 4 * math.log(2), abs=1e-5)


def test_controller_rejects_bad_arguments_and_foreign_genotypes():
    with pytest.raises(ValueError, match="n_nodes"):
        EnasController(n_nodes=0)
    with pytest.raises(ValueError, match="op_names"):
        EnasController(op_names=["sep_conv_3x3", "sep_conv_3x3"])
    with pytest.raises(ValueError, match="temperature"):
        EnasController(temperature=0.0)
    ctrl = EnasController(n_nodes=2, op_names=("sep_conv_3x3", "skip_connect"), hidden=8)
    g = EnasController(n_nodes=3, hidden=8).sample()[0]
    with pytest.raises(ValueError, match="2 nodes"):
        ctrl.log_prob(g)
    with pytest.raises(ValueError, match="max_pool_3x3"):
        bad = (("max_pool_3x3", 0), ("skip_connect", 1)) * 2
        ctrl.log_prob(Genotype(normal=bad, normal_concat=(2, 3), reduce=bad, reduce_concat=(2, 3)))
    with pytest.raises(ValueError, match="baseline_decay"):
        EnasSearch(ctrl, baseline_decay=1.0)
    with pytest.raises(ValueError, match="samples_per_step"):
        EnasSearch(ctrl, samples_per_step=0)


# ---------------------------------------------------------------- REINFORCE


def test_reinforce_raises_the_log_prob_of_rewarded_cells():
    torch.manual_seed(3)
    ctrl = EnasController(n_nodes=3)
    search = EnasSearch(ctrl, lr=0.02, samples_per_step=10)
    skip = ("skip_connect", 0), ("skip_connect", 1)
    pool = ("max_pool_3x3", 0), ("max_pool_3x3", 1)
    rewarded = Genotype(normal=skip * 3, normal_concat=(2, 3, 4), reduce=skip * 3, reduce_concat=(2, 3, 4))
    other = Genotype(normal=pool * 3, normal_concat=(2, 3, 4), reduce=skip * 3, reduce_concat=(2, 3, 4))
    with torch.no_grad():
        before = ctrl.log_prob(rewarded).item(), ctrl.log_prob(other).item()
    stats = search.train_controller(lambda g: _skips(g) / 6, steps=4)
    with torch.no_grad():
        after = ctrl.log_prob(rewarded).item(), ctrl.log_prob(other).item()
    gain_rewarded, gain_other = after[0] - before[0], after[1] - before[1]
    assert gain_rewarded > 1.0  # the all-skip normal cell became much likelier ...
    # ... than a cell that differs only in its (unrewarded) normal-cell ops; that one may gain
    # too, since both share the rewarded input choices and reduction cell
    assert gain_rewarded > gain_other + 1.0
    assert set(stats) >= {
        "nas/controller_reward",
        "nas/controller_baseline",
        "nas/controller_entropy",
        "nas/controller_loss",
    }
    assert 0.0 <= stats["nas/controller_reward"] <= 1.0


def test_baseline_is_an_ema_moving_towards_the_reward():
    torch.manual_seed(4)
    ctrl = EnasController(n_nodes=2, hidden=8)
    search = EnasSearch(ctrl, baseline_decay=0.9, samples_per_step=5)
    search.train_controller(lambda g: 0.25, steps=1)
    assert search.baseline == pytest.approx(0.25)  # unset -> the first step's mean reward
    search.baseline = 0.0
    stats = search.train_controller(lambda g: 1.0, steps=2)
    assert search.baseline == pytest.approx(1 - 0.9**10)  # one EMA update per sample
    assert stats["nas/controller_baseline"] == pytest.approx(search.baseline)


def test_entropy_bonus_increases_entropy():
    torch.manual_seed(5)
    ops = ("sep_conv_3x3", "skip_connect")
    ctrl = EnasController(n_nodes=1, op_names=ops, hidden=8, temperature=1.0, tanh_constant=3.0)
    with torch.no_grad():  # start from a peaked op distribution
        ctrl.op_head.bias.copy_(torch.tensor([3.0, -3.0]))
    everything = _all_genotypes(1, ops)

    def joint_entropy() -> float:
        with torch.no_grad():
            lp = ctrl.log_prob_batch(everything)
        return float(-(lp.exp() * lp).sum())

    frozen = {k: v.clone() for k, v in ctrl.state_dict().items()}
    # a constant reward gives zero advantage: without the bonus nothing moves ...
    EnasSearch(ctrl, entropy_weight=0.0).train_controller(lambda g: 0.5, steps=2)
    assert all(torch.equal(frozen[k], v) for k, v in ctrl.state_dict().items())
    # ... and with it the loss is -w * entropy, so the entropy rises
    h0 = joint_entropy()
    search = EnasSearch(ctrl, lr=0.05, entropy_weight=1.0, samples_per_step=4)
    stats = search.train_controller(lambda g: 0.5, steps=1)
    assert stats["nas/controller_loss"] == pytest.approx(-stats["nas/controller_entropy"], rel=1e-5)
    search.train_controller(lambda g: 0.5, steps=5)
    assert joint_entropy() > h0 + 0.1


def test_derive_returns_the_best_scored_sample():
    torch.manual_seed(6)
    search = EnasSearch(EnasController(n_nodes=3, hidden=16), generator=torch.Generator().manual_seed(0))
    scores: dict[Genotype, float] = {}

    def score(g: Genotype) -> float:
        assert g not in scores  # each distinct genotype is scored once
        scores[g] = _skips(g) + 0.01 * sum(i for _, i in g.reduce)
        return scores[g]

    best, best_score = search.derive(score, n_samples=30)
    assert 1 <= len(scores) <= 30
    assert best_score == max(scores.values()) and scores[best] == best_score


def test_search_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(7)
    search = EnasSearch(
        EnasController(n_nodes=2, hidden=8), samples_per_step=3, generator=torch.Generator().manual_seed(1)
    )
    search.train_controller(lambda g: float(_skips(g)), steps=2)
    torch.save(search.state_dict(), tmp_path / "s.pt")
    next_stats = search.train_controller(lambda g: float(_skips(g)), steps=1)

    fresh = EnasSearch(EnasController(n_nodes=2, hidden=8), samples_per_step=3, generator=torch.Generator())
    fresh.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert fresh.baseline is not None
    assert fresh.train_controller(lambda g: float(_skips(g)), steps=1) == pytest.approx(next_stats)


# ---------------------------------------------------------------- supernet


def _tiny_supernet(input_shape: tuple[int, int, int]) -> EnasSupernet:
    return EnasSupernet(input_shape, 5, channels=4, layers=3, nodes=3, stem_multiplier=1)


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 16, 16)])
def test_supernet_trains_only_the_chosen_candidates(input_shape):
    torch.manual_seed(8)
    net = _tiny_supernet(input_shape)
    g = EnasController(n_nodes=3, hidden=16).sample()[0]
    net.set_arch(g)
    out = net(torch.randn(2, *input_shape))
    assert out.shape == (2, 5)
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 3])).backward()
    chosen = {id(p) for m in net.chosen_modules(g) for p in m.parameters()}
    assert chosen  # some chosen candidates have weights
    n_unchosen = 0
    for cell in net.cells:
        for p in cell.edges.parameters():
            if id(p) in chosen:
                assert p.grad is not None
            else:
                n_unchosen += 1
                assert p.grad is None
    assert n_unchosen > 0
    for p in [*net.stem.parameters(), *net.classifier.parameters()]:
        assert p.grad is not None
    last = net.cells[-1]  # its output feeds the classifier: a cell input is trained iff it is read
    used = {i for _, i in (g.reduce if last.reduction else g.normal)}
    for i, pre in enumerate([last.preprocess0, last.preprocess1]):
        assert all((p.grad is not None) == (i in used) for p in pre.parameters())


def test_supernet_forward_needs_an_architecture_that_fits():
    net = _tiny_supernet((1, 8, 8))
    with pytest.raises(RuntimeError, match="set_arch"):
        net(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="nodes=3"):
        net.set_arch(EnasController(n_nodes=2, hidden=8).sample()[0])
    small = EnasSupernet((1, 8, 8), 5, channels=4, layers=3, nodes=1, ops=["skip_connect"])
    with pytest.raises(ValueError, match="not candidates"):
        small.set_arch(EnasController(n_nodes=1, op_names=("sep_conv_3x3",), hidden=8).sample()[0])
    with pytest.raises(ValueError, match="ops"):
        EnasSupernet((1, 8, 8), 5, ops=["sep_conv_3x3", "sep_conv_3x"])


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 16, 16)])
def test_discretized_network_matches_the_supernet_in_eval_mode(input_shape):
    torch.manual_seed(9)
    net = _tiny_supernet(input_shape)
    ctrl = EnasController(n_nodes=3, hidden=16)
    opt = torch.optim.SGD(net.weight_parameters(), lr=0.1)
    for _ in range(3):  # move weights and BatchNorm statistics away from their initial values
        net.set_arch(ctrl.sample()[0])
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.randn(4, *input_shape)), torch.randint(0, 5, (4,))).backward()
        opt.step()
    g = ctrl.sample()[0]
    x = torch.randn(3, *input_shape)
    net.eval()
    net.set_arch(g)
    child = net.discretized(g)
    assert not child.training
    assert child.spec().kind == "cell_network" and child.genotype == g
    with torch.no_grad():
        assert (child(x) - net(x)).abs().max().item() <= 1e-5
    n_child = sum(p.numel() for p in child.parameters())
    assert n_child < sum(p.numel() for p in net.parameters())
    with torch.no_grad():  # a copy, not a view of the shared weights
        next(child.parameters()).add_(1.0)
    assert not torch.equal(next(child.parameters()), next(net.parameters()))


def test_supernet_is_registered_and_rebuilds_from_its_spec():
    assert "enas_supernet" in MODELS.names()
    net = _tiny_supernet((1, 8, 8))
    spec = net.spec()
    assert spec.kind == "enas_supernet" and net.sites() == [] and net.widths() == {}
    rebuilt = build_model(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    assert len(net.weight_parameters()) == len(list(net.parameters()))
    assert net.n_nodes == 3 and net.op_names == ENAS_OPS


def test_arch_accuracy_uses_batch_statistics_without_touching_the_running_ones():
    torch.manual_seed(10)
    net = _tiny_supernet((1, 8, 8))
    g = EnasController(n_nodes=3, hidden=16).sample()[0]
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    net.set_arch(g)
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 1, 8, 8) * 3 + 1)  # running stats far from this batch's
        buffers = {k: v.clone() for k, v in net.state_dict().items()}
        batch_logits = net(x)  # train mode: batch statistics (no drop-path by default)
        net.load_state_dict(buffers)
        net.eval()
        eval_pred = net(x).argmax(1)
    top2 = batch_logits.topk(2, dim=1).values
    assert (top2[:, 0] - top2[:, 1]).min().item() > 1e-4  # no near-tie: rounding cannot flip a prediction
    net.train()
    batch_pred = batch_logits.argmax(1)
    assert net.arch_accuracy(x, y, g) == (batch_pred == y).float().mean().item()
    now = net.state_dict()
    assert all(torch.equal(v, now[k]) for k, v in buffers.items())  # running stats untouched
    assert net.training and all(m.training for m in net.modules())  # mode restored
    assert net.arch_accuracy(x, y, batch_stats=False) == (eval_pred == y).float().mean().item()


def _norms(net: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def test_eval_batch_stats_normalises_with_the_batch_and_leaves_buffers_alone():
    torch.manual_seed(11)
    net = EnasSupernet((1, 8, 8), 5, channels=4, layers=3, nodes=3, stem_multiplier=1, drop_path=0.3)
    g = EnasController(n_nodes=3, hidden=16).sample()[0]
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 5, (16,))
    net.set_arch(g)
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 1, 8, 8) * 3 + 1)  # running stats far from x's
    buffers = {k: v.clone() for k, v in net.state_dict().items()}
    assert net.eval_batch_stats is False
    net.eval()
    with torch.no_grad():
        plain = net(x)
    net.set_eval_batch_stats(True)
    net.train()
    net.eval()  # the switch survives train()/eval() toggles
    assert net.eval_batch_stats is True
    with torch.no_grad():
        switched, again = net(x), net(x)
    now = net.state_dict()
    assert all(torch.equal(v, now[k]) for k, v in buffers.items())  # running stats and counts untouched
    assert all(not m.training and m.track_running_stats for m in _norms(net))  # modes restored
    assert torch.equal(switched, again)  # drop-path is off in eval mode
    assert (switched - plain).abs().max().item() > 1e-2  # the running statistics were not used
    # ... but the batch's: a train-mode forward without drop-path normalises the same way
    ref = copy.deepcopy(net)
    ref.drop_path = 0.0
    ref.train()
    with torch.no_grad():
        torch.testing.assert_close(ref(x), switched, atol=1e-6, rtol=1e-6)
    # arch_accuracy(batch_stats=True) is this eval-mode forward
    assert net.arch_accuracy(x, y) == (switched.argmax(1) == y).float().mean().item()
    assert net.arch_accuracy(x, y, batch_stats=False) == (plain.argmax(1) == y).float().mean().item()
    assert net.eval_batch_stats is True and not net.training  # the switch and the mode are kept
    with pytest.raises(ValueError, match=r"^enabled must be true or false"):
        net.set_eval_batch_stats(1)


def test_eval_batch_stats_leaves_training_mode_alone():
    torch.manual_seed(12)
    net = EnasSupernet((1, 8, 8), 5, channels=4, layers=3, nodes=3, stem_multiplier=1, drop_path=0.3)
    net.set_arch(EnasController(n_nodes=3, hidden=16).sample()[0])
    twin = copy.deepcopy(net)
    net.set_eval_batch_stats(True)
    x = torch.randn(8, 1, 8, 8)
    net.train()
    twin.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = net(x)
        torch.manual_seed(0)
        b = twin(x)
    assert torch.equal(a, b)  # same drop-path draws, same batch statistics
    twin_state = twin.state_dict()
    assert all(torch.equal(v, twin_state[k]) for k, v in net.state_dict().items())  # running stats updated alike
    assert "_eval_batch_stats" not in net.state_dict() and "eval_batch_stats" not in net.spec().params
