"""Depth growth: Net2DeeperNet and Gradual DropIn on MLPs and CNNs, in the strategy and the hook."""

from __future__ import annotations

import json

import pytest
import torch

from growray.growth import (
    DEEPENERS,
    TRIGGERS,
    DropInDeepener,
    GrowthEvent,
    GrowthRequest,
    GrowthStrategy,
    Initializer,
    Net2DeeperDeepener,
    RandomInitializer,
    ScheduleTrigger,
    SiteLimits,
    Trigger,
    TriggerContext,
    add_new_parameters,
    advance_dropin,
    dropin_gates,
)
from growray.models import ArchSpec, GrowableCNN, GrowableMLP, build_model
from growray.testing.deepeners import DeepenerConformance
from growray.testing.triggers import TriggerConformance

torch.set_num_threads(1)


def _fill_stats(model, x):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x * 2 + 0.5)
    model.eval()


def _mlp(batch_norm, activation="relu", seed=0):
    torch.manual_seed(seed)
    m = GrowableMLP((4, 4), 3, hidden=[6, 5], activation=activation, batch_norm=batch_norm)
    _fill_stats(m, torch.randn(32, 4, 4))
    return m


def _cnn(batch_norm, kernel_size=3, seed=0):
    torch.manual_seed(seed)
    m = GrowableCNN(
        (2, 8, 8), 3, channels=[3, 4], pool_after=[1], kernel_size=kernel_size, hidden=[5], batch_norm=batch_norm
    )
    _fill_stats(m, torch.randn(32, 2, 8, 8))
    return m


def _max_change(model, x, fn):
    model.eval()
    with torch.no_grad():
        before = model(x)
    fn()
    model.eval()
    with torch.no_grad():
        return (model(x) - before).abs().max().item()


# ------------------------------------------------------------------ net2deeper
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("family", ["mlp", "cnn", "cnn_k5"])
def test_net2deeper_preserves_the_function_at_every_site(family, batch_norm):
    model = _mlp(batch_norm) if family == "mlp" else _cnn(batch_norm, kernel_size=5 if family == "cnn_k5" else 3)
    x = torch.randn(16, *model.input_shape)
    batch = (torch.randn(64, *model.input_shape) * 1.5 + 0.3, None)
    for site in list(model.sites()):
        err = _max_change(model, x, lambda s=site: Net2DeeperDeepener().apply(model, s, batch=batch))
        assert err <= 1e-5, (site, err)
    assert len(model.sites()) == (4 if family == "mlp" else 6)
    if family != "mlp":  # the inserted conv blocks sit before the pool: the pooled stage keeps its output shape
        assert model.pool_after == [3] and model.feature_hw == (4, 4)


@pytest.mark.parametrize("family", ["mlp_bn", "cnn_bn"])
def test_net2deeper_bn_undoes_itself_on_the_training_batch_in_train_mode(family):
    """Statistics come from a train-mode pass (as training sees the features), so the
    train-mode function is exact on that batch; running statistics are left untouched."""
    import copy

    model = _mlp(True) if family == "mlp_bn" else _cnn(True)
    xb = torch.randn(64, *model.input_shape) * 2 + 1

    def train_out(m):
        m = copy.deepcopy(m).train()
        with torch.no_grad():
            return m(xb)

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    running = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    before = train_out(model)
    change = Net2DeeperDeepener().apply(model, model.sites()[0], batch=(xb, None))
    for m, (mean, var, n) in zip(norms, running):
        assert (
            torch.equal(m.running_mean, mean)
            and torch.equal(m.running_var, var)
            and torch.equal(m.num_batches_tracked, n)
        )
    assert (train_out(model) - before).abs().max().item() <= 1e-5
    norm = model.block(change.new_site).norm
    assert torch.allclose(norm.weight, torch.sqrt(norm.running_var + norm.eps)) and torch.equal(
        norm.bias, norm.running_mean
    )


@pytest.mark.parametrize("activation", ["tanh", "leaky_relu", "gelu", "silu"])
def test_net2deeper_rejects_activations_that_are_not_idempotent(activation):
    model = _mlp(False, activation)
    reason = Net2DeeperDeepener().check_site(model, "hidden.0", SiteLimits())
    assert reason and f"φ = {activation!r} does not" in reason and "rational" in reason and "dropin" in reason
    with pytest.raises(ValueError, match="net2deeper inserts an identity layer"):
        Net2DeeperDeepener().apply(model, "hidden.0", batch=(torch.randn(8, 4, 4), None))
    assert model.sites() == ["hidden.0", "hidden.1"], "a rejected insertion leaves the model alone"
    # relu after leaky_relu/tanh is no better (negative outputs); dropin works with anything
    assert Net2DeeperDeepener(activation="relu").check_site(model, "hidden.0", SiteLimits())
    assert DropInDeepener().check_site(model, "hidden.0", SiteLimits()) is None


