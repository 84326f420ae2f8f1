"""NORTH* neurogenesis: effective dimension, the act/weight triggers, the Select/Pre/Weight
initializers (dense and conv), and growth on the NORTH synthetic task."""

import json
import math

import pytest
import torch
from torch import nn

from growray.data import load_dataset
from growray.growth import INITIALIZERS, TRIGGERS, GrowthStrategy, TriggerContext, widen
from growray.growth.capture import capture_site, units_matrix
from growray.growth.north import (
    NorthActTrigger,
    NorthWeightTrigger,
    effective_dimension,
    effective_rank,
    north_weight_compatible,
    orthogonality_scores,
)
from growray.models import GrowableCNN, GrowableMLP, SiteModules

torch.set_num_threads(1)


def _rank_data(n: int, r: int, f: int = 10, seed: int = 0) -> torch.Tensor:
    """``n`` samples in R^f spanning exactly ``r`` orthonormal directions (unit variance each)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(f, r, generator=g, dtype=torch.float64))
    return (torch.randn(n, r, generator=g, dtype=torch.float64) @ q.t()).float()


class _LinearSite(nn.Module):
    """One width site ``s`` whose post-activations are the producer's output (no act)."""

    def __init__(self, f: int = 10, m: int = 10):
        super().__init__()
        self.lin = nn.Linear(f, m)
        self.head = nn.Linear(m, 2)
        with torch.no_grad():
            self.lin.weight.copy_(torch.eye(m, f))
            self.lin.bias.zero_()

    def forward(self, x):
        return self.head(self.lin(x))

    def sites(self):
        return ["s"]

    def widths(self):
        return {"s": self.lin.out_features}

    def site_modules(self, site):
        return SiteModules(self.lin, None, self.head)


def _ctx(model, step, x=None, phase="step"):
    batch = None if x is None else (x, torch.zeros(len(x), dtype=torch.long))
    return TriggerContext(step, 0, phase, model.widths(), model=model, batch=batch)


# ---------------------------------------------------------------- effective dimension


def test_effective_dimension_counts_rank_and_uses_1_over_sqrt_n():
    h = _rank_data(200, 3, f=8).t()  # 8 units x 200 samples, rank 3
    assert effective_rank(h) == 3 and effective_dimension(h) == 3 / 8
    # rows of norm s*sqrt(n): every singular value of H/sqrt(n) equals s
    n = 400
    base = torch.zeros(4, n)
    base[torch.arange(4), torch.arange(4)] = math.sqrt(n)
    assert effective_dimension(0.005 * base) == 0.0  # unscaled, sigma would be 0.1 > eps
    assert effective_dimension(0.02 * base) == 1.0
    # duplicating every sample leaves phi unchanged only because of the 1/sqrt(n) scaling
    h2 = 0.006 * base
    assert effective_rank(torch.cat([h2, h2], dim=1)) == effective_rank(h2) == 0
    assert effective_rank(0.5 * base, epsilon=0.6) == 0 and effective_rank(0.5 * base, epsilon=0.4) == 4
    with pytest.raises(ValueError, match="units x samples"):
        effective_rank(torch.zeros(3))


# ---------------------------------------------------------------- triggers


def test_act_trigger_fires_the_code_formula_and_caps():
    model = _LinearSite()
    trig = NorthActTrigger(check_every=1, max_units_per_event=3)
    # phi0 = 5/10; thr = floor(0.97 * 0.5 * 10) = 4 -> count 5 adds 1 (the paper's max(0, floor(M(phi - g phi0))) gives 0)
    assert [(r.site, r.n_units) for r in trig.check(_ctx(model, 1, _rank_data(200, 5)))] == [("s", 1)]
    assert trig.state_dict() == {"baseline": {"s": 0.5}}
    assert [r.n_units for r in trig.check(_ctx(model, 2, _rank_data(200, 9)))] == [3]  # 9 - 4 = 5, capped at 3
    assert NorthActTrigger(check_every=1).check(_ctx(model, 1, _rank_data(200, 9)))[0].n_units == 1
    uncapped = NorthActTrigger(check_every=1)
    uncapped.load_state_dict({"baseline": {"s": 0.5}})
    req = uncapped.check(_ctx(model, 2, _rank_data(200, 9)))[0]
    assert req.n_units == 5 and req.score == 0.9 and "= 4" in req.reason
    assert trig.check(_ctx(model, 3, _rank_data(200, 4))) == []  # 4 <= thr: no growth


