import json

import pytest
import torch
from torch import nn

from growray.growth import INITIALIZERS, widen
from growray.models import MODELS, ArchSpec, GrowableCNN, GrowableModel, build_model
from growray.registry import UnknownNameError

torch.set_num_threads(1)


def _fill_running_stats(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    model.eval()


def test_registered_with_typed_defaults():
    assert "cnn" in MODELS
    params = MODELS.user_parameters("cnn")
    assert set(params) == {
        "channels",
        "pool_after",
        "kernel_size",
        "hidden",
        "activation",
        "batch_norm",
        # per-block options written by grown specs (stable site ids, inserted layers' activations, DropIn gates)
        "conv_ids",
        "conv_activations",
        "conv_dropin",
        "hidden_ids",
        "hidden_activations",
        "hidden_dropin",
    }
    assert params["channels"].default == [16, 32] and params["pool_after"].default is None
    m = MODELS.build("cnn", input_shape=(3, 32, 32), n_classes=10)
    assert isinstance(m, GrowableCNN) and isinstance(m, GrowableModel)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_structure_and_forward(batch_norm):
    m = GrowableCNN(
        (2, 12, 10),
        3,
        channels=[4, 5, 6],
        pool_after=[0, 2],
        kernel_size=5,
        hidden=[7, 8],
        activation="gelu",
        batch_norm=batch_norm,
    )
    assert m.sites() == ["conv.0", "conv.1", "conv.2", "fc.0", "fc.1"]
    assert m.widths() == {"conv.0": 4, "conv.1": 5, "conv.2": 6, "fc.0": 7, "fc.1": 8}
    assert m(torch.randn(4, 2, 12, 10)).shape == (4, 3)
    assert m.feature_hw == (3, 2) and m.hidden[0].linear.in_features == 6 * 3 * 2
    assert m.convs[0].conv.padding == (2, 2) and m.convs[1].pool is None
    mods = m.site_modules("conv.1")
    assert mods.producer is m.convs[1].conv and mods.consumer is m.convs[2].conv
    assert mods.act is m.convs[1].act and mods.spatial == 1
    assert (mods.norm is not None) == batch_norm
    if batch_norm:
        assert isinstance(mods.norm, nn.BatchNorm2d)
    last = m.site_modules("conv.2")
    assert last.consumer is m.hidden[0].linear and last.spatial == 6
    fc = m.site_modules("fc.1")
    assert fc.producer is m.hidden[1].linear and fc.consumer is m.head and fc.spatial == 1
    assert isinstance(fc.act, nn.GELU)


def test_no_hidden_layers_last_conv_feeds_head():
    m = GrowableCNN((1, 8, 8), 2, channels=[3], hidden=[])
    assert m.sites() == ["conv.0"]
    mods = m.site_modules("conv.0")
    assert mods.consumer is m.head and mods.spatial == 16
    assert m(torch.randn(5, 1, 8, 8)).shape == (5, 2)


def test_flatten_is_channel_major():
    """Channel c of the last conv owns head columns c*S .. (c+1)*S - 1 (what surgery assumes)."""
    torch.manual_seed(0)
    m = GrowableCNN((1, 4, 4), 1, channels=[3], pool_after=[0], batch_norm=False).eval()
    feats = {}
    m.convs[0].register_forward_hook(lambda mod, a, out: feats.setdefault("x", out))
    x = torch.randn(2, 1, 4, 4)
    y = m(x)
    ref = torch.einsum("ncs,cs->n", feats["x"].reshape(2, 3, 4), m.head.weight.reshape(3, 4)) + m.head.bias
    assert torch.allclose(y.squeeze(1), ref, atol=1e-6)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_spec_round_trip(batch_norm):
    torch.manual_seed(0)
    m = GrowableCNN((3, 8, 8), 4, channels=[4, 6], pool_after=[1], hidden=[5], activation="silu", batch_norm=batch_norm)
    x = torch.randn(16, 3, 8, 8) * 2 + 1
    _fill_running_stats(m, x)
    spec = m.spec()
    d = json.loads(spec.to_json())
    assert d == {
        "kind": "cnn",
        "input_shape": [3, 8, 8],
        "n_classes": 4,
        "channels": [4, 6],
        "pool_after": [1],
        "kernel_size": 3,
        "hidden": [5],
        "activation": "silu",
        "batch_norm": batch_norm,
    }
    assert ArchSpec.from_dict(spec.to_dict()) == spec
    rebuilt = build_model(ArchSpec.from_json(spec.to_json()))
    rebuilt.load_state_dict(m.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt(x), m(x))


def test_default_pool_after_is_resolved_in_spec():
    m = GrowableCNN((1, 8, 8), 2, channels=[2, 2, 2])
    assert m.spec().params["pool_after"] == [0, 1, 2]
    assert GrowableCNN((1, 8, 8), 2, channels=[2, 2], pool_after=[1, 0]).spec().params["pool_after"] == [0, 1]


@pytest.mark.parametrize("init", ["random", "net2wider"])
def test_spec_round_trip_after_growth(init):
    torch.manual_seed(1)
    m = GrowableCNN((2, 8, 8), 3, channels=[3, 4], hidden=[5])
    x = torch.randn(16, 2, 8, 8)
    _fill_running_stats(m, x)
    for site, n in [("conv.0", 2), ("conv.1", 3), ("fc.0", 4)]:
        widen(m, site, INITIALIZERS.build(init).propose(m, site, n))
    assert m.widths() == {"conv.0": 5, "conv.1": 7, "fc.0": 9}
    spec = ArchSpec.from_json(m.spec().to_json())
    assert spec.params["channels"] == [5, 7] and spec.params["hidden"] == [9]
    rebuilt = build_model(spec)
    rebuilt.load_state_dict(m.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt(x), m(x))
    assert rebuilt.site_modules("conv.1").consumer.in_features == 7 * 4


def test_unknown_site_and_activation():
    m = GrowableCNN((1, 8, 8), 2, channels=[2])
    with pytest.raises(UnknownNameError, match=r"did you mean 'conv\.0'"):
        m.site_modules("conv0")
    with pytest.raises(UnknownNameError, match="did you mean 'relu'"):
        GrowableCNN((1, 8, 8), 2, activation="rellu")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_shape": (64,)}, r"input_shape must be \(C, H, W\).*got \(64,\)"),
        ({"input_shape": (1, 0, 8)}, r"input_shape must be \(C, H, W\) of positive ints"),
        (
            {"input_shape": (1, 4, 4), "channels": [2, 2, 2]},
            r"3 max-pools .* shrink input_shape \(1, 4, 4\) to 0x0.*pool fewer",
        ),
        ({"input_shape": (1, 8, 2), "channels": [2, 2]}, r"to 2x0"),
        ({"n_classes": 0}, "n_classes must be an int >= 1; got 0"),
        ({"channels": []}, r"channels must list at least one width"),
        ({"channels": [4, 0]}, r"channels\[1\] must be an int >= 1; got 0"),
        ({"channels": "16"}, "channels must be a list"),
        ({"hidden": [3, True]}, r"hidden\[1\] must be an int >= 1; got True"),
        ({"pool_after": [2]}, r"pool_after entries must be conv indices in 0..1.*got 2"),
        ({"pool_after": [0, 0]}, "pool_after must not repeat an index; got \\[0, 0\\]"),
        ({"pool_after": 1}, "pool_after must be a list of conv indices or null"),
        ({"kernel_size": 4}, "kernel_size must be an odd int >= 1.*got 4"),
        ({"kernel_size": 0}, "kernel_size must be an odd int >= 1.*got 0"),
        ({"batch_norm": "yes"}, "batch_norm must be true or false; got 'yes'"),
    ],
)
def test_constructor_validation(kwargs, match):
    args = {"input_shape": (1, 8, 8), "n_classes": 2, "channels": [2, 3], **kwargs}
    with pytest.raises(ValueError, match=match):
        GrowableCNN(**args)


def test_no_pooling_keeps_full_resolution():
    m = GrowableCNN((1, 5, 3), 2, channels=[2, 2], pool_after=[], kernel_size=1)
    assert m.feature_hw == (5, 3) and m.site_modules("conv.1").spatial == 15
    assert m(torch.randn(2, 1, 5, 3)).shape == (2, 2)
