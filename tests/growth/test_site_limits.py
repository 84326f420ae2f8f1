"""check_site: one signature on every growth plug-in, fed a SiteLimits."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from growray.growth import (
    DEEPENERS,
    INITIALIZERS,
    TRIGGERS,
    Deepener,
    Initializer,
    SiteLimits,
    Trigger,
)
from growray.models import GrowableCNN, GrowableMLP, SiteModules

torch.set_num_threads(1)


def _mlp() -> GrowableMLP:
    return GrowableMLP((4, 4), 3, hidden=[10, 4])  # 16 input features


class _FixedSite(nn.Module):
    """A growable but not deepenable model: one Linear -> Linear site."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(5, 3), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))

    def sites(self) -> list[str]:
        return ["a"]

    def widths(self) -> dict[str, int]:
        return {"a": 3}

    def site_modules(self, site: str) -> SiteModules:
        return SiteModules(self.a, None, self.b)


def test_site_limits_defaults_and_checks():
    assert SiteLimits() == SiteLimits(max_width=None, max_depth=None, buffer_size=256)
    with pytest.raises(ValueError, match="max_width must be an int >= 1 or null; got 0"):
        SiteLimits(max_width=0)
    with pytest.raises(ValueError, match=r"max_depth must be an int >= 1 or null; got 1\.5"):
        SiteLimits(max_depth=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="buffer_size must be an int >= 1; got None"):
        SiteLimits(buffer_size=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        SiteLimits().max_width = 3  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    "registry, base",
    [(TRIGGERS, Trigger), (INITIALIZERS, Initializer), (DEEPENERS, Deepener)],
    ids=["triggers", "initializers", "deepeners"],
)
def test_every_registered_plugin_has_the_one_check_site_signature(registry, base):
    """Declared on the base class, so no caller needs ``hasattr``; overrides keep its parameters."""
    expected = list(inspect.signature(base.check_site).parameters)
    assert expected == ["self", "model", "site", "limits"]
    for name in registry.names():
        cls = type(registry.build(name))
        assert list(inspect.signature(cls.check_site).parameters) == expected, name


def test_defaults_accept_every_site():
    model = _mlp()
    for name in ("schedule", "plateau", "gradient", "senn"):
        assert TRIGGERS.build(name).check_site(model, "hidden.0", SiteLimits()) is None, name
    for name in ("random", "net2wider", "gradmax", "north_select"):
        assert INITIALIZERS.build(name).check_site(model, "hidden.0", SiteLimits()) is None, name


def test_north_act_needs_more_buffered_samples_than_units_at_dense_sites():
    trigger = TRIGGERS.build("north_act")
    model = _mlp()
    assert "set growth.max_width < growth.buffer_size (now None and 256)" in trigger.check_site(
        model, "hidden.0", SiteLimits()
    )
    assert "now 64 and 64" in trigger.check_site(model, "hidden.0", SiteLimits(max_width=64, buffer_size=64))
    assert trigger.check_site(model, "hidden.0", SiteLimits(max_width=63, buffer_size=64)) is None
    cnn = GrowableCNN((1, 8, 8), 3, channels=[3, 4])
    assert trigger.check_site(cnn, "conv.0", SiteLimits()) is None  # positions count as samples


def test_north_weight_needs_the_cap_at_most_the_fan_in():
    init = INITIALIZERS.build("north_weight")
    model = _mlp()  # hidden.0: fan-in 16, width 10
    assert init.check_site(model, "hidden.0", SiteLimits(max_width=16)) is None
    assert "set growth.max_width <= 16 (now 17)" in init.check_site(model, "hidden.0", SiteLimits(max_width=17))
    assert "set growth.max_width <= 16 (now None)" in init.check_site(model, "hidden.0", SiteLimits())
    wide = GrowableMLP((4,), 3, hidden=[6])  # width 6 >= fan-in 4: never possible
    assert "width < fan_in" in init.check_site(wide, "hidden.0", SiteLimits(max_width=4))


def test_deepeners_refuse_models_without_blocks_and_unknown_sites():
    for name in DEEPENERS.names():
        deepener = DEEPENERS.build(name)
        assert "not a DeepenableModel" in deepener.check_site(_FixedSite(), "a", SiteLimits())
        assert "did you mean 'hidden.0'" in deepener.check_site(_mlp(), "hidden0", SiteLimits())
        assert deepener.check_site(_mlp(), "hidden.1", SiteLimits()) is None
