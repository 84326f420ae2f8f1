"""Costs of masked models (growray.cost.masked): active parameters, effective forward and
training FLOPs by hand, RigL's dense-gradient extra, recounts when masks change, and dense
models counted exactly as before."""

from __future__ import annotations

import torch
from torch import nn

from growray.config import CostsConfig
from growray.cost import (
    TrainingCompute,
    count_params,
    dense_gradient_extra_flops,
    forward_flops,
    training_flops_per_sample,
)
from growray.models import MODELS
from growray.sparse import WeightMasks, maskable_layers, random_mask
from growray.train.costs import CostMeter

torch.set_num_threads(1)

MLP = {"name": "mlp", "hidden": [12, 8]}
SHAPE = (1, 6, 6)


def _mlp():
    torch.manual_seed(0)
    return MODELS.build(MLP, input_shape=SHAPE, n_classes=4)


def _mask(model, counts, seed=0):
    gen = torch.Generator().manual_seed(seed)
    layers = maskable_layers(model)
    wm = WeightMasks({k: random_mask(tuple(layers[k].weight.shape), n, gen) for k, n in counts.items()})
    wm.attach(model)
    return wm


def test_dense_models_count_as_before():
    model = _mlp()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert count_params(model) == sum(p.numel() for p in model.parameters())
    assert forward_flops(model, SHAPE) == sum(2 * m.in_features * m.out_features for m in linears)
    first, *rest = linears
    by_hand = 4 * first.in_features * first.out_features + sum(6 * m.in_features * m.out_features for m in rest)
    assert training_flops_per_sample(model, SHAPE) == by_hand
    assert dense_gradient_extra_flops(model, SHAPE) == 0


def test_masked_mlp_counts_active_weights_by_hand():
    model = _mlp()
    counts = {"hidden.0.linear": 50, "hidden.1.linear": 30, "head": 10}  # of 432, 96, 32
    _mask(model, counts)
    n_all = sum(p.numel() for p in model.parameters())
    n_weights = {"hidden.0.linear": 432, "hidden.1.linear": 96, "head": 32}
    assert count_params(model, dense=True) == n_all
    assert count_params(model) == n_all - sum(n_weights[k] - counts[k] for k in counts)
    assert forward_flops(model, SHAPE) == sum(2 * n for n in counts.values())
    assert forward_flops(model, SHAPE, dense=True) == 2 * sum(n_weights.values())
    # first layer: forward + weight gradient; the others also an input gradient
    assert training_flops_per_sample(model, SHAPE) == 4 * 50 + 6 * 30 + 6 * 10
    assert dense_gradient_extra_flops(model, SHAPE) == sum(2 * (n_weights[k] - counts[k]) for k in counts)


def test_masked_conv_scales_by_density():
    torch.manual_seed(0)
    model = MODELS.build({"name": "cnn", "channels": [4], "hidden": []}, input_shape=(1, 8, 8), n_classes=3)
    dense_fwd = forward_flops(model, (1, 8, 8))
    conv = maskable_layers(model)["convs.0.conv"]
    per_weight = 2 * 8 * 8  # a 3x3 'same' conv uses each weight at every output position
    _mask(model, {"convs.0.conv": 9})  # 9 of 36 weights
    assert forward_flops(model, (1, 8, 8)) == dense_fwd - (conv.weight.numel() - 9) * per_weight


def test_training_compute_recounts_when_a_mask_changes_and_adds_extra_flops():
    model = _mlp()
    wm = _mask(model, {"hidden.0.linear": 50})
    tc = TrainingCompute()
    tc.add_step(model, SHAPE, 10)
    first = tc.flops_per_sample
    tc.add_step(model, SHAPE, 10)
    assert tc.n_counts == 1, "the same mask is not recounted"
    new = wm.mask("hidden.0.linear").clone().reshape(-1)
    new[new.nonzero()[:20]] = False  # 20 fewer active weights
    wm.replace("hidden.0.linear", new.view_as(wm.mask("hidden.0.linear")))
    tc.add_step(model, SHAPE, 10)
    assert tc.n_counts == 2 and tc.flops_per_sample == first - 4 * 20
    tc.add_flops(123)
    assert tc.total_flops == 10 * (2 * first + first - 80) + 123


def test_cost_meter_follows_the_masks():
    model = _mlp()
    meter = CostMeter(CostsConfig(latency={"enabled": False}), SHAPE, torch.device("cpu"))
    widths = {"hidden.0": 12, "hidden.1": 8}
    dense = meter.static(model, widths)
    wm = _mask(model, {"head": 10})
    masked = meter.static(model, widths)
    assert masked["cost/params"] == dense["cost/params"] - 22
    assert masked["cost/flops"] == dense["cost/flops"] - 44
    new = wm.mask("head").clone().reshape(-1)
    new[new.nonzero()[:4]] = False
    wm.replace("head", new.view(4, 8))
    assert meter.static(model, widths)["cost/params"] == dense["cost/params"] - 26
