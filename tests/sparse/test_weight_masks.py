"""Per-weight masks: inactive weights, gradients and optimizer state stay exactly zero; mask
replacement resets exactly the changed positions; the dense gradient is kept when asked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from growray.cost import MASK_BUFFER
from growray.models import MODELS
from growray.sparse import WeightMasks, maskable_layers, random_mask

torch.set_num_threads(1)

OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-3),
    "sgd_nesterov_wd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3),
    "adam_wd": lambda p: torch.optim.Adam(p, lr=3e-3, weight_decay=5e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.1),
}
MODEL_SPECS = {
    "mlp": {"name": "mlp", "hidden": [16, 12]},
    "cnn": {"name": "cnn", "channels": [4, 6], "hidden": [8]},
}


def _masked_model(spec, density=0.2, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(spec, input_shape=(1, 8, 8), n_classes=5)
    gen = torch.Generator().manual_seed(seed)
    masks = {
        k: random_mask(tuple(m.weight.shape), max(1, round(density * m.weight.numel())), gen)
        for k, m in maskable_layers(model).items()
    }
    wm = WeightMasks(masks)
    wm.attach(model)
    return model, wm


@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
@pytest.mark.parametrize("model_name", list(MODEL_SPECS))
def test_masked_weights_gradients_and_state_stay_zero_for_100_steps(model_name, opt_name):
    model, wm = _masked_model(MODEL_SPECS[model_name])
    opt = OPTIMIZERS[opt_name](model.parameters())
    start = {k: wm.weight(k).detach().clone() for k in wm}
    gen = torch.Generator().manual_seed(1)
    for step in range(100):
        x = torch.randn(16, 1, 8, 8, generator=gen)
        y = torch.randint(0, 5, (16,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for k in wm:
            off = ~wm.mask(k)
            assert torch.all(wm.weight(k).grad[off] == 0), f"{k}: a masked gradient is non-zero at step {step}"
        opt.step()
        for k in wm:
            off, w = ~wm.mask(k), wm.weight(k)
            assert torch.all(w[off] == 0), f"{k}: a masked weight moved at step {step}"
            for name, slot in opt.state[w].items():
                if isinstance(slot, torch.Tensor) and slot.shape == w.shape:
                    assert torch.all(slot[off] == 0), f"{k}: optimizer slot {name} is non-zero at step {step}"
    for k in wm:  # the active weights did train
        on = wm.mask(k)
        assert not torch.equal(wm.weight(k)[on], start[k][on])


def test_masks_are_non_persistent_buffers_and_detach_cleanly():
    model, wm = _masked_model(MODEL_SPECS["cnn"])
    dense_keys = set(MODELS.build(MODEL_SPECS["cnn"], input_shape=(1, 8, 8), n_classes=5).state_dict())
    assert set(model.state_dict()) == dense_keys, "checkpoints keep the dense model's keys"
    for k, module in maskable_layers(model).items():
        assert torch.equal(module._buffers[MASK_BUFFER].bool(), wm.mask(k))
    wm.detach()
    assert all(MASK_BUFFER not in m._buffers for m in maskable_layers(model).values())
    x = torch.randn(4, 1, 8, 8)
    F.cross_entropy(model(x), torch.zeros(4, dtype=torch.long)).backward()
    assert any(torch.any(m.weight.grad[~wm.mask(k)] != 0) for k, m in maskable_layers(model).items()), (
        "after detach the gradient is dense again"
    )


def test_capture_keeps_the_dense_gradient_of_the_next_backward_only():
    model, wm = _masked_model(MODEL_SPECS["mlp"])
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 5, (8,))
    # the dense gradient an unmasked copy of the same weights gets
    reference = MODELS.build(MODEL_SPECS["mlp"], input_shape=(1, 8, 8), n_classes=5)
    reference.load_state_dict(model.state_dict())
    F.cross_entropy(reference(x), y).backward()
    wm.capture_next()
    F.cross_entropy(model(x), y).backward()
    F.cross_entropy(model(x * 2), y).backward()  # a second pass (a FLOP count) is not kept
    grads = wm.release()
    ref = dict(reference.named_modules())
    for k in wm:
        assert torch.allclose(grads[k], ref[k].weight.grad, atol=1e-6, rtol=1e-5)
        assert torch.any(grads[k][~wm.mask(k)] != 0), "the kept gradient is dense"
    assert wm.release() == {}


def test_replace_resets_exactly_the_changed_positions():
    model, wm = _masked_model(MODEL_SPECS["mlp"], density=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 5, (8,))).backward()
        opt.step()
    layer = "hidden.0.linear"
    w = wm.weight(layer)
    old = wm.mask(layer).clone()
    before = w.detach().clone()
    slots = {n: s.clone() for n, s in opt.state[w].items() if isinstance(s, torch.Tensor) and s.shape == w.shape}
    flat_on = old.reshape(-1).nonzero().reshape(-1)
    flat_off = (~old).reshape(-1).nonzero().reshape(-1)
    new = old.clone().reshape(-1)
    new[flat_on[:5]] = False  # drop 5
    new[flat_off[:5]] = True  # grow 5
    new = new.view_as(old)
    assert wm.replace(layer, new, opt) == (5, 5)
    changed = old ^ new
    assert torch.all(w[changed] == 0), "dropped and grown weights are zero"
    assert torch.equal(w[~changed], before[~changed]), "the others are untouched"
    for n, s in opt.state[w].items():
        if n in slots:
            assert torch.all(s[changed] == 0) and torch.equal(s[~changed], slots[n][~changed])
    assert torch.equal(wm.mask(layer), new)
    assert torch.equal(maskable_layers(model)[layer]._buffers[MASK_BUFFER].bool(), new)
    with pytest.raises(ValueError, match="bool tensor of shape"):
        wm.replace(layer, new[:2], opt)


def test_state_dict_round_trip_and_checks():
    _, wm = _masked_model(MODEL_SPECS["cnn"])
    again = WeightMasks.from_state_dict(wm.state_dict())
    assert again.digest() == wm.digest() and again.layers == wm.layers
    with pytest.raises(TypeError, match="bool tensor"):
        WeightMasks({"head": torch.ones(2, 2)})
    other = MODELS.build({"name": "mlp", "hidden": [3]}, input_shape=(1, 8, 8), n_classes=5)
    with pytest.raises(ValueError, match="names no Linear/Conv2d layer"):
        again.attach(other)