def test_act_trigger_takes_phi0_at_initialisation():
    """``start`` (the growth hook calls it before the first step) fixes phi0; later checks
    compare with it, not with their own first measurement."""
    model = _LinearSite()
    trig = NorthActTrigger(check_every=1)
    trig.start(_ctx(model, 0, _rank_data(200, 4)))  # phi0 = 4/10 at initialisation
    assert trig.state_dict() == {"baseline": {"s": 0.4}}
    # rank 9 now: 9 - floor(0.97 * 0.4 * 10) = 9 - 3 = 6 (the first-check reading gives 9 - 8 = 1)
    assert [r.n_units for r in trig.check(_ctx(model, 1, _rank_data(200, 9)))] == [6]
    late = NorthActTrigger(check_every=1)
    assert [r.n_units for r in late.check(_ctx(model, 1, _rank_data(200, 9)))] == [1]
    trig.start(_ctx(model, 0, _rank_data(200, 9)))  # a second start keeps the first baseline
    assert trig.state_dict() == {"baseline": {"s": 0.4}}
    skipped = NorthActTrigger(check_every=1)
    skipped.start(_ctx(model, 0, None))  # no batch: phi0 falls back to the first check
    assert skipped.state_dict() == {"baseline": {}}


def test_act_trigger_needs_more_samples_than_units_and_a_batch():
    model = _LinearSite()
    trig = NorthActTrigger(check_every=1)
    assert trig.check(_ctx(model, 1, _rank_data(10, 9))) == []  # n = 10 = M
    assert trig.check(_ctx(model, 2, None)) == []
    assert trig.check(TriggerContext(3, 0, "step", {"s": 10})) == []  # no model
    assert trig.state_dict() == {"baseline": {}}
    assert trig.check(_ctx(model, 4, _rank_data(11, 9)))  # n = 11 > M: evaluated


def test_act_trigger_respects_check_every_and_phase():
    model = _LinearSite()
    trig = NorthActTrigger(check_every=5)
    x = _rank_data(200, 9)
    fired = [s for s in range(1, 11) if trig.check(_ctx(model, s, x))]
    assert fired == [5, 10]
    assert NorthActTrigger(check_every=5).check(_ctx(model, 5, x, phase="epoch")) == []


def test_act_trigger_state_round_trip_continues_identically():
    model = _LinearSite()
    xs = [_rank_data(200, r, seed=r) for r in (5, 9, 7, 8)]
    a = NorthActTrigger(check_every=1)
    for s, x in enumerate(xs[:2], 1):
        a.check(_ctx(model, s, x))
    b = NorthActTrigger(check_every=1)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for s, x in enumerate(xs[2:], 3):
        assert a.check(_ctx(model, s, x)) == b.check(_ctx(model, s, x))
    assert a.state_dict() == b.state_dict()
    with pytest.raises(ValueError, match="baseline"):
        b.load_state_dict({"best": 1.0})


def test_conv_sites_keep_a_running_max_dense_sites_the_first_value():
    torch.manual_seed(0)
    model = GrowableCNN((1, 8, 8), 3, channels=[4, 6], hidden=[5], batch_norm=False).eval()
    trig = NorthActTrigger(check_every=1, epsilon=0.3)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(8, 1, 8, 8, generator=g) * s for s in (0.2, 3.0, 0.2)]  # fc.0: n=8 > M=5
    phis = []
    for s, x in enumerate(xs, 1):
        phis.append(
            {site: effective_dimension(units_matrix(capture_site(model, site, x).post), 0.3) for site in model.sites()}
        )
        trig.check(_ctx(model, s, x))
    base = trig.state_dict()["baseline"]
    assert base["fc.0"] == phis[0]["fc.0"]
    for site in ("conv.0", "conv.1"):
        assert base[site] == max(p[site] for p in phis)
    assert phis[1]["conv.0"] > phis[0]["conv.0"]  # the running max did move


