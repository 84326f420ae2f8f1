"""GradMax initializer and the gradient (T_grad) trigger."""

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F

from growray.data import load_dataset
from growray.growth import INITIALIZERS, TRIGGERS, TriggerContext, WidthProposal, widen
from growray.growth.gradmax import (
    GradientTrigger,
    GradMaxInitializer,
    auxiliary_gradient,
    columns_to_fan_out,
)
from growray.models import GrowableMLP
from growray.testing.initializers import make_probe_model

torch.set_num_threads(1)
N_NEW = 4


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset({"name": "digits"}, seed=0)
    x = torch.as_tensor(ds.x_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train, dtype=torch.long)
    return x, y


def _trained_mlp(digits, batch_norm: bool) -> GrowableMLP:
    x, y = digits
    torch.manual_seed(0)
    model = GrowableMLP((64,), 10, hidden=[16, 16], batch_norm=batch_norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(30):
        xb, yb = x[(i * 64) % 1024 :][:64], y[(i * 64) % 1024 :][:64]
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    return model


def _birth_grad_norm(model, site, proposal, batch, train: bool = True) -> float:
    """Norm of dL/d(fan-in of the new units) on ``batch`` right after growth."""
    model = copy.deepcopy(model)
    widen(model, site, proposal)
    model.train(train)
    loss = F.cross_entropy(model(batch[0]), batch[1])
    g = torch.autograd.grad(loss, model.site_modules(site).producer.weight)[0]
    return float(g[-proposal.n_new :].norm())


def _propose(name_or_init, model, site, batch):
    init = INITIALIZERS.build(name_or_init) if isinstance(name_or_init, (str, dict)) else name_or_init
    torch.manual_seed(7)
    model.eval()
    return init.propose(model, site, N_NEW, batch=batch)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
def test_gradmax_birth_gradient_beats_random(digits, batch_norm):
    x, y = digits
    model = _trained_mlp(digits, batch_norm)
    grow, probe = (x[1024:1280], y[1024:1280]), (x[:256], y[:256])  # growth batch != measuring batch
    site = "hidden.0"
    gm = _propose("gradmax", model, site, grow)
    rnd = _propose("random", model, site, grow)
    # Random fan-out directions with the same per-unit norms and the same birth offset.
    torch.manual_seed(3)
    dirs = torch.randn_like(gm.fan_out)
    dirs = dirs / dirs.norm(dim=0, keepdim=True) * gm.fan_out.norm(dim=0, keepdim=True)
    rdir = WidthProposal(gm.fan_in.clone(), gm.bias.clone(), dirs, None, None if gm.norm is None else dict(gm.norm))
    for train in (True, False):
        g_gm = _birth_grad_norm(model, site, gm, probe, train)
        g_rnd = _birth_grad_norm(model, site, rnd, probe, train)
        g_dir = _birth_grad_norm(model, site, rdir, probe, train)
        assert g_rnd == 0.0  # zero fan-out: the random units' fan-in gets no gradient at birth
        assert g_gm > 1.2 * g_dir > 0, (train, g_gm, g_dir)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "bn"])
def test_gradmax_newborns_learn_and_relu_trap(digits, batch_norm):
    x, y = digits
    site = "hidden.0"
    moved = {}
    for offset in (1e-6, 0.0):
        model = _trained_mlp(digits, batch_norm)
        prop = _propose(GradMaxInitializer(birth_offset=offset), model, site, (x[1024:1280], y[1024:1280]))
        widen(model, site, prop)
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for i in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x[i * 64 :][:64]), y[i * 64 :][:64]).backward()
            opt.step()
        moved[offset] = float(model.site_modules(site).producer.weight[-N_NEW:].detach().norm())
    assert moved[1e-6] > 1e-3  # the offset puts newborn ReLUs on the active side: they learn
    assert moved[0.0] == 0.0  # the ReLU trap: zero fan-in, zero pre-activation, zero gradient


