"""SENN: the natural expansion score, its lower bound, the trigger and the initializer."""

import json

import pytest
import torch
import torch.nn.functional as F

from growray.growth import INITIALIZERS, TRIGGERS, TriggerContext, widen
from growray.growth.senn import SENNInitializer, SENNTrigger, measure_site
from growray.growth.senn_score import (
    candidate_gain,
    damp,
    layer_stats,
    optimize_proposals,
    with_bias_column,
)
from growray.models import GrowableMLP, make_activation
from growray.testing.initializers import InitializerConformance
from growray.testing.triggers import TriggerConformance

torch.set_num_threads(1)


# --- the score --------------------------------------------------------------------------


def _exact_gain(a_c, a_p, g, g_hat, tik):
    """eta with the candidate as an extra input minus eta without it, computed directly from
    the full (damped) A: the Schur complement is implicit in inv(A_full)."""
    n = a_c.shape[0]
    s_inv = torch.linalg.inv(damp(g_hat.t() @ g_hat / n, tik))

    def eta(a, lams):
        a_mat = a.t() @ a / n + torch.diag(lams)
        dw = g.t() @ a / n
        return torch.trace(s_inv @ dw @ torch.linalg.inv(a_mat) @ dw.t())

    a_cc = a_c.t() @ a_c / n
    lam_c = tik * torch.diagonal(a_cc).mean() + 1e-30
    lam_p = tik * (a_p**2).mean() + 1e-30
    full = torch.cat([a_c, a_p[:, None]], 1)
    lams_c = torch.full((a_c.shape[1],), float(lam_c), dtype=torch.float64)
    return float(eta(full, torch.cat([lams_c, lam_p.reshape(1)])) - eta(a_c, lams_c))


@pytest.mark.parametrize("tik", [0.0, 0.1])
def test_lower_bound_below_exact_gain(tik):
    torch.manual_seed(0)
    n, d, c = 64, 5, 3
    for draw in range(8):
        a_c = with_bias_column(torch.randn(n, d, dtype=torch.float64))
        g = torch.randn(n, c, dtype=torch.float64)
        g_hat = g / g.norm(dim=1, keepdim=True)
        # candidates correlated with the existing inputs, so the Schur complement matters
        a_p = a_c @ torch.randn(d + 1, dtype=torch.float64) + 0.5 * torch.randn(n, dtype=torch.float64)
        stats = layer_stats(a_c, g, g_hat, 1.0, tik)
        bound = float(candidate_gain(a_p[None], stats, tik)[0])
        exact = _exact_gain(a_c, a_p, g, g_hat, tik)
        assert 0.0 < bound <= exact + 1e-10, (draw, bound, exact)
        assert bound < 0.99 * exact  # strictly loose when a_p is correlated with a_c


def test_bound_is_tight_for_an_input_orthogonal_to_the_existing_ones():
    torch.manual_seed(1)
    n = 48
    a_c = with_bias_column(torch.randn(n, 3, dtype=torch.float64))
    g = torch.randn(n, 2, dtype=torch.float64)
    a_p = torch.randn(n, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.cat([a_c, a_p[:, None]], 1))
    a_p = q[:, -1] * n**0.5  # E[a_c a_p] = 0
    stats = layer_stats(a_c, g, g, 1.0, 0.0)
    bound = float(candidate_gain(a_p[None], stats, 0.0)[0])
    assert bound == pytest.approx(_exact_gain(a_c, a_p, g, g, 0.0), rel=1e-8)


def test_eta_is_the_natural_gradient_length():
    """Without damping and with S = I, eta = ||dW A^-1/2||^2, computed by least squares."""
    torch.manual_seed(2)
    n = 40
    a = with_bias_column(torch.randn(n, 4, dtype=torch.float64))
    g = torch.randn(n, 3, dtype=torch.float64)
    g_hat = torch.linalg.qr(torch.randn(n, 3, dtype=torch.float64))[0] * n**0.5  # E[g_hat g_hat^T] = I
    stats = layer_stats(a, g, g_hat, 1.0, 0.0)
    dw = g.t() @ a / n
    expected = torch.trace(dw @ torch.linalg.inv(a.t() @ a / n) @ dw.t())
    assert stats.eta == pytest.approx(float(expected), rel=1e-9)
    # the residual gradients are orthogonal to every existing input
    assert (stats.residual.t() @ a).abs().max() < 1e-9