def test_weight_trigger_on_fan_in_rows():
    model = _LinearSite(f=20, m=6)
    with torch.no_grad():  # rank 3, every singular value of W / sqrt(20) is 0.5
        model.lin.weight.zero_()
        model.lin.weight[torch.arange(3), torch.arange(3)] = 0.5 * math.sqrt(20)
    trig = NorthWeightTrigger(check_every=1)
    assert [r.n_units for r in trig.check(_ctx(model, 1))] == [1]  # 3 - floor(0.99 * 0.5 * 6) = 1
    with torch.no_grad():
        model.lin.weight[torch.arange(6), torch.arange(6)] = 0.5 * math.sqrt(20)
    assert [r.n_units for r in trig.check(_ctx(model, 2))] == [4]  # 6 - 2
    # F + 1 columns (weights and bias) <= M: skipped; F = M leaves the bias column: measured.
    assert NorthWeightTrigger(check_every=1).check(_ctx(_LinearSite(f=5, m=6), 1)) == []
    assert NorthWeightTrigger(check_every=1).check(_ctx(_LinearSite(f=6, m=6), 1)) != []


def test_weight_trigger_counts_the_bias_column():
    """The fan-in matrix is [W | b]: a unit whose weights are zero but whose bias is not adds
    a direction, and the scaling is 1/sqrt(F + 1)."""
    model = _LinearSite(f=20, m=6)
    with torch.no_grad():
        model.lin.weight.zero_()
        model.lin.weight[torch.arange(3), torch.arange(3)] = 0.5 * math.sqrt(21)
    trig = NorthWeightTrigger(check_every=1)
    trig.start(_ctx(model, 0))  # phi0 = 3 / 6 at initialisation
    assert trig.state_dict()["baseline"] == {"s": 0.5}
    with torch.no_grad():
        model.lin.bias[3] = 0.5 * math.sqrt(21)  # weights unchanged, a 4th direction in the bias
    assert [r.n_units for r in trig.check(_ctx(model, 1))] == [2]  # 4 - floor(0.99 * 0.5 * 6) = 2
    with torch.no_grad():
        model.lin.bias[3] = 0.005 * math.sqrt(21)  # singular value 0.005 < epsilon: not counted
    assert [r.n_units for r in trig.check(_ctx(model, 2))] == [1]


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "north_act", "check_every": 0}, "check_every"),
        ({"name": "north_act", "gamma": 0.0}, r"gamma must be a finite number in \(0, 1\]; got 0\.0"),
        ({"name": "north_weight", "epsilon": -1.0}, "epsilon"),
        ({"name": "north_act", "max_units_per_event": 0}, "max_units_per_event must be an int >= 1 or null"),
    ],
)
def test_trigger_parameters_are_checked(spec, match):
    with pytest.raises(ValueError, match=match):
        TRIGGERS.build(spec)


# ---------------------------------------------------------------- behaviour (acceptance)


