"""The sparse kind passes the kind conformance suite (growray.testing.kinds), with a dynamic
updater that updates during both epochs, so the exact-resume check crosses updates."""

from __future__ import annotations

import torch

from growray.testing.kinds import KindConformance

torch.set_num_threads(1)

QUICK = {"epochs": 2, "batch_size": 128, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "log_every_steps": 2}


class TestSparseKindRigL(KindConformance):
    kind_name = "sparse"
    example = {
        "name": "sparse-conformance",
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [16, 16]},
        "trainer": {**QUICK, "weight_decay": 1e-3},
        "sparse": {"sparsity": 0.8, "updater": {"name": "rigl"}, "delta_t": 3, "t_end": 1.0},
    }


class TestSparseKindStructured(KindConformance):
    kind_name = "sparse"
    example = {
        "name": "srigl-conformance",
        "data": {"name": "digits", "image": True},
        "model": {"name": "cnn", "channels": [4], "hidden": [8]},
        "trainer": {**QUICK, "optimizer": "adam", "lr": 0.01},
        "sparse": {"sparsity": 0.7, "updater": {"name": "srigl", "gamma_sal": 0.5}, "delta_t": 2, "t_end": 1.0},
    }