def test_proposal_optimisation_raises_the_gain():
    torch.manual_seed(3)
    n = 64
    x = with_bias_column(torch.randn(n, 4, dtype=torch.float64))
    a_c = with_bias_column(torch.randn(n, 2, dtype=torch.float64))
    g = torch.tanh(x[:, :2] @ torch.randn(2, 3, dtype=torch.float64)) + 0.1 * torch.randn(n, 3, dtype=torch.float64)
    stats = layer_stats(a_c, g, g, 1.0, 0.1)
    gen0, gen1 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    _, start = optimize_proposals(x, torch.tanh, stats, n_proposals=20, n_steps=0, generator=gen0)
    _, after = optimize_proposals(x, torch.tanh, stats, n_proposals=20, n_steps=10, generator=gen1)
    assert (after >= start - 1e-12).all() and after.mean() > 1.2 * start.mean()


# --- the rational activation ---------------------------------------------------------------


def test_rational_is_exactly_the_identity_at_init_and_learns():
    act = make_activation("rational")
    x = torch.randn(500) * 5
    assert torch.equal(act(x), x)
    (act(x) * torch.randn(500)).sum().backward()
    assert act.v.grad.abs() > 0 and act.c.grad.abs() > 0
    with torch.no_grad():
        act.v.fill_(0.5)
    assert not torch.allclose(act(x), x)


# --- the trigger on a teacher task ---------------------------------------------------------


def _teacher_data(n=512, seed=0):
    """A width-6 tanh teacher that needs all six units: orthogonal fan-ins over 6 inputs,
    one class per unit (head 4*I); labels sampled from its softmax (a well-specified model)."""
    torch.manual_seed(seed)
    teacher = GrowableMLP((6,), 6, hidden=[6], activation="tanh")
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(6, 6))
        teacher.hidden[0].linear.weight.copy_(2 * q)
        teacher.hidden[0].linear.bias.zero_()
        teacher.head.weight.copy_(4 * torch.eye(6))
        teacher.head.bias.zero_()
        x = torch.randn(n, 6)
        y = torch.multinomial(torch.softmax(teacher(x), 1), 1).squeeze(1)
    return teacher, x, y


def _fit(model, x, y, steps, lr=0.03):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


def _ctx(model, x, y, step=1):
    return TriggerContext(step, 0, "step", model.widths(), model=model, batch=(x, y))


ALPHA = 0.02  # measured d_eta'/|g_y|^2: ~0.2-0.26 while units are missing, 0.004-0.006 after


def test_senn_grows_a_narrow_student_to_the_teachers_width_and_stops():
    """Labels from a width-6 teacher. A width-1 student grows one unit per check (trained
    between checks) while the best new unit explains a large share of the squared output
    gradient (measured 0.25, 0.26, 0.26, 0.19, 0.04 at widths 1-5) and stops at width 6 (0.006:
    sampling noise, ~C(F+1)/N). A width-6 student (teacher init, trained to convergence) does not
    fire either. The relative test passes at convergence (eta -> 0 there): the absolute test is
    what stops growth."""
    _, x, y = _teacher_data(1024)
    torch.manual_seed(1)
    student = GrowableMLP((6,), 6, hidden=[1], activation="tanh")
    trigger = SENNTrigger(check_every=1, cooldown_epochs=0, alpha=ALPHA, depth=False, n_proposals=50)
    init = SENNInitializer()
    losses, fired = [], []
    for step in range(1, 10):
        _fit(student, x, y, 100, lr=0.05)
        with torch.no_grad():
            losses.append(float(F.cross_entropy(student(x), y)))
        reqs = trigger.check(_ctx(student, x, y, step))
        fired.append(bool(reqs))
        if not reqs:
            break
        (req,) = reqs
        assert req.site == "hidden.0" and req.n_units == 1 and req.score == trigger.last_scores["hidden.0"]
        assert "tau" in req.reason and "alpha" in req.reason and "eta" in req.reason
        hint = getattr(req, "payload", None)
        with torch.no_grad():
            before = student(x)
        widen(student, req.site, init.propose(student.eval(), req.site, req.n_units, batch=(x, y), hint=hint))
        with torch.no_grad():
            assert torch.allclose(student(x), before, atol=1e-6)  # zero fan-out
        student.train()
    assert fired[-1] is False, "growth did not stop"
    assert 5 <= student.widths()["hidden.0"] <= 7, (student.widths(), losses)
    assert losses[-1] < 0.7 * losses[0]

    teacher, x, y = _teacher_data(1024)
    converged = GrowableMLP((6,), 6, hidden=[6], activation="tanh")
    converged.load_state_dict(teacher.state_dict())
    _fit(converged, x, y, 300)
    trigger = SENNTrigger(check_every=1, cooldown_epochs=0, alpha=ALPHA, depth=False, n_proposals=50)
    assert trigger.check(_ctx(converged, x, y)) == []
    gsq = measure_site(converged, "hidden.0", (x, y))[0].stats.grad_sq
    assert trigger.last_scores["hidden.0"] / gsq < ALPHA  # the absolute test refused
    assert trigger.last_scores["hidden.0"] / trigger.last_eta["hidden.0"] > trigger.tau  # the relative one would not