def test_per_block_activation_override():
    """An identity-initialised rational after tanh preserves the function; the spec records it."""
    model = _mlp(True, "tanh")
    x = torch.randn(16, 4, 4)
    deepener = Net2DeeperDeepener(activation="rational")
    assert deepener.check_site(model, "hidden.1", SiteLimits()) is None
    err = _max_change(model, x, lambda: deepener.apply(model, "hidden.1", batch=(torch.randn(64, 4, 4), None)))
    assert err <= 1e-5
    spec = model.spec()
    assert spec.params["hidden_activations"] == ["tanh", "tanh", "rational"]
    rebuilt = build_model(ArchSpec.from_json(spec.to_json()))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt(x), model(x))
    # an existing activation as override: the block after a relu site with relu is exact too
    relu = _mlp(False)
    err = _max_change(relu, x, lambda: Net2DeeperDeepener(activation="relu").apply(relu, "hidden.0"))
    assert err <= 1e-6


def test_net2deeper_with_bn_needs_a_batch():
    with pytest.raises(ValueError, match="needs a training batch"):
        Net2DeeperDeepener().apply(_mlp(True), "hidden.0")


# ------------------------------------------------------------------ dropin
@pytest.mark.parametrize("family", ["mlp_bn", "cnn_bn"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_dropin_at_gate_zero_preserves_exactly(family, mode):
    model = _mlp(True) if family == "mlp_bn" else _cnn(True)
    x = torch.randn(16, *model.input_shape)
    sites = list(model.sites())
    for site in sites:
        with torch.no_grad():
            model.train(mode == "train")
            torch.manual_seed(5)
            before = model(x)
            DropInDeepener(steps=10).apply(model, site)
            model.train(mode == "train")
            torch.manual_seed(5)
            assert torch.equal(model(x), before), site  # bit-identical, whatever the new block's random weights
    assert all(v == 0.0 for v in dropin_gates(model).values()) and len(dropin_gates(model)) == len(sites)


def test_dropin_gate_opens_linearly_and_is_removed_at_one():
    model = _mlp(True)
    x = torch.randn(16, 4, 4)
    change = DropInDeepener(steps=4).apply(model, "hidden.0")
    site = change.new_site
    block = model.block(site)
    assert model.locked_sites().keys() == {"hidden.0", site}
    with torch.no_grad():
        skip = model.hidden[0](x.flatten(1))
        inner = block.act(block.norm(block.linear(skip)))
    values = []
    for k in range(1, 5):
        assert advance_dropin(model) == ([site] if k == 4 else [])
        values.append(dropin_gates(model).get(site))
        if k < 4:  # eval mode mixes by the expectation
            with torch.no_grad():
                assert torch.allclose(block(skip), (1 - k / 4) * skip + k / 4 * inner, atol=1e-6)
    assert values == [0.25, 0.5, 0.75, None]
    assert block.gate is None and model.locked_sites() == {}
    assert "hidden_dropin" not in model.spec().params
    with torch.no_grad():
        assert torch.equal(block(skip), inner)


def test_dropin_mask_is_per_unit_bernoulli_in_training():
    torch.manual_seed(0)
    model = GrowableCNN((2, 8, 8), 3, channels=[4, 4], pool_after=[1], batch_norm=True)
    DropInDeepener(steps=2).apply(model, "conv.0")
    advance_dropin(model)  # gate 0.5
    block = model.block("conv.2").train()
    x = torch.randn(64, 4, 8, 8)
    with torch.no_grad():
        y = block(x)
        z = block.act(block.norm(block.conv(x)))
    from_block = torch.isclose(y, z).all(dim=(2, 3)) & ~torch.isclose(x, z).all(dim=(2, 3))
    from_skip = torch.isclose(y, x).all(dim=(2, 3)) & ~torch.isclose(x, z).all(dim=(2, 3))
    assert bool((from_block | from_skip).all()), "each (sample, channel) takes one path entirely"
    assert 0.3 < from_block.float().mean().item() < 0.7


def test_spec_round_trip_of_a_deepened_and_gated_model():
    model = _cnn(True)
    batch = (torch.randn(64, 2, 8, 8), None)
    Net2DeeperDeepener().apply(model, "conv.1", batch=batch)
    DropInDeepener(steps=10).apply(model, "conv.0")
    DropInDeepener(steps=10, activation="tanh").apply(model, "fc.0")
    for _ in range(3):
        advance_dropin(model)
    spec = ArchSpec.from_json(json.dumps(json.loads(model.spec().to_json())))
    assert spec == model.spec()
    p = spec.params
    assert p["channels"] == [3, 3, 4, 4] and p["pool_after"] == [3] and p["conv_ids"] == [0, 3, 1, 2]
    assert p["conv_dropin"] == [False, True, False, False] and p["hidden_dropin"] == [False, True]
    assert p["hidden_activations"] == ["relu", "tanh"] and "conv_activations" not in p
    rebuilt = build_model(spec)
    assert rebuilt.sites() == model.sites() == ["conv.0", "conv.3", "conv.1", "conv.2", "fc.0", "fc.1"]
    rebuilt.load_state_dict(model.state_dict())
    assert dropin_gates(rebuilt) == dropin_gates(model) == {"conv.3": pytest.approx(0.3), "fc.1": pytest.approx(0.3)}
    x = torch.randn(8, 2, 8, 8)
    rebuilt.eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))
    # a spec without the new keys (written before depth growth existed) still builds
    old = {k: v for k, v in model.spec().to_dict().items() if not k.startswith(("conv_", "hidden_"))}
    old.update(channels=[3, 4], pool_after=[1], hidden=[5])
    assert build_model(ArchSpec.from_dict(old)).sites() == ["conv.0", "conv.1", "fc.0"]