def test_gradmax_fan_out_is_top_singular_vectors():
    model = make_probe_model(batch_norm=False)
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(32, 2, 3, generator=g), torch.randint(0, 4, (32,), generator=g)
    # M = sum_n delta_n h_n^T by hand: delta = dL/dz of the consumer (hidden.1's Linear).
    h = x.flatten(1)
    a = model.hidden[0](h)
    z = model.hidden[1].linear(a).detach().requires_grad_(True)
    loss = F.cross_entropy(model.head(model.hidden[1].act(z)), y)
    (delta,) = torch.autograd.grad(loss, z)
    m = delta.t() @ h
    u = torch.linalg.svd(m)[0]
    prop = GradMaxInitializer(scale=0.5).propose(model, "hidden.0", 3, batch=(x, y))
    assert torch.allclose(auxiliary_gradient(model, "hidden.0", (x, y)).matrix, m, atol=1e-6)
    cols = prop.fan_out  # (6, 3)
    target = 0.5 * model.hidden[1].linear.weight.detach().norm(dim=0)[:7].mean()
    assert torch.allclose(cols.norm(dim=0), target.expand(3), atol=1e-5)
    cos = (cols / cols.norm(dim=0)).t() @ u[:, :3]
    assert torch.allclose(cos.abs(), torch.eye(3), atol=1e-4)
    assert torch.count_nonzero(prop.fan_in) == 0
    assert torch.allclose(prop.bias, torch.full((3,), 1e-6))


@pytest.mark.parametrize("activation,exact", [("relu", False), ("tanh", True)])
def test_gradmax_function_change_bound(activation, exact):
    torch.manual_seed(0)
    model = GrowableMLP((2, 3), 4, hidden=[7, 6], activation=activation).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 2, 3, generator=g), torch.randint(0, 4, (64,), generator=g)
    with torch.no_grad():
        before = model(x)
    widen(model, "hidden.0", GradMaxInitializer().propose(model, "hidden.0", 5, batch=(x, y)))
    with torch.no_grad():
        err = float((model(x) - before).abs().max())
    # tanh: zero fan-in and no offset preserve the function (to float32 rounding of the wider
    # matmuls); relu: the birth offset shifts the outputs by ~birth_offset * |w_out|
    assert err <= 1e-6 if exact else 0 < err < 1e-5
    assert not GradMaxInitializer().preserves_function and GradMaxInitializer(birth_offset=0.0).preserves_function


def test_conv_auxiliary_gradient_matches_autograd():
    cnn = pytest.importorskip("growray.models.cnn")
    torch.manual_seed(0)
    x, y = torch.randn(12, 3, 8, 8), torch.randint(0, 5, (12,))
    for site in (
        "conv.0",
        "conv.1",
    ):  # conv -> conv (kernel 3, padding 1), conv -> flatten -> Linear; no pooling: exact
        model = cnn.GrowableCNN((3, 8, 8), 5, channels=[4, 6], pool_after=[], batch_norm=False).eval()
        mods = model.site_modules(site)
        m = auxiliary_gradient(model, site, (x, y)).matrix
        cols = torch.randn(1, m.shape[0])
        fan_in = torch.zeros(1, *mods.producer.weight.shape[1:])
        widen(
            model,
            site,
            WidthProposal(fan_in, torch.full((1,), 1e-6), columns_to_fan_out(cols, mods.consumer.weight, mods.spatial)),
        )
        loss = F.cross_entropy(model(x), y)
        grad = torch.autograd.grad(loss, model.site_modules(site).producer.weight)[0][-1].flatten()
        assert torch.allclose(grad, cols[0] @ m, rtol=1e-3, atol=1e-6), site


