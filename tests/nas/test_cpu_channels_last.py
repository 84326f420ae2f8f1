"""The cell networks run in channels-last memory format on the CPU (``cpu_channels_last``):
the same losses and gradients as in the default format, PC-DARTS excluded, and the
FactorizedReduce rewrite that keeps PyTorch's faulty strided 1x1 kernel out of it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import growray.nas.darts
import growray.nas.enas
import growray.nas.nb201_net
import growray.nas.nb201_network
import growray.nas.network
from growray.models import MODELS
from growray.nas import EnasController
from growray.nas.ops import FactorizedReduce, cpu_channels_last

torch.set_num_threads(1)

GENOTYPE = {
    "normal": [["sep_conv_5x5", 0], ["dil_conv_3x3", 1], ["skip_connect", 0], ["max_pool_3x3", 2]],
    "reduce": [["avg_pool_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 2], ["dil_conv_5x5", 0]],
}
MODULES = (growray.nas.darts, growray.nas.enas, growray.nas.network, growray.nas.nb201_net, growray.nas.nb201_network)


def _darts(**kw: object) -> nn.Module:
    return MODELS.build(
        {"name": "darts_supernet", "channels": 4, "layers": 3, "nodes": 2, "multiplier": 2, **kw},
        input_shape=(1, 7, 7),
        n_classes=3,
    )


def _gdas() -> nn.Module:
    model = _darts()
    model.set_gumbel(1.0, torch.Generator().manual_seed(1))  # type: ignore[operator]
    return model


def _enas() -> nn.Module:
    model = MODELS.build(
        {"name": "enas_supernet", "channels": 4, "layers": 3, "nodes": 2}, input_shape=(1, 7, 7), n_classes=3
    )
    controller = EnasController(n_nodes=2, op_names=list(model.op_names), hidden=8)  # type: ignore[arg-type]
    torch.manual_seed(2)
    model.set_arch(controller.sample()[0])  # type: ignore[operator]
    return model


def _cells() -> nn.Module:
    return MODELS.build(
        {"name": "cell_network", "genotype": GENOTYPE, "channels": 4, "layers": 3}, input_shape=(1, 7, 7), n_classes=3
    )


def _nb201(**kw: object) -> nn.Module:
    return MODELS.build(
        {"name": "nb201_supernet", "channels": 4, "cells_per_stage": 1, **kw}, input_shape=(1, 7, 7), n_classes=3
    )


def _nb201_network() -> nn.Module:
    return MODELS.build(
        {
            "name": "nb201_network",
            "genotype": "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
            "channels": 4,
            "cells_per_stage": 1,
        },
        input_shape=(1, 7, 7),
        n_classes=3,
    )


MODELS_CL: dict[str, Callable[[], nn.Module]] = {
    "darts": _darts,
    "gdas": _gdas,
    "enas": _enas,
    "cell_network": _cells,
    "nb201_supernet": _nb201,
    "nb201_network": _nb201_network,
}
MODELS_DEFAULT_FORMAT: dict[str, Callable[[], nn.Module]] = {
    "pcdarts": lambda: _darts(partial_channels=2, edge_normalization=True),
    "pcdarts_nb201": lambda: _nb201(partial_channels=2),
}


def _layout(x: torch.Tensor) -> str:
    cl, default = x.is_contiguous(memory_format=torch.channels_last), x.is_contiguous()
    return "both" if cl and default else "channels_last" if cl else "default" if default else "strided"


def _loss_and_grads(make: Callable[[], nn.Module]) -> tuple[torch.Tensor, dict[str, torch.Tensor], set[str]]:
    """The loss and gradients of one training batch, and the layouts of every spatial conv's
    input after the stem (a one-channel or 1x1 map is both layouts)."""
    torch.manual_seed(0)
    model = make()
    model.train()
    seen: set[str] = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1) and not name.startswith("stem"):
            m.register_forward_pre_hook(lambda _m, a: seen.add(_layout(a[0])))
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(6, 1, 7, 7, generator=gen), torch.randint(0, 3, (6,), generator=gen)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, seen


def _default_format(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in MODULES:
        if hasattr(module, "cpu_channels_last"):
            monkeypatch.setattr(module, "cpu_channels_last", lambda x, enabled=True: x)


@pytest.mark.parametrize("name", sorted(MODELS_CL))
def test_channels_last_on_cpu_gives_the_same_loss_and_gradients(name, monkeypatch):
    loss, grads, seen = _loss_and_grads(MODELS_CL[name])
    assert "channels_last" in seen and "default" not in seen, seen
    _default_format(monkeypatch)
    loss_ref, grads_ref, seen_ref = _loss_and_grads(MODELS_CL[name])
    assert "default" in seen_ref and "channels_last" not in seen_ref, seen_ref
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    assert grads.keys() == grads_ref.keys() and len(grads) > 4
    for key, g in grads.items():
        torch.testing.assert_close(g, grads_ref[key], rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.parametrize("name", sorted(MODELS_DEFAULT_FORMAT))
def test_partial_channels_stay_in_the_default_format(name):
    _, _, seen = _loss_and_grads(MODELS_DEFAULT_FORMAT[name])
    assert "channels_last" not in seen, seen


def test_cpu_channels_last_leaves_other_tensors_alone():
    x = torch.randn(2, 3, 4, 4)
    assert cpu_channels_last(x).is_contiguous(memory_format=torch.channels_last)
    assert cpu_channels_last(x, enabled=False) is x
    flat = torch.randn(2, 3)
    assert cpu_channels_last(flat) is flat
    meta = torch.empty(2, 3, 4, 4, device="meta")
    assert cpu_channels_last(meta) is meta


@pytest.mark.parametrize("size", [7, 8])
def test_factorized_reduce_equals_two_strided_1x1_convs(size):
    torch.manual_seed(0)
    op = FactorizedReduce(6, 4, affine=False)
    x = torch.randn(3, 6, size, size)
    relu = F.relu(x)
    shifted = F.pad(relu, (0, 1, 0, 1))[:, :, 1:, 1:]
    expected = torch.cat([F.conv2d(relu, op.conv_1.weight, stride=2), F.conv2d(shifted, op.conv_2.weight, stride=2)], 1)
    expected = F.batch_norm(expected, None, None, training=True)
    torch.testing.assert_close(op(x), expected, rtol=1e-6, atol=1e-6)


def test_factorized_reduce_backward_in_channels_last_at_small_sizes():
    """6 -> 2 channels on 8x8: PyTorch 2.14's channels-last strided 1x1 conv gave gradients 40%
    off here and then corrupted the heap; FactorizedReduce no longer uses that kernel."""
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        torch.manual_seed(0)
        op = FactorizedReduce(6, 2, affine=False).to(memory_format=fmt)
        x = torch.randn(256, 6, 8, 8).contiguous(memory_format=fmt).requires_grad_()
        (op(x) * torch.randn(256, 2, 4, 4)).sum().backward()
        assert x.grad is not None and op.conv_1.weight.grad is not None
        grads.append((x.grad.clone(), op.conv_1.weight.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