def _grow_on_synthetic(rank: int, steps: int = 120, max_width: int = 64) -> int:
    """A 4-unit tanh first layer grown by north_act (epsilon 0.1) + north_select on the
    NORTH toy task with 64 features of rank ``rank``; returns the final width."""
    ds = load_dataset({"name": "synthetic", "rank": rank, "n_samples": 1000}, seed=0)
    x, y = torch.as_tensor(ds.x_train), torch.as_tensor(ds.y_train)
    torch.manual_seed(0)
    model = GrowableMLP((64,), 2, hidden=[4], activation="tanh")
    strategy = GrowthStrategy(
        TRIGGERS.build({"name": "north_act", "check_every": 2, "epsilon": 0.1}),
        INITIALIZERS.build({"name": "north_select", "n_candidates": 200}),
        max_width=max_width,
        sites=["hidden.0"],
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x), (64,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        recent = torch.arange(256) + (step * 64) % (len(x) - 256)  # a rolling buffer of training samples
        ctx = TriggerContext(step, 0, "step", model.widths(), model=model, batch=(x[recent], y[recent]))
        events = strategy.step(model, opt, ctx, (x[:32], y[:32]))
        assert all(e.preservation_error < 1e-5 for e in events)
    return model.widths()["hidden.0"]


def test_north_grows_the_first_layer_with_the_input_rank():
    widths = [_grow_on_synthetic(k) for k in (4, 16, 48)]  # measured: [5, 18, 55]
    assert widths[0] < widths[1] < widths[2] < 64, widths


# ---------------------------------------------------------------- initializers


def _mlp(act: str = "tanh", f: int = 20, m: int = 8, bias: bool = True) -> GrowableMLP:
    torch.manual_seed(0)
    model = GrowableMLP((f,), 3, hidden=[m, 5], activation=act).eval()
    if not bias:
        with torch.no_grad():
            model.hidden[0].linear.bias.zero_()
    return model


def _batch(n: int = 256, f: int = 20, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, f, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_select_is_more_orthogonal_than_random_candidates():
    model, batch = _mlp(), _batch()
    w = model.hidden[0].linear.weight.detach()
    current = units_matrix(capture_site(model, "hidden.0", batch[0]).post)
    torch.manual_seed(5)
    rows = INITIALIZERS.build("north_select").propose(model, "hidden.0", 4, batch=batch).fan_in
    rand = torch.empty(200, 20).uniform_(-1, 1)
    rand = rand * (w.norm(dim=1).mean() / rand.norm(dim=1, keepdim=True))  # same norm as Select's candidates
    chosen = orthogonality_scores(torch.tanh(batch[0] @ rows.t()).t(), current)
    random = orthogonality_scores(torch.tanh(batch[0] @ rand.t()).t(), current)
    assert chosen.min() > random.quantile(0.9), (chosen, random.quantile(0.9))
    assert torch.allclose(rows.norm(dim=1), w.norm(dim=1).mean().expand(4))


def test_pre_gives_pre_activations_orthogonal_to_the_current_ones():
    model, batch = _mlp(bias=False), _batch()
    old = units_matrix(capture_site(model, "hidden.0", batch[0]).pre).double()
    torch.manual_seed(5)
    rows = INITIALIZERS.build("north_pre").propose(model, "hidden.0", 3, batch=batch).fan_in.double()
    new = (batch[0].double() @ rows.t()).t()
    cos = (old @ new.t()) / (old.norm(dim=1)[:, None] * new.norm(dim=1)[None, :])
    assert cos.abs().max() < 1e-4
    w = model.hidden[0].linear.weight.detach().double()
    assert torch.allclose(rows.norm(dim=1), w.norm(dim=1).mean().expand(3), rtol=1e-5)  # incumbents' norm


def test_weight_init_is_orthogonal_to_existing_rows():
    model = _mlp(f=20, m=8)
    w = model.hidden[0].linear.weight.detach().double()
    torch.manual_seed(5)
    new = INITIALIZERS.build("north_weight").propose(model, "hidden.0", 5).fan_in.double()
    assert (w @ new.t()).abs().max() < 1e-4 * w.norm(dim=1).max() * new.norm(dim=1).max()
    gram = new @ new.t()
    assert (gram - torch.diag(gram.diagonal())).abs().max() < 1e-4 * gram.diagonal().max()  # one at a time
    # newborns at the incumbents' mean fan-in norm (the paper's rescaling), not a Glorot length
    assert torch.allclose(new.norm(dim=1), w.norm(dim=1).mean().expand(5), rtol=1e-5)


def test_weight_init_needs_width_below_fan_in():
    assert north_weight_compatible(5, 6) is None
    reason = north_weight_compatible(6, 6)
    assert "width=6" in reason and "fan_in=6" in reason
    model = _mlp(f=6, m=6)
    with pytest.raises(ValueError, match="width < fan_in"):
        INITIALIZERS.build("north_weight").propose(model, "hidden.0", 1)


def test_data_driven_initializers_need_a_batch():
    with pytest.raises(ValueError, match="batch=None"):
        INITIALIZERS.build("north_select").propose(_mlp(), "hidden.0", 1)
    with pytest.raises(ValueError, match="n_candidates must be an int >= 1 or null"):
        INITIALIZERS.build({"name": "north_pre", "n_candidates": 0})


@pytest.mark.parametrize("site", ["conv.0", "conv.1"])
@pytest.mark.parametrize("name", ["north_select", "north_pre", "north_weight"])
def test_conv_sites_grow_preserving_the_function(name, site):
    torch.manual_seed(0)
    model = GrowableCNN((2, 8, 8), 3, channels=[4, 5], hidden=[], batch_norm=True).eval()
    with torch.no_grad():
        for b in model.convs:
            b.norm.running_mean.normal_()
            b.norm.running_var.uniform_(0.5, 1.5)
    x = torch.randn(16, 2, 8, 8)
    batch = (x, torch.zeros(16, dtype=torch.long))
    before = model(x)
    torch.manual_seed(3)
    proposal = INITIALIZERS.build(name).propose(model, site, 2, batch=batch)
    widen(model, site, proposal)
    assert model.widths()[site] == {"conv.0": 6, "conv.1": 7}[site]
    assert (model(x) - before).abs().max() < 1e-5
    assert proposal.norm["running_var"].eq(1).all() and proposal.bias.eq(0).all()


def test_conv_select_beats_random_filters():
    torch.manual_seed(0)
    model = GrowableCNN((2, 8, 8), 3, channels=[4, 5], hidden=[], batch_norm=False).eval()
    x = torch.randn(16, 2, 8, 8)
    cur = units_matrix(capture_site(model, "conv.0", x).post)
    torch.manual_seed(3)
    sel = INITIALIZERS.build("north_select").propose(model, "conv.0", 2, batch=(x, None)).fan_in
    torch.manual_seed(3)
    pre = INITIALIZERS.build("north_pre").propose(model, "conv.0", 2, batch=(x, None)).fan_in
    assert torch.equal(sel, pre)  # NORTH-Pre falls back to Select on conv sites
    conv = model.convs[0].conv

    def act(w):
        return units_matrix(torch.relu(nn.functional.conv2d(x, w, None, conv.stride, conv.padding)))

    rand = torch.empty(100, 2, 3, 3).uniform_(-0.3, 0.3)
    assert orthogonality_scores(act(sel), cur).min() > orthogonality_scores(act(rand), cur).median()


@pytest.mark.parametrize("shape", [(6, 200), (200, 6), (6, 9)])
def test_singular_values_match_the_svd(shape):
    """The Gram route (wide/tall) gives LAPACK's values and the same span above epsilon."""
    from growray.growth._north_triggers import singular_values

    g = torch.Generator().manual_seed(0)
    h = torch.randn(*shape, generator=g, dtype=torch.float64) @ torch.diag(torch.logspace(0, -3, shape[1]).double())
    eps = 1e-2
    sigma, basis = singular_values(h, eps, with_basis=True)
    _, s, vh = torch.linalg.svd(h, full_matrices=False)
    torch.testing.assert_close(sigma, s, rtol=1e-9, atol=1e-12)
    ref = vh[s > eps].t()
    assert basis is not None and basis.shape == ref.shape
    torch.testing.assert_close(basis @ basis.t(), ref @ ref.t(), rtol=0, atol=1e-9)  # same projector
    # a threshold the Gram eigenvalues cannot resolve goes to the SVD
    tiny, _ = singular_values(h * 1e6, 1e-3)
    torch.testing.assert_close(tiny, torch.linalg.svdvals(h * 1e6))
