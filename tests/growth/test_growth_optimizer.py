import pytest
import torch

from growray.growth import RandomInitializer, migrate_optimizer, widen
from growray.testing.initializers import make_probe_model

torch.set_num_threads(1)
OPTIMIZERS = {
    "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1),
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "adam_amsgrad": lambda ps: torch.optim.Adam(ps, lr=1e-2, amsgrad=True),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
}


def _step(model, opt):
    x = torch.randn(16, 2, 3)
    y = torch.randint(0, 4, (16,))
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_migrate(name):
    torch.manual_seed(0)
    model = make_probe_model(batch_norm=True).train()
    opt = OPTIMIZERS[name](model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(3):
        _step(model, opt)
    old = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    changes = widen(model, "hidden.0", RandomInitializer().propose(model, "hidden.0", 4))
    migrate_optimizer(opt, changes)
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.parameters()}
    assert sum(bool(s) for s in opt.state.values()) == (len(list(model.parameters())) if name != "sgd" else 0)
    for c in changes:
        assert c.old not in opt.state
        for k, v in old[c.old].items():
            new = opt.state[c.new][k]
            if v.dim() == 0:  # Adam's step count
                assert torch.equal(new, v) and float(new) == 3
            else:
                assert torch.equal(new.narrow(c.dim, 0, c.n_old), v)  # bit-identical
                assert torch.count_nonzero(new.narrow(c.dim, c.n_old, 4)) == 0
    unchanged = [p for p in model.parameters() if all(p is not c.new for c in changes)]
    for p in unchanged:
        for k, v in old[p].items():
            assert torch.equal(opt.state[p][k], v)
    _step(model, opt)  # shapes line up
    sched.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    if name != "sgd":
        assert all(opt.state[p] for p in model.parameters())


def test_unknown_policy():
    opt = torch.optim.SGD(make_probe_model(False).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"one of \['zero', 'transplant', 'reset'\]; got 'adagrad'"):
        migrate_optimizer(opt, [], policy="adagrad")
