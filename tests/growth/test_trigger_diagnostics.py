"""Trigger.diagnostics: what a trigger measured at its last check, relative to growth/."""

from __future__ import annotations

import math

import pytest
import torch

from growray.growth import TRIGGERS, TriggerContext
from growray.growth.senn import SENNTrigger, measure_site
from growray.models import GrowableMLP

torch.set_num_threads(1)


def _data(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("name", [n for n in TRIGGERS.names() if n != "senn"])
def test_other_triggers_report_nothing(name):
    assert TRIGGERS.build(name).diagnostics() == {}


def test_senn_reports_eta_and_best_delta_eta_per_site_after_a_check():
    torch.manual_seed(0)
    model = GrowableMLP((6,), 4, hidden=[3, 2], activation="tanh")
    x, y = _data()
    trigger = SENNTrigger(check_every=1, depth=False, n_proposals=8, n_steps=2)
    assert trigger.diagnostics() == {}, "nothing measured before the first check"
    trigger.check(TriggerContext(1, 0, "step", model.widths(), model=model, batch=(x, y)))
    diag = trigger.diagnostics()
    sites = model.sites()
    assert set(diag) == {"senn_eta"} | {f"senn_eta/{s}" for s in sites} | {f"senn_delta_eta/{s}" for s in sites}
    assert all(isinstance(v, float) and math.isfinite(v) for v in diag.values())
    for s in sites:  # eta is the consumer's K-FAC score, measured independently here
        eta = measure_site(model, s, (x, y), trigger.tikhonov)[0].stats.eta
        assert diag[f"senn_eta/{s}"] == pytest.approx(eta, rel=1e-9)
        assert diag[f"senn_delta_eta/{s}"] > 0
    assert diag["senn_eta"] == pytest.approx(sum(diag[f"senn_eta/{s}"] for s in sites), rel=1e-12)
    # a call between checks (another step) leaves the last check's values in place
    trigger.check(TriggerContext(2, 0, "epoch", model.widths(), model=model, batch=(x, y)))
    assert trigger.diagnostics() == diag
