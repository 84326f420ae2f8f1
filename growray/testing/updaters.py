"""Conformance suite for mask updaters (``growray.sparse.UPDATERS``).

Subclasses define an ``updater_factory`` fixture returning a zero-argument callable that
builds a fresh updater (two instances must behave the same on the same inputs):

    class TestRegisteredUpdaters(UpdaterConformance):
        @pytest.fixture(params=UPDATERS.names())
        def updater_factory(self, request):
            return lambda: UPDATERS.build(request.param)

It checks, on a Linear and a Conv2d layer shape and over a sequence of updates on trained-
looking weights: the first mask's count; well-formed updates (bool, same shape, the
bookkeeping ``|new| = |old| - n_dropped + n_grown``, at least ⌊f · active⌋ dropped, every kept
connection was active, every new one inactive before or dropped now, layers never emptied);
no change at drop fraction 0 and for non-dynamic updaters ever; the gradient read only
when ``needs_gradient`` (and refused when missing); determinism under one generator state;
a JSON state round trip; and masked weights staying at zero through a real optimizer when
the update is applied with ``WeightMasks``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from growray.sparse import UPDATERS, LayerInfo, MaskUpdate, MaskUpdater, WeightMasks
from growray.testing.initializers import check_registered_parameters

__all__ = ["UpdaterConformance", "update_sequence"]

SHAPES: dict[str, tuple[int, ...]] = {"linear": (12, 20), "conv": (6, 4, 3, 3)}
DENSITY = 0.3
FRACTIONS = [0.3, 0.25, 0.15, 0.05, 0.0]


def _weights(shape: tuple[int, ...], mask: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Weights (zero where inactive) and a dense gradient, both random under ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=gen) * mask
    g = torch.randn(shape, generator=gen)
    return w, g


def update_sequence(
    updater: MaskUpdater, shape: tuple[int, ...], seed: int = 0, is_last: bool = False
) -> list[tuple[Tensor, MaskUpdate]]:
    """``(mask before, update)`` for each drop fraction of ``FRACTIONS``, starting from the
    updater's own first mask; weights and gradients are fresh random tensors each time."""
    gen = torch.Generator().manual_seed(seed)
    n_active = max(1, round(DENSITY * math.prod(shape)))
    mask = updater.init_mask(shape, n_active, gen)
    out = []
    for i, f in enumerate(FRACTIONS):
        w, g = _weights(shape, mask, seed * 100 + i)
        upd = updater.update(
            LayerInfo("layer", 1 if is_last else 0, 2), mask, w, g if updater.needs_gradient else None, f, gen
        )
        out.append((mask, upd))
        mask = upd.mask
    return out