def _per_sample_flatten_matrix(conv, inputs, delta, grid, center):
    """The conv -> flatten -> Linear grow matrix as the module docstring defines it: every
    sample's patches unfolded, centred over samples and positions, pooled, then summed."""
    pre_hw = tuple(conv(inputs).shape[2:])
    p = F.unfold(inputs, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
    p = p.reshape(inputs.shape[0], p.shape[1], *pre_hw)
    if center:
        p = p - p.mean(dim=(0, 2, 3), keepdim=True)
    if grid != pre_hw:
        p = F.adaptive_avg_pool2d(p, grid)
    return torch.einsum("nc,nip->cpi", delta, p.flatten(2)).reshape(-1, p.shape[1])


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize(
    ("conv_kwargs", "grid"),
    [
        ({"kernel_size": 3, "padding": 1}, (6, 6)),  # flatten, no pooling
        ({"kernel_size": 3, "padding": 1}, (3, 3)),  # pooled 2x2
        ({"kernel_size": 3, "padding": 1}, (1, 1)),  # global pooling
        ({"kernel_size": (3, 1), "stride": 2, "padding": (1, 0)}, (2, 3)),  # strided, uneven pooling
        ({"kernel_size": 2, "dilation": 2, "padding": 1}, (2, 2)),  # dilated, pooled 3x3 -> 2x2 (adaptive)
    ],
)
def test_conv_flatten_matrix_equals_the_per_sample_sum(conv_kwargs, grid, center):
    from growray.growth.gradmax import _conv_flatten_matrix

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 5, **conv_kwargs).double()
    inputs, delta = torch.randn(9, 3, 6, 6, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    pre = conv(inputs)
    want = _per_sample_flatten_matrix(conv, inputs, delta, grid, center)
    got = _conv_flatten_matrix(conv, inputs, pre, delta, grid, center)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    got32 = _conv_flatten_matrix(conv.float(), inputs.float(), pre.float(), delta.float(), grid, center)
    assert torch.allclose(got32.double(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_pooled_conv_site_auxiliary_gradient_is_the_per_sample_sum(batch_norm):
    """The benchmark CNN's last conv site (max-pooled, flattened into a Linear), GradMax's
    centring on with a BatchNorm: the matrix equals the per-sample formula on the capture."""
    from growray.growth.capture import capture_site
    from growray.models.cnn import GrowableCNN

    torch.manual_seed(0)
    model = GrowableCNN((1, 12, 12), 10, channels=[4, 6], hidden=[8], batch_norm=batch_norm).eval()
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 10, (16,))
    site = model.sites()[1]
    mods = model.site_modules(site)
    cap = capture_site(model, site, x, y, with_grad=True)
    grid = (math.isqrt(mods.spatial),) * 2
    want = _per_sample_flatten_matrix(mods.producer, cap.inputs, cap.gradients()[2], grid, batch_norm)
    got = auxiliary_gradient(model, site, (x, y), center=batch_norm).matrix
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)


def _ctx(model, batch, step=200):
    return TriggerContext(step, 0, "step", model.widths(), model=model, batch=batch)


def test_gradient_trigger_counts(digits):
    x, y = digits
    model = _trained_mlp(digits, False).eval()
    batch = (x[:256], y[:256])
    site = "hidden.0"
    # By hand: singular values of M versus scale x sum_i(||dL/dw_in_i|| + ||dL/dw_out_i||).
    sv = torch.linalg.svdvals(auxiliary_gradient(model, site, batch).matrix)
    mods = model.site_modules(site)
    gin, gout = torch.autograd.grad(
        F.cross_entropy(model(x[:256]), y[:256]), [mods.producer.weight, mods.consumer.weight]
    )
    summed = float((gin.norm(dim=1) + gout.norm(dim=0)).sum())
    assert GradientTrigger().count(model, site, batch)[0] == int((sv > 0.5 * summed).sum())  # the default
    expected = int((sv > 0.2 * summed).sum())
    trig = GradientTrigger(threshold_scale=0.2)
    assert trig.count(model, site, batch)[0] == expected
    reqs = {r.site: r.n_units for r in trig.check(_ctx(model, batch))}
    assert reqs.get(site, 0) == expected and expected >= 1
    # Scale extremes: a huge threshold requests nothing; a tiny one every direction (rank), capped.
    assert TRIGGERS.build({"name": "gradient", "threshold_scale": 1e9}).check(_ctx(model, batch)) == []
    tiny = TRIGGERS.build({"name": "gradient", "threshold_scale": 1e-9})
    assert {r.site: r.n_units for r in tiny.check(_ctx(model, batch))} == {"hidden.0": 16, "hidden.1": 10}
    capped = GradientTrigger(threshold_scale=1e-9, max_units_per_event=3)
    assert [r.n_units for r in capped.check(_ctx(model, batch))] == [3, 3]
    # Off-schedule steps, epoch phase and a missing batch are skipped.
    assert tiny.check(_ctx(model, batch, step=201)) == []
    assert tiny.check(TriggerContext(200, 0, "epoch", model.widths(), model=model, batch=batch)) == []
    assert tiny.check(_ctx(model, None)) == []


class _HandNet(torch.nn.Module):
    """3 inputs -> Linear(3, 4) -> tanh -> Linear(4, 3), one width site ``h``."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

    def sites(self):
        return ["h"]

    def widths(self):
        return {"h": 4}

    def site_modules(self, site):
        from growray.models import SiteModules

        return SiteModules(self.fc1, self.act, self.fc2)


def test_gradient_trigger_threshold_is_half_the_summed_unit_norms_by_hand():
    """T_grad on a hand-built net, every quantity written out without autograd: the count is
    #{sigma_j(M) > 0.5 * sum_i (||dL/dw_in_i|| + ||dL/dw_out_i||)} (the sum, not the mean)."""
    net = _HandNet()
    with torch.no_grad():
        net.fc1.weight.copy_(4 * torch.tensor([[0.3, 0.0, 0.0], [0.0, 0.2, 0.0], [0.1, 0.0, 0.1], [0.0, 0.05, 0.0]]))
        net.fc1.bias.zero_()
        w2 = [[0.05, -0.02, 0.01, 0.0], [-0.05, 0.02, -0.01, 0.03], [0.0, 0.01, 0.02, -0.03]]
        net.fc2.weight.copy_(4 * torch.tensor(w2))
        net.fc2.bias.zero_()
    x = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0], [-2.0, 0.0, 1.0], [0.0, -3.0, 2.0]])
    y = torch.tensor([0, 1, 2, 0])
    # By hand: mean cross-entropy, delta = dL/dz2 = (softmax - onehot) / N.
    h = torch.tanh(x @ net.fc1.weight.detach().t())
    z2 = h @ net.fc2.weight.detach().t()
    delta = (torch.softmax(z2, 1) - F.one_hot(y, 3).float()) / len(x)
    g_out = delta.t() @ h  # dL/dW2, column i = unit i's fan-out gradient
    g_in = ((delta @ net.fc2.weight.detach()) * (1 - h**2)).t() @ x  # dL/dW1, row i = unit i's fan-in gradient
    m = delta.t() @ x  # the auxiliary gradient: a zero layer from x straight to z2
    sigma = torch.linalg.svdvals(m)
    per_unit = g_in.norm(dim=1) + g_out.norm(dim=0)
    thr = 0.5 * float(per_unit.sum())
    count, top, measured_thr = GradientTrigger().count(net, "h", (x, y))
    assert measured_thr == pytest.approx(thr, rel=1e-5)
    assert top == pytest.approx(float(sigma[0]), rel=1e-5)
    assert count == int((sigma > thr).sum())
    # The case separates the two readings: sigma = (1.15, 0.58, 0), the sum threshold is 0.82
    # (one direction passes), the mean threshold would be 0.21 (both would pass).
    assert count == 1
    assert int((sigma > 0.5 * float(per_unit.mean())).sum()) == 2


def test_gradient_trigger_deterministic_and_state(digits):
    x, y = digits
    model = _trained_mlp(digits, True)
    model.train()
    state = copy.deepcopy(model.state_dict())
    a, b = GradientTrigger(check_every=10), GradientTrigger(check_every=10)
    ra = a.check(_ctx(model, (x[:128], y[:128]), step=20))
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert ra == b.check(_ctx(model, (x[:128], y[:128]), step=20))
    assert model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize(
    "kwargs",
    [{"check_every": 0}, {"max_units_per_event": 0}, {"threshold_scale": -1.0}, {"threshold_scale": float("nan")}],
)
def test_gradient_trigger_rejects_bad_params(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GradientTrigger(**kwargs)


@pytest.mark.parametrize("kwargs", [{"scale": 0.0}, {"birth_offset": -1e-3}])
def test_gradmax_rejects_bad_params_and_missing_batch(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GradMaxInitializer(**kwargs)
    with pytest.raises(ValueError, match="batch"):
        GradMaxInitializer().propose(make_probe_model(False), "hidden.0", 2, batch=None)