@pytest.mark.parametrize("family", ["mlp_bn", "cnn_bn"])
def test_inserted_blocks_are_width_sites_like_any_other(family):
    """After deepening (also after the last conv, which then feeds the flatten), every site widens exactly."""
    from growray.growth import widen

    model = _mlp(True) if family == "mlp_bn" else _cnn(True)
    batch = (torch.randn(64, *model.input_shape), None)
    for site in list(model.sites()):
        Net2DeeperDeepener().apply(model, site, batch=batch)
    x = torch.randn(16, *model.input_shape)
    widths = model.widths()
    for site in model.sites():
        err = _max_change(model, x, lambda s=site: widen(model, s, RandomInitializer().propose(model, s, 2)))
        assert err <= 1e-6, site  # zero fan-out; the wider matmuls may round differently (float32)
    assert model.widths() == {site: w + 2 for site, w in widths.items()}
    rebuilt = build_model(ArchSpec.from_json(model.spec().to_json()))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), model(x))


def test_bad_per_block_options_are_rejected():
    with pytest.raises(ValueError, match="hidden_dropin"):
        GrowableMLP((4,), 2, hidden=[5, 6], hidden_dropin=[False, True])  # 5 -> 6 cannot mix with its input
    with pytest.raises(ValueError, match="hidden_ids"):
        GrowableMLP((4,), 2, hidden=[5, 5], hidden_ids=[1, 1])
    with pytest.raises(ValueError, match="conv_activations"):
        GrowableCNN((1, 8, 8), 2, channels=[2, 2], conv_activations=["relu"])
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        DropInDeepener(steps=0)