class UpdaterConformance:
    """Every mask updater's contract (module docstring)."""

    @pytest.fixture
    def updater_factory(self) -> Callable[[], MaskUpdater]:
        raise NotImplementedError("subclasses define the `updater_factory` fixture")

    def test_is_an_updater_with_documented_parameters(self, updater_factory: Callable[[], MaskUpdater]) -> None:
        updater = updater_factory()
        assert isinstance(updater, MaskUpdater)
        assert isinstance(updater.dynamic, bool) and isinstance(updater.needs_gradient, bool)
        check_registered_parameters(UPDATERS)

    @pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
    def test_first_mask_has_the_requested_count(
        self, updater_factory: Callable[[], MaskUpdater], shape: tuple[int, ...]
    ) -> None:
        n = max(1, round(DENSITY * math.prod(shape)))
        mask = updater_factory().init_mask(shape, n, torch.Generator().manual_seed(0))
        assert mask.dtype == torch.bool and tuple(mask.shape) == shape
        # exact for unstructured masks; a structured one may round down to a multiple of the rows
        assert n - shape[0] < int(mask.sum()) <= n

    @pytest.mark.parametrize("is_last", [False, True])
    @pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
    def test_updates_are_well_formed(
        self, updater_factory: Callable[[], MaskUpdater], shape: tuple[int, ...], is_last: bool
    ) -> None:
        updater = updater_factory()
        for (old, upd), f in zip(update_sequence(updater, shape, is_last=is_last), FRACTIONS):
            new = upd.mask
            assert new.dtype == torch.bool and new.shape == old.shape
            n_old, n_new = int(old.sum()), int(new.sum())
            assert n_new == n_old - upd.n_dropped + upd.n_grown, "|new| = |old| - dropped + grown"
            assert n_new >= 1, "a layer is never emptied"
            if updater.dynamic:
                assert upd.n_dropped >= int(n_old * f), "at least floor(f x active) connections are dropped"
            else:
                assert torch.equal(new, old) and upd.n_dropped == upd.n_grown == 0
            assert upd.n_grown <= upd.n_dropped, "an update never adds connections beyond those it dropped"
            assert upd.n_ablated >= 0 and (not is_last or upd.n_ablated == 0), "output neurons are never ablated"

    @pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
    def test_zero_drop_fraction_changes_nothing(
        self, updater_factory: Callable[[], MaskUpdater], shape: tuple[int, ...]
    ) -> None:
        updater = updater_factory()
        gen = torch.Generator().manual_seed(3)
        mask = updater.init_mask(shape, max(1, round(DENSITY * math.prod(shape))), gen)
        w, g = _weights(shape, mask, 3)
        upd = updater.update(LayerInfo("layer", 0, 2), mask, w, g, 0.0, gen)
        assert torch.equal(upd.mask, mask) and upd.n_dropped == upd.n_grown == 0

    def test_gradient_read_only_when_needed(self, updater_factory: Callable[[], MaskUpdater]) -> None:
        updater = updater_factory()
        shape = SHAPES["linear"]
        gen = torch.Generator().manual_seed(4)
        mask = updater.init_mask(shape, 72, gen)
        w, g = _weights(shape, mask, 4)
        if updater.needs_gradient:
            with pytest.raises(ValueError, match="gradient"):
                updater.update(LayerInfo("layer", 0, 2), mask, w, None, 0.3, torch.Generator().manual_seed(0))
        else:
            a = updater.update(LayerInfo("layer", 0, 2), mask, w, None, 0.3, torch.Generator().manual_seed(0))
            b = updater.update(LayerInfo("layer", 0, 2), mask, w, g, 0.3, torch.Generator().manual_seed(0))
            assert torch.equal(a.mask, b.mask), "an updater without needs_gradient ignores the gradient"

    @pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
    def test_deterministic_under_one_generator_state(
        self, updater_factory: Callable[[], MaskUpdater], shape: tuple[int, ...]
    ) -> None:
        a = update_sequence(updater_factory(), shape, seed=5)
        b = update_sequence(updater_factory(), shape, seed=5)
        for (oa, ua), (ob, ub) in zip(a, b):
            assert torch.equal(oa, ob) and torch.equal(ua.mask, ub.mask)
            assert (ua.n_dropped, ua.n_grown, ua.n_ablated) == (ub.n_dropped, ub.n_grown, ub.n_ablated)

    def test_state_round_trip(self, updater_factory: Callable[[], MaskUpdater]) -> None:
        a = updater_factory()
        update_sequence(a, SHAPES["linear"], seed=6)
        state = json.loads(json.dumps(a.state_dict()))  # must be JSON-able
        b = updater_factory()
        b.load_state_dict(state)
        for (_, ua), (_, ub) in zip(update_sequence(a, SHAPES["conv"], 7), update_sequence(b, SHAPES["conv"], 7)):
            assert torch.equal(ua.mask, ub.mask)

    def test_masked_weights_stay_zero_through_an_optimizer(self, updater_factory: Callable[[], MaskUpdater]) -> None:
        """Updates applied with WeightMasks on a real layer trained by SGD with momentum and
        weight decay: inactive weights and their momentum stay exactly 0."""
        updater = updater_factory()
        gen = torch.Generator().manual_seed(8)
        with torch.random.fork_rng():
            torch.manual_seed(8)
            model = nn.Sequential(nn.Linear(20, 12), nn.ReLU(), nn.Linear(12, 3))
        shapes = {"0": (12, 20), "2": (3, 12)}
        masks = WeightMasks(
            {k: updater.init_mask(s, max(1, round(DENSITY * math.prod(s))), gen) for k, s in shapes.items()}
        )
        masks.attach(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-2)
        x = torch.randn(32, 20, generator=gen)
        y = torch.randint(0, 3, (32,), generator=gen)
        for step in range(1, 13):
            if step % 4 == 0:
                masks.capture_next()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            if step % 4 == 0:
                grads = masks.release()
                for i, k in enumerate(masks.layers):
                    upd = updater.update(
                        LayerInfo(k, i, 2), masks.mask(k), masks.weight(k).detach(), grads[k], 0.3, gen
                    )
                    masks.replace(k, upd.mask, opt)
            for k in masks.layers:
                off = ~masks.mask(k)
                w = masks.weight(k)
                assert torch.all(w[off] == 0), f"inactive weights of {k} moved at step {step}"
                assert torch.all(opt.state[w]["momentum_buffer"][off] == 0), f"inactive momentum of {k} at step {step}"
        masks.detach()