def test_trigger_cooldown_schedule_and_state():
    _, x, y = _teacher_data(256)
    model = GrowableMLP((6,), 6, hidden=[1], activation="tanh")
    trigger = SENNTrigger(check_every=5, cooldown_epochs=2, alpha=0.0, tau=0.0, depth=False, n_proposals=8, n_steps=2)

    def ctx(step, epoch, phase="step"):
        return TriggerContext(step, epoch, phase, model.widths(), model=model, batch=(x, y))

    assert trigger.check(ctx(4, 0)) == [] and trigger.check(ctx(5, 0, "epoch")) == []
    assert len(trigger.check(ctx(5, 0))) == 1
    assert trigger.check(ctx(10, 1)) == []  # cooling down
    state = json.loads(json.dumps(trigger.state_dict()))
    other = TRIGGERS.build(
        {
            "name": "senn",
            "check_every": 5,
            "cooldown_epochs": 2,
            "alpha": 0.0,
            "tau": 0.0,
            "depth": False,
            "n_proposals": 8,
            "n_steps": 2,
        }
    )
    other.load_state_dict(state)
    assert other.check(ctx(15, 2)) == trigger.check(ctx(15, 2)) != []
    with pytest.raises(ValueError, match="tau"):
        SENNTrigger(tau=-1.0)
    with pytest.raises(ValueError, match="check_every"):
        SENNTrigger(check_every=0)


def test_initializer_uses_the_trigger_hint():
    _, x, y = _teacher_data(128)
    model = GrowableMLP((6,), 6, hidden=[2], activation="tanh", batch_norm=True).eval()
    hint = {"fan_in": [[0.5, -1.0, 2.0, 0.25, 0.0, 1.0]], "bias": [0.3]}
    prop = SENNInitializer().propose(model, "hidden.0", 1, batch=(x, y), hint=hint)
    assert prop.fan_in.tolist() == [[0.5, -1.0, 2.0, 0.25, 0.0, 1.0]]
    assert prop.bias.tolist() == pytest.approx([0.3]) and prop.fan_out.abs().sum() == 0
    assert prop.norm["weight"].tolist() == [1.0] and prop.norm["running_var"].tolist() == [1.0]
    with pytest.raises(ValueError, match="fan-in rows need 6"):
        SENNInitializer().propose(model, "hidden.0", 1, batch=(x, y), hint={"fan_in": [[1.0]], "bias": [0.0]})
    with pytest.raises(ValueError, match="batch"):
        SENNInitializer().propose(model, "hidden.0", 1)
    assert INITIALIZERS.build("senn").uses_hint is True


