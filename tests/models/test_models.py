import json

import pytest
import torch
from torch import nn

from growray.models import ACTIVATIONS, MODELS, ArchSpec, GrowableMLP, build_model, make_activation
from growray.registry import UnknownNameError

torch.set_num_threads(1)


def test_registries():
    assert "mlp" in MODELS
    assert ACTIVATIONS.names() == ["gelu", "leaky_relu", "rational", "relu", "silu", "smooth_leaky", "tanh"]
    assert isinstance(make_activation("gelu"), nn.GELU)
    assert set(MODELS.user_parameters("mlp")) == {
        "hidden",
        "activation",
        "batch_norm",
        "hidden_ids",
        "hidden_activations",
        "hidden_dropin",  # per-block options written by grown specs
    }


@pytest.mark.parametrize("batch_norm", [False, True])
def test_structure_and_forward(batch_norm):
    m = GrowableMLP((1, 4, 4), 3, hidden=[5, 6], activation="tanh", batch_norm=batch_norm)
    assert m.sites() == ["hidden.0", "hidden.1"]
    assert m.widths() == {"hidden.0": 5, "hidden.1": 6}
    assert m(torch.randn(8, 1, 4, 4)).shape == (8, 3)
    mods = m.site_modules("hidden.1")
    assert mods.producer is m.hidden[1].linear and mods.consumer is m.head
    assert (mods.norm is not None) == batch_norm
    assert m.site_modules("hidden.0").consumer is m.hidden[1].linear


def test_no_hidden_layers():
    m = GrowableMLP((3,), 2, hidden=[])
    assert m.sites() == [] and m(torch.randn(4, 3)).shape == (4, 2)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_spec_round_trip(batch_norm):
    torch.manual_seed(0)
    m = GrowableMLP((2, 3), 4, hidden=[7, 5], activation="silu", batch_norm=batch_norm)
    if batch_norm:  # fill the running stats
        m.train()
        m(torch.randn(32, 2, 3) * 3 + 1)
    m.eval()
    spec = m.spec()
    d = json.loads(spec.to_json())
    assert d == {
        "kind": "mlp",
        "input_shape": [2, 3],
        "n_classes": 4,
        "hidden": [7, 5],
        "activation": "silu",
        "batch_norm": batch_norm,
    }
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    rebuilt = build_model(ArchSpec.from_json(spec.to_json()))
    rebuilt.load_state_dict(m.state_dict())
    rebuilt.eval()
    x = torch.randn(10, 2, 3)
    assert torch.equal(rebuilt(x), m(x))


def test_unknown_activation_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'gelu'"):
        GrowableMLP((4,), 2, activation="gelu_")
    with pytest.raises(UnknownNameError, match="did you mean 'relu'"):
        build_model(ArchSpec("mlp", {"input_shape": [4], "n_classes": 2, "activation": "rellu"}))


def test_unknown_model_and_site():
    with pytest.raises(UnknownNameError, match="did you mean 'mlp'"):
        build_model(ArchSpec("mlpp", {"input_shape": [4], "n_classes": 2}))
    with pytest.raises(UnknownNameError, match=r"did you mean 'hidden\.0'"):
        GrowableMLP((4,), 2).site_modules("hidden0")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden": [4, 0]}, r"hidden\[1\] must be an int >= 1; got 0"),
        ({"hidden": "32"}, "hidden must be a list"),
        ({"n_classes": 0}, "n_classes must be an int >= 1; got 0"),
        ({"input_shape": (3, -1)}, "input_shape must contain positive ints"),
        ({"batch_norm": "yes"}, "batch_norm must be true or false"),
    ],
)
def test_constructor_validation(kwargs, match):
    args = {"input_shape": (4,), "n_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        GrowableMLP(**args)


def test_archspec_validation():
    with pytest.raises(ValueError, match="needs a 'kind'"):
        ArchSpec.from_dict({"hidden": [3]})
    with pytest.raises(TypeError, match="no parameter"):
        build_model(ArchSpec("mlp", {"input_shape": [4], "n_classes": 2, "widths": [3]}))
