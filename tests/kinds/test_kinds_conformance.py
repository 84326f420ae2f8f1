"""Every built-in experiment kind passes the kind conformance suite (growray.testing.kinds)."""

from __future__ import annotations

import torch

from growray.testing.kinds import KindConformance

torch.set_num_threads(1)

DIGITS = {"name": "digits"}
QUICK = {"epochs": 2, "batch_size": 128, "lr": 0.01, "log_every_steps": 2}


class TestGrowthKind(KindConformance):
    kind_name = "growth"
    example = {
        "name": "growth-conformance",
        "data": DIGITS,
        "model": {"name": "mlp", "hidden": [4, 4]},
        "trainer": QUICK,
        "growth": {
            "trigger": {"name": "schedule", "every_steps": 3, "n_units": 2},
            "initializer": {"name": "net2wider", "noise": 0.1},
            "max_width": 12,
            "diagnostics": {"every_steps": 2},
        },
    }


class TestNasKindDarts(KindConformance):
    kind_name = "nas"
    example = {
        "name": "darts-conformance",
        "data": {"name": "digits", "image": True},
        "model": {
            "name": "darts_supernet",
            "layers": 1,
            "channels": 2,
            "nodes": 1,
            "multiplier": 1,
            "ops": ["skip_connect", "sep_conv_3x3", "max_pool_3x3"],
        },
        "trainer": {**QUICK, "batch_size": 256, "optimizer": "sgd", "lr": 0.05},
        "nas": {"method": "darts", "bn_calibration_batches": 1},
    }


class TestNasKindGdas(KindConformance):
    kind_name = "nas"
    example = {
        **TestNasKindDarts.example,
        "name": "gdas-conformance",
        "nas": {"method": "gdas", "bn_calibration_batches": 1, "gdas": {"tau_max": 5.0, "tau_min": 0.5}},
    }


class TestNasKindPcDarts(KindConformance):
    kind_name = "nas"
    example = {
        **TestNasKindDarts.example,
        "name": "pcdarts-conformance",
        "model": {**TestNasKindDarts.example["model"], "partial_channels": 2, "edge_normalization": True},
        "nas": {"method": "pcdarts", "bn_calibration_batches": 1},
    }


class TestNasKindNb201Gdas(KindConformance):
    kind_name = "nas"
    example = {
        **TestNasKindDarts.example,
        "name": "nb201-gdas-conformance",
        "model": {"name": "nb201_supernet", "channels": 2, "cells_per_stage": 1},
        "nas": {"method": "gdas", "bn_calibration_batches": 1},
    }


class TestNasKindEnas(KindConformance):
    kind_name = "nas"
    example = {
        "name": "enas-conformance",
        "data": {"name": "digits", "image": True},
        "model": {
            "name": "enas_supernet",
            "layers": 1,
            "channels": 2,
            "nodes": 1,
            "ops": ["skip_connect", "max_pool_3x3"],
        },
        "trainer": {**QUICK, "batch_size": 256, "optimizer": "sgd", "lr": 0.05},
        "nas": {
            "method": "enas",
            "controller": {"steps": 2, "samples_per_step": 2},
            "derive_samples": 3,
            "bn_calibration_batches": 1,
        },
    }


class TestPlasticityKind(KindConformance):
    kind_name = "plasticity"
    example = {
        "name": "plasticity-conformance",
        "data": DIGITS,
        "model": {"name": "mlp", "hidden": [16, 16]},
        "trainer": {**QUICK, "optimizer": "sgd", "lr": 0.1},
        "plasticity": {"arm": "grow", "cycles": 2, "compactness": 0.5, "initial_fraction": 0.25, "wt_epochs": 1},
    }
