"""trainer.amp and trainer.channels_last: bf16 autocast and channels-last on CPU (fp16 and CUDA
are ``gpu`` tests), for a growth model and the NAS supernets alike; the auxiliary-head loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from growray.config import validate_dict
from growray.data import load_dataset
from growray.models import MODELS
from growray.train import Precision, build_trainer, training_loss

torch.set_num_threads(1)
DIGITS = {"name": "digits", "image": True}
MODELS_AND_KINDS = {
    "growth": (
        {"name": "cnn", "channels": [4, 4]},
        {
            "growth": {
                "trigger": {"name": "schedule", "every_steps": 3, "n_units": 1},
                "initializer": {"name": "net2wider"},
                "max_width": 8,
            }
        },
    ),
    "darts": (
        {
            "name": "darts_supernet",
            "layers": 1,
            "channels": 2,
            "nodes": 1,
            "multiplier": 1,
            "ops": ["skip_connect", "sep_conv_3x3"],
        },
        {"nas": {"method": "darts", "bn_calibration_batches": 1}},
    ),
    "gdas": (
        {"name": "nb201_supernet", "channels": 2, "cells_per_stage": 1},
        {"nas": {"method": "gdas", "bn_calibration_batches": 1}},
    ),
    "enas": (
        {"name": "enas_supernet", "layers": 1, "channels": 2, "nodes": 1, "ops": ["skip_connect", "max_pool_3x3"]},
        {
            "nas": {
                "method": "enas",
                "controller": {"steps": 1, "samples_per_step": 2},
                "derive_samples": 2,
                "bn_calibration_batches": 1,
            }
        },
    ),
}


def _exp(kind: str, **trainer: object):
    model, section = MODELS_AND_KINDS[kind]
    return validate_dict(
        {
            "name": "amp",
            "data": DIGITS,
            "model": model,
            "trainer": {"epochs": 1, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, **trainer},
            "costs": {"latency": {"enabled": False}},
            **section,
        }
    )


@pytest.fixture(scope="module")
def images():
    return load_dataset(DIGITS, seed=0)


def _fit_checking_precision(trainer):
    seen: list[torch.dtype] = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    metrics = trainer.fit()
    assert conv.weight.dtype == torch.float32
    assert 0.0 <= metrics["val/acc"] <= 1.0 and torch.isfinite(torch.tensor(metrics["val/loss"]))
    return seen, conv


@pytest.mark.parametrize("kind", sorted(MODELS_AND_KINDS))
def test_bf16_autocast_trains_every_kind_on_cpu(images, kind):
    seen, _ = _fit_checking_precision(build_trainer(_exp(kind, amp="bf16"), images))
    assert torch.bfloat16 in seen, "the forward passes ran under bf16 autocast"


# DARTS' and ENAS' cells used to abort here (torch 2.14.1's channels-last strided 1x1 conv
# corrupted the heap in FactorizedReduce's backward; growray.nas.ops no longer uses it).
@pytest.mark.parametrize("kind", sorted(MODELS_AND_KINDS))
def test_channels_last_with_bf16_on_cpu(images, kind):
    seen, conv = _fit_checking_precision(build_trainer(_exp(kind, amp="bf16", channels_last=True), images))
    assert torch.bfloat16 in seen and conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_changes_the_numbers_only_slightly(images):
    full = build_trainer(_exp("darts"), images).fit()
    bf16 = build_trainer(_exp("darts", amp="bf16"), images).fit()
    assert full["val/loss"] != bf16["val/loss"]
    assert bf16["val/loss"] == pytest.approx(full["val/loss"], rel=0.1)


def test_fp16_needs_cuda():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        Precision("fp16", "cpu")


def test_auxiliary_head_adds_its_weighted_loss_in_training_only():
    genotype = {
        "normal": [["skip_connect", 0], ["sep_conv_3x3", 1]],
        "reduce": [["max_pool_3x3", 0], ["skip_connect", 1]],
    }
    net = MODELS.build(
        {"name": "cell_network", "genotype": genotype, "channels": 4, "layers": 3, "auxiliary_weight": 0.4},
        input_shape=(3, 32, 32),
        n_classes=10,
    )
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    net.train()
    logits = net(x)
    aux = net.auxiliary_output()
    assert aux is not None and aux[0].shape == (4, 10) and aux[1] == 0.4
    expected = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux[0], y)
    torch.testing.assert_close(training_loss(net, logits, y), expected)
    net.eval()
    logits = net(x)
    assert net.auxiliary_output() is None
    torch.testing.assert_close(training_loss(net, logits, y), F.cross_entropy(logits, y))


def test_linear_drop_path_ramps_with_the_epochs():
    genotype = {
        "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
        "reduce": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
    }
    net = MODELS.build(
        {
            "name": "cell_network",
            "genotype": genotype,
            "channels": 4,
            "layers": 1,
            "drop_path": 0.2,
            "drop_path_schedule": "linear",
        },
        input_shape=(3, 8, 8),
        n_classes=3,
    )
    net.set_epoch_progress(0.0)
    assert net._drop_now == 0.0
    net.set_epoch_progress(0.5)
    assert net._drop_now == pytest.approx(0.1)


@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", sorted(MODELS_AND_KINDS))
def test_cuda_amp_and_channels_last_train_a_supernet(images, amp, kind):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    trainer = build_trainer(_exp(kind, amp=amp, channels_last=True, device="cuda"), images)
    metrics = trainer.fit()
    assert trainer.device.type == "cuda" and 0.0 <= metrics["val/acc"] <= 1.0
    if amp == "fp16":
        assert trainer.precision.scaler is not None and trainer.checkpoint_data().meta["grad_scaler"]