def test_depth_proposals_pay_the_layer_cost_and_go_through_the_strategy():
    """Depth gains are the raw gain / layer_cost; a deepen request inserts an identity block
    with the rational activation through the strategy's net2deeper, preserving the function;
    a width request's fan-in reaches the initializer as the hint."""
    from growray.growth import DEEPENERS, GrowthStrategy

    _, x, y = _teacher_data(256)
    torch.manual_seed(0)
    model = GrowableMLP((6,), 6, hidden=[3], activation="tanh")
    kw = {"check_every": 1, "cooldown_epochs": 0, "tau": 0.0, "alpha": 0.0, "n_proposals": 10, "n_steps": 2}
    cheap, dear = SENNTrigger(layer_cost=1.0, **kw), SENNTrigger(layer_cost=20.0, **kw)
    cheap.check(_ctx(model, x, y)), dear.check(_ctx(model, x, y))
    assert cheap.last_depth_scores["hidden.0"] == pytest.approx(20 * dear.last_depth_scores["hidden.0"])
    assert cheap.last_depth_scores["hidden.0"] > 0

    class _DepthOnly(SENNTrigger):  # width proposals refused, so the depth proposal wins
        def _passes(self, gain, eta, grad_sq):
            return gain in self.last_depth_scores.values()

    trigger = _DepthOnly(layer_cost=1.0, layer_cooldown=2, **kw)
    strategy = GrowthStrategy(
        trigger,
        SENNInitializer(n_proposals=10),
        deepener=DEEPENERS.build({"name": "net2deeper", "activation": "rational"}),
    )
    (event,) = strategy.step(model, None, _ctx(model, x, y), (x[:32], y[:32]))
    assert event.kind == "deepen" and event.preservation_error < 1e-5 and len(model.sites()) == 2
    assert trigger.layer_cooldown_left == 2
    assert trigger.check(_ctx(model, x, y, 2)) == [] and trigger.last_depth_scores == {}  # layer cooldown

    widen_strategy = GrowthStrategy(SENNTrigger(depth=False, **kw), SENNInitializer(n_proposals=10))
    (event,) = widen_strategy.step(model, None, _ctx(model, x, y, 3), (x[:32], y[:32]))
    assert event.kind == "widen" and event.preservation_error < 1e-5 and event.trigger_score > 0


# --- conformance --------------------------------------------------------------------------


class TestSENNInitializerConformance(InitializerConformance):
    @pytest.fixture
    def initializer(self):
        return SENNInitializer(n_proposals=20, n_steps=3)


class TestSENNTriggerConformance(TriggerConformance):
    @pytest.fixture(
        params=[
            {},
            {"check_every": 60, "cooldown_epochs": 1, "alpha": 0.0, "max_per_check": 2, "n_proposals": 8, "n_steps": 2},
        ],
        ids=["defaults", "fast"],
    )
    def trigger_factory(self, request):
        return lambda: TRIGGERS.build({"name": "senn", **request.param})

    def test_fast_settings_fire(self):
        from growray.testing.triggers import standard_contexts

        trigger = TRIGGERS.build(
            {"name": "senn", "check_every": 60, "cooldown_epochs": 1, "alpha": 0.0, "n_proposals": 8}
        )
        assert any(trigger.check(ctx) for ctx in standard_contexts())


@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_closed_form_ascent_matches_autograd(act):
    """The optimiser's closed-form gradient (and closed-form ReLU/tanh slopes) is autograd's."""
    from growray.growth.senn_score import _gains_and_ascent

    torch.manual_seed(4)
    n = 48
    feats = with_bias_column(torch.randn(n, 5, dtype=torch.float64))
    a_c = with_bias_column(torch.randn(n, 3, dtype=torch.float64))
    g = torch.randn(n, 4, dtype=torch.float64)
    stats = layer_stats(a_c, g, g / g.norm(dim=1, keepdim=True), 1.0, 0.1)
    fn = make_activation(act).double()
    slopes = {"relu": lambda z: (z > 0).double(), "tanh": lambda z: 1 - torch.tanh(z) ** 2, "gelu": None}
    v = torch.randn(7, feats.shape[1], dtype=torch.float64, requires_grad=True)
    gains = candidate_gain(fn(v @ feats.t()), stats, 0.1)
    (expected,) = torch.autograd.grad(gains.sum(), v)
    for slope in (slopes[act], None):
        got_gains, got_grad = _gains_and_ascent(v.detach(), feats, fn, stats, 0.1, True, slope)
        torch.testing.assert_close(got_gains, gains.detach(), rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(got_grad, expected, rtol=1e-10, atol=1e-13)
