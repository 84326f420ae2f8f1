"""Batch augmentation (data.augment): shapes, the ops themselves, determinism under a seed,
exact resume, and that validation and test data are never augmented."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from growray.config import ConfigError, validate_dict
from growray.data import load_dataset
from growray.train import BatchAugment, build_trainer

torch.set_num_threads(1)


def test_shapes_devices_and_dtype_are_kept():
    x = torch.randn(6, 3, 9, 8)
    out = BatchAugment(random_crop=3, flip=True, cutout=4, seed=0)(x, step=5)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert BatchAugment(seed=0)(x, 0) is x  # off: the very tensor
    with pytest.raises(ValueError, match="image batches"):
        BatchAugment(flip=True)(torch.randn(4, 10), 0)


def test_each_op_does_what_it_says():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    flips = [BatchAugment(flip=True, seed=s)(x, 0) for s in range(20)]
    for out in flips:  # every sample is itself or its mirror image
        for b in range(2):
            assert torch.equal(out[b], x[b]) or torch.equal(out[b], x[b].flip(-1))
    assert any(not torch.equal(o, x) for o in flips) and any(torch.equal(o[0], x[0]) for o in flips)
    crops = BatchAugment(random_crop=2, seed=1)(x, 3)
    for b in range(2):  # a shifted window of the zero-padded image
        padded = nn.functional.pad(x[b], (2, 2, 2, 2))
        assert any(torch.equal(crops[b], padded[:, dy : dy + 4, dx : dx + 4]) for dy in range(5) for dx in range(5))
    cut = BatchAugment(cutout=2, seed=2)(x, 0)
    for b in range(2):
        zeros = (cut[b] == 0).sum().item()
        assert 1 <= zeros <= 4 and torch.equal(cut[b][cut[b] != 0], x[b][cut[b] != 0])


def test_deterministic_under_the_seed_and_step():
    x = torch.randn(16, 3, 8, 8)
    a = BatchAugment(random_crop=2, flip=True, cutout=3, seed=7)
    assert torch.equal(a(x, 10), BatchAugment(random_crop=2, flip=True, cutout=3, seed=7)(x, 10))
    assert not torch.equal(a(x, 10), a(x, 11))
    assert not torch.equal(a(x, 10), BatchAugment(random_crop=2, flip=True, cutout=3, seed=8)(x, 10))
    assert not torch.equal(a(x, 10), a(x, 10, stream=1))
    state = torch.get_rng_state()
    a(x, 3)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched


class _Recorder(nn.Module):
    """A tiny conv net that keeps every batch it sees, with its mode."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 8 * 8, 10))
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, x.detach().clone()))
        return self.net(x)


def _exp(augment):
    return validate_dict(
        {
            "name": "aug",
            "data": {"name": "digits", "image": True, "augment": augment},
            "model": {"name": "cnn", "channels": [2]},
            "trainer": {"epochs": 2, "batch_size": 256},
            "costs": {"latency": {"enabled": False}},
        }
    )


def test_training_batches_are_augmented_and_validation_data_never():
    exp = _exp({"random_crop": 2, "flip": True, "cutout": 3})
    ds = load_dataset(exp.data, seed=0)
    trainer = build_trainer(exp, ds)
    rec = _Recorder()
    trainer.model = rec
    trainer.optimizer = torch.optim.SGD(rec.parameters(), lr=0.01)
    trainer.fit()
    x_train, x_val, x_test = trainer.data.train[0], trainer.data.val[0], trainer.data.test[0]
    train_rows = {tuple(r.flatten().tolist()) for r in x_train}
    trained = torch.cat([x for mode, x in rec.seen if mode])
    assert sum(tuple(r.flatten().tolist()) in train_rows for r in trained) < len(trained) // 2
    # every evaluation of a split sees exactly its tensor (the cost meter's probes are zeros)
    evaluated = [x for mode, x in rec.seen if not mode and bool(x.abs().sum() > 0)]
    assert len(evaluated) == 3
    assert all(torch.equal(x, x_val) or torch.equal(x, x_test) for x in evaluated)


def test_the_data_section_takes_augment_and_names_errors_at_its_path():
    exp = _exp({"cutout": 16})
    assert exp.augment.cutout == 16 and "augment" not in exp.data
    assert exp.to_dict()["data"]["augment"] == {"random_crop": 0, "flip": False, "cutout": 16}
    assert validate_dict(exp.to_dict()) == exp
    with pytest.raises(ConfigError, match=r"data\.augment\.flipp: unknown key; accepted: cutout, flip, random_crop"):
        _exp({"flipp": True})
    with pytest.raises(ConfigError, match=r"data\.augment\.random_crop"):
        _exp({"random_crop": -1})