# ------------------------------------------------------------------ optimizer
def test_new_parameters_join_the_producers_group_and_incumbents_keep_their_state():
    model = _mlp(False)
    head = list(model.head.parameters())
    body = [p for p in model.parameters() if all(p is not h for h in head)]
    opt = torch.optim.Adam([{"params": body, "lr": 0.01, "weight_decay": 0.1}, {"params": head, "lr": 0.5}])
    x, y = torch.randn(32, 4, 4), torch.randint(0, 3, (32,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    before = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    anchor = model.site_modules("hidden.1").producer.weight
    change = Net2DeeperDeepener().apply(model, "hidden.1")
    add_new_parameters(opt, model, change.new_params, anchor)
    g0 = opt.param_groups[0]
    assert [id(p) for p in g0["params"]] == [id(p) for p in model.parameters() if all(p is not h for h in head)]
    assert g0["lr"] == 0.01 and g0["weight_decay"] == 0.1 and len(opt.param_groups) == 2
    for p in model.parameters():
        if id(p) in before:
            assert all(torch.equal(opt.state[p][k], v) for k, v in before[id(p)].items())
    add_new_parameters(opt, model, change.new_params, anchor)  # idempotent
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


# ------------------------------------------------------------------ strategy and trigger
class _DeepenOnce(Trigger):
    def __init__(self, site):
        self.site = site

    def check(self, ctx):
        if ctx.phase != "step":
            return []
        return [GrowthRequest(self.site, 1, 0.5, "test", kind="deepen")]


def test_strategy_deepens_emits_events_and_respects_max_depth():
    model = _mlp(True).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe = (torch.randn(32, 4, 4), torch.randint(0, 3, (32,)))
    batch = (torch.randn(64, 4, 4), torch.randint(0, 3, (64,)))
    strategy = GrowthStrategy(
        _DeepenOnce("hidden.0"),
        RandomInitializer(),
        deepener=DEEPENERS.build("net2deeper"),
        deepener_name="net2deeper",
        max_depth=3,
    )
    (ev,) = strategy.step(model, opt, TriggerContext(7, 1, "step", model.widths(), model=model, batch=batch), probe)
    assert model.training, "mode restored"
    assert (ev.kind, ev.site, ev.after, ev.n_added, ev.width_before, ev.width_after) == (
        "deepen",
        "hidden.2",
        "hidden.0",
        6,
        0,
        6,
    )
    assert (ev.step, ev.epoch, ev.trigger, ev.initializer, ev.trigger_score) == (7, 1, "_DeepenOnce", "net2deeper", 0.5)
    assert ev.preserves_function and 0.0 <= ev.preservation_error <= 1e-5
    assert ev.params_after - ev.params_before == 6 * 6 + 6 + 2 * 6
    assert ev.flops_after - ev.flops_before == 2 * 6 * 6
    assert GrowthEvent.from_dict(json.loads(json.dumps(ev.to_dict()))) == ev
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    ctx = TriggerContext(8, 1, "step", model.widths(), model=model, batch=batch)
    assert strategy.step(model, opt, ctx, probe) == [] and len(model.sites()) == 3  # max_depth


def test_strategy_without_a_deepener_rejects_deepen_requests():
    model = _mlp(False)
    strategy = GrowthStrategy(_DeepenOnce("hidden.1"), RandomInitializer())
    with pytest.raises(ValueError, match="no deepener"):
        strategy.step(model, None, TriggerContext(1, 0, "step", model.widths()), (torch.randn(4, 4, 4), None))
    with pytest.raises(TypeError, match="deepener must be a Deepener"):
        GrowthStrategy(_DeepenOnce("hidden.1"), RandomInitializer(), deepener="dropin")
    with pytest.raises(ValueError, match="max_depth"):
        GrowthStrategy(_DeepenOnce("hidden.1"), RandomInitializer(), max_depth=0)


def test_widen_skips_sites_locked_by_a_ramping_dropin_block():
    model = _mlp(False)
    DropInDeepener(steps=3).apply(model, "hidden.0")
    strategy = GrowthStrategy(ScheduleTrigger(every_steps=1, n_units=2), RandomInitializer())
    probe = (torch.randn(8, 4, 4), None)
    events = strategy.step(model, None, TriggerContext(1, 0, "step", model.widths()), probe)
    assert [e.site for e in events] == ["hidden.1"]
    for _ in range(3):
        advance_dropin(model)
    events = strategy.step(model, None, TriggerContext(2, 0, "step", model.widths()), probe)
    assert [e.site for e in events] == ["hidden.0", "hidden.2", "hidden.1"]
    assert model.widths() == {"hidden.0": 8, "hidden.2": 8, "hidden.1": 9}  # hidden.1 grew at both steps
    assert model(torch.randn(3, 4, 4)).shape == (3, 3)


class _HintedInitializer(Initializer):
    uses_hint = True

    def __init__(self):
        self.hints = []

    def propose(self, model, site, n_new, batch=None, hint=None):
        self.hints.append(hint)
        return RandomInitializer().propose(model, site, n_new, batch=batch)


def test_payload_reaches_an_initializer_that_uses_hints():
    class Once(Trigger):
        def check(self, ctx):
            return [GrowthRequest("hidden.1", 2, None, "", payload={"fan_in": torch.ones(2, 6)})]

    init = _HintedInitializer()
    model = _mlp(False)
    GrowthStrategy(Once(), init).step(
        model, None, TriggerContext(1, 0, "step", model.widths()), (torch.randn(4, 4, 4), None)
    )
    assert len(init.hints) == 1 and torch.equal(init.hints[0]["fan_in"], torch.ones(2, 6))
    with pytest.raises(ValueError, match="kind"):
        GrowthRequest("hidden.0", 1, kind="deeper")

    class HintedDeepener(DropInDeepener):
        uses_hint = True

        def apply(self, model, site, batch=None, hint=None):
            init.hints.append(hint)
            return super().apply(model, site, batch=batch)

    class DeepenWithPayload(Trigger):
        def check(self, ctx):
            return [GrowthRequest("hidden.0", 1, kind="deepen", payload="why")]

    strategy = GrowthStrategy(DeepenWithPayload(), init, deepener=HintedDeepener(steps=3))
    (ev,) = strategy.step(model, None, TriggerContext(2, 0, "step", model.widths()), (torch.randn(4, 4, 4), None))
    assert init.hints[-1] == "why" and ev.kind == "deepen" and ev.initializer == "HintedDeepener"


def test_schedule_trigger_can_ask_for_depth():
    widths = {"conv.0": 3, "conv.1": 4, "fc.0": 5}
    ctx = TriggerContext(10, 0, "step", widths)
    (req,) = ScheduleTrigger(every_steps=5, kind="deepen").check(ctx)
    assert (req.site, req.kind, req.n_units) == ("fc.0", "deepen", 1)
    assert ScheduleTrigger(every_steps=5, kind="deepen", deepen_site="first").check(ctx)[0].site == "conv.0"
    assert ScheduleTrigger(every_steps=5, kind="deepen", deepen_site="conv.1").check(ctx)[0].site == "conv.1"
    assert ScheduleTrigger(every_steps=5, kind="deepen").check(TriggerContext(11, 0, "step", widths)) == []
    with pytest.raises(ValueError, match=r"deepen_site 'conv\.9' is not a site"):
        ScheduleTrigger(every_steps=5, kind="deepen", deepen_site="conv.9").check(ctx)
    with pytest.raises(ValueError, match="kind must be"):
        ScheduleTrigger(kind="deeper")
    params = TRIGGERS.user_parameters("schedule")
    assert params["kind"].default == "widen" and params["deepen_site"].default == "last"


class TestDeepenScheduleTrigger(TriggerConformance):
    @pytest.fixture
    def trigger_factory(self):
        return lambda: TRIGGERS.build({"name": "schedule", "kind": "deepen", "every_steps": 7})


# ------------------------------------------------------------------ in the training loop
def test_growth_hook_advances_gates_and_a_deepened_run_resumes_exactly(tmp_path):
    from growray.config import TrainerConfig
    from growray.data import TensorSplits
    from growray.kinds.growth import GrowthHook
    from growray.train import Trainer

    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(96, 4, 4, generator=g), torch.randint(0, 3, (96,), generator=g)
    data = TensorSplits((xs[:64], ys[:64]), (xs[64:80], ys[64:80]), (xs[80:], ys[80:]), (4, 4), 3)
    cfg = TrainerConfig(epochs=4, batch_size=16, optimizer="adam", lr=0.01, log_every_steps=4, device="cpu")

    def hooks():
        strategy = GrowthStrategy(
            ScheduleTrigger(every_steps=5, kind="deepen", stop_step=5),
            RandomInitializer(),
            deepener=DropInDeepener(steps=6),
            deepener_name="dropin",
        )
        return [GrowthHook(strategy, data.val, buffer_size=32)]

    def fresh():
        torch.manual_seed(1)
        return GrowableMLP((4, 4), 3, hidden=[6], batch_norm=True)

    straight = Trainer(fresh(), data, cfg, hooks=hooks(), seed=2)
    straight.fit()
    assert straight.model.sites() == ["hidden.0", "hidden.1"] and dropin_gates(straight.model) == {}
    (ev,) = straight.events
    assert (ev["kind"], ev["site"], ev["after"], ev["step"]) == ("deepen", "hidden.1", "hidden.0", 5)
    assert ev["preservation_error"] == 0.0
    assert straight.architecture_metrics()["growth/depth"] == 2.0

    first = Trainer(fresh(), data, cfg, hooks=hooks(), seed=2)
    first.cfg = cfg.model_copy(update={"epochs": 2})  # stop after 8 steps: the gate is still ramping
    first.fit()
    assert dropin_gates(first.model) == {"hidden.1": 0.5}
    first.save(str(tmp_path))
    resumed = Trainer.from_checkpoint(str(tmp_path), data, cfg, hooks=hooks(), seed=2)
    assert dropin_gates(resumed.model) == {"hidden.1": 0.5}
    resumed.fit()
    assert resumed.events == straight.events
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


# ------------------------------------------------------------------ conformance
class TestRegisteredDeepeners(DeepenerConformance):
    @pytest.fixture(params=DEEPENERS.names())
    def deepener(self, request):
        return DEEPENERS.build(request.param)


class TestRationalNet2Deeper(DeepenerConformance):
    @pytest.fixture
    def deepener(self):
        return DEEPENERS.build({"name": "net2deeper", "activation": "rational"})
