"""Conformance suite for registered models (``growray.models.MODELS``).

Every case (:class:`ModelCase`: a registered name, an input shape and constructor
parameters) is built and checked for:

* a forward pass giving ``(n, n_classes)`` finite logits, in train and eval mode;
* ``build_model(model.spec())`` giving the same parameter and buffer names and shapes,
  and ``load_state_dict`` restoring the outputs exactly (same shapes, values copied:
  exact equality is right here), after the weights and BatchNorm statistics have been
  moved off their initial values so the equality bites;
* a spec that survives a JSON round trip and rebuilds a model with the same sites;
* ``sites()``, ``widths()`` and ``site_modules()`` agreeing: the sites in forward order
  are the keys of ``widths()``, the producer makes ``width`` units (its out-dimension and
  BatchNorm), the consumer reads ``width * spatial`` inputs, and on a real forward pass the
  site's post-activation has ``width`` units and the consumer's input ``width * spatial``.

Models without width sites (NAS supernets, cell networks) pass the site checks vacuously,
so a caller can include them with image inputs. Usage (see
``tests/models/test_models_conformance.py``)::

    class TestMyModels(ModelConformance):
        @pytest.fixture(params=MY_CASES, ids=lambda c: c.id)
        def case(self, request):
            return request.param
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import pytest
import torch
from torch import Tensor, nn

from growray.growth.capture import capture_site
from growray.models import MODELS, ArchSpec, build_model
from growray.models.sites import GrowableModel
from growray.registry import UnknownNameError

__all__ = ["MODEL_CASES", "ModelCase", "ModelConformance", "RegisteredModel", "prepared_model"]


@runtime_checkable
class RegisteredModel(Protocol):
    """What every registered model offers: a forward pass, its width sites (possibly none)
    and its current architecture."""

    def __call__(self, x: Tensor, /) -> Tensor: ...

    def sites(self) -> list[str]: ...

    def widths(self) -> dict[str, int]: ...

    def spec(self) -> ArchSpec: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@dataclass(frozen=True)
class ModelCase:
    """One registered model on a small config.

    Attributes:
        name: the registered model name.
        input_shape: shape of one sample (``(C, H, W)`` for image models).
        params: constructor parameters besides ``input_shape`` and ``n_classes`` (JSON types).
        n_classes: logits.
        label: distinguishes cases of the same model in test ids (e.g. ``"bn"``).
        prepare: called on every model the suite builds (rebuilt ones included) before its
            first forward, for state a spec does not describe (e.g. an ENAS supernet's
            ``set_arch``); deterministic. None: nothing to do.
    """

    name: str
    input_shape: tuple[int, ...]
    params: dict[str, object] = field(default_factory=dict)
    n_classes: int = 3
    label: str = ""
    prepare: Callable[[nn.Module], None] | None = None

    @property
    def id(self) -> str:
        """A pytest id: ``name`` or ``name-label``."""
        return f"{self.name}-{self.label}" if self.label else self.name

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh model of this case, seeded (torch's global RNG is left as it was), prepared."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = MODELS.build(
                {"name": self.name, **self.params}, input_shape=self.input_shape, n_classes=self.n_classes
            )
        return self.prepared(model)

    def rebuild(self, spec: ArchSpec) -> nn.Module:
        """``build_model(spec)``, prepared like every model of this case."""
        return self.prepared(build_model(spec))

    def prepared(self, model: nn.Module) -> nn.Module:
        if self.prepare is not None:
            self.prepare(model)
        return model

    def batch(self, seed: int = 1, n: int = 6) -> Tensor:
        """``n`` random samples of ``input_shape``."""
        return torch.randn(n, *self.input_shape, generator=torch.Generator().manual_seed(seed))


#: The growable models, with and without BatchNorm (the CNN also without a hidden head
#: layer, so its last conv feeds the logits through the flatten, and without pooling).
MODEL_CASES: list[ModelCase] = [
    ModelCase("mlp", (4, 4), {"hidden": [6, 5]}),
    ModelCase("mlp", (4, 4), {"hidden": [6, 5], "batch_norm": True}, label="bn"),
    ModelCase("mlp", (5,), {"hidden": []}, label="no_hidden"),
    ModelCase("cnn", (2, 8, 8), {"channels": [3, 4], "hidden": [5], "batch_norm": False}),
    ModelCase("cnn", (2, 8, 8), {"channels": [3, 4], "hidden": [5], "batch_norm": True}, label="bn"),
    ModelCase("cnn", (1, 6, 5), {"channels": [2, 3], "pool_after": [], "batch_norm": True}, label="flat_head"),
]


def _registered(model: nn.Module) -> RegisteredModel:
    if not isinstance(model, RegisteredModel):
        raise TypeError(f"a registered model needs sites(), widths() and spec(); {type(model).__name__} lacks one")
    return model


def prepared_model(case: ModelCase, seed: int = 0) -> nn.Module:
    """A model of ``case`` in eval mode, its weights moved off their initialisation and its
    BatchNorm statistics off the defaults (train-mode forwards), so equalities bite."""
    model = case.build(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        model.train()
        for s in range(3):
            model(case.batch(seed + 200 + s) * (1 + s) + s)
    return model.eval()


def _shapes(named: Iterator[tuple[str, Tensor]]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in named}


class ModelConformance:
    """Forward shape, spec rebuild and restore, spec JSON round trip and site bookkeeping of ``case``."""

    @pytest.fixture
    def case(self) -> ModelCase:
        raise NotImplementedError("subclasses define the `case` fixture")

    def test_is_registered_and_reports_its_spec(self, case: ModelCase) -> None:
        assert case.name in MODELS.names()
        spec = _registered(case.build()).spec()
        assert isinstance(spec, ArchSpec) and spec.kind == case.name

    def test_forward_gives_one_row_of_logits_per_sample(self, case: ModelCase) -> None:
        model = case.build()
        x = case.batch(n=5)
        for training in (True, False):
            model.train(training)
            with torch.no_grad():
                out = model(x)
            assert out.shape == (5, case.n_classes), f"train={training}: {tuple(out.shape)}"
            assert torch.isfinite(out).all()

    def test_spec_rebuilds_the_same_parameters_and_restores_outputs_exactly(self, case: ModelCase) -> None:
        model = prepared_model(case)
        rebuilt = case.rebuild(_registered(model).spec())
        assert type(rebuilt) is type(model)
        assert _shapes(rebuilt.named_parameters()) == _shapes(model.named_parameters())
        assert _shapes(rebuilt.named_buffers()) == _shapes(model.named_buffers())
        rebuilt.load_state_dict(model.state_dict())  # strict: the same keys and shapes
        rebuilt.eval()
        x = case.batch(7)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x))

    def test_spec_survives_json_and_rebuilds_the_same_sites(self, case: ModelCase) -> None:
        model = _registered(case.build())
        spec = model.spec()
        again = ArchSpec.from_json(json.dumps(json.loads(spec.to_json())))
        assert again == spec and ArchSpec.from_dict(spec.to_dict()) == spec
        rebuilt = _registered(case.rebuild(again))
        assert rebuilt.spec() == spec
        assert rebuilt.sites() == model.sites() and rebuilt.widths() == model.widths()

    def test_sites_widths_and_site_modules_agree(self, case: ModelCase) -> None:
        model = case.build().eval()
        reg = _registered(model)
        sites, widths = reg.sites(), reg.widths()
        assert len(set(sites)) == len(sites), f"duplicate site names: {sites}"
        assert list(widths) == sites, "widths() has one entry per site, in forward order"
        assert all(isinstance(w, int) and w >= 1 for w in widths.values())
        if not sites:
            return  # a model without width sites (a supernet): nothing to grow
        assert isinstance(model, GrowableModel), "a model with width sites needs site_modules()"
        x = case.batch(3)
        for site in sites:
            width, mods = widths[site], model.site_modules(site)
            assert mods.spatial >= 1 and (mods.spatial == 1 or isinstance(mods.consumer, nn.Linear)), site
            assert mods.producer.weight.shape[0] == width, f"{site}: producer out-dim"
            out_dim = mods.producer.out_channels if isinstance(mods.producer, nn.Conv2d) else mods.producer.out_features
            assert out_dim == width, f"{site}: producer's out_features / out_channels"
            if mods.producer.bias is not None:
                assert mods.producer.bias.shape == (width,), f"{site}: producer bias"
            if mods.norm is not None:
                assert mods.norm.num_features == width, f"{site}: BatchNorm features"
            assert mods.consumer.weight.shape[1] == width * mods.spatial, f"{site}: consumer in-dim"
            cap = capture_site(model, site, x)  # the modules really are wired this way
            assert cap.post.shape[1] == width, f"{site}: units on a forward pass"
            if isinstance(mods.consumer, nn.Conv2d):
                assert cap.consumer_inputs.shape[1] == width, f"{site}: consumer input channels"
            else:
                assert cap.consumer_inputs.shape[1:] == (width * mods.spatial,), f"{site}: consumer input features"
        with pytest.raises(UnknownNameError):
            model.site_modules(f"{sites[0]}_not_a_site")
