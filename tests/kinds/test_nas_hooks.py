"""DARTS and ENAS trials through the one trainer: the gap metrics, artifacts, early stop,
exact resume of the architecture state, and the config layer around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.data import load_dataset
from growray.kinds.nas import retrain_experiment, retrain_genotype, split_for_nas
from growray.tracking import MemoryRecorder
from growray.train import Trainer, build_trainer
from growray.train.trainer import weight_parameters

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
OPS = ["skip_connect", "sep_conv_3x3", "max_pool_3x3"]


def _exp(method: str, **nas):
    model = {"name": f"{method}_supernet", "layers": 1, "channels": 2, "nodes": 1, "ops": OPS}
    if method == "darts":
        model["multiplier"] = 1
    return validate_dict(
        {
            "name": "nas",
            "seed": 2,
            "data": {"name": "digits", "image": True},
            "model": model,
            "trainer": {"epochs": 2, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, "eval_batch_size": 2048},
            "nas": {
                "method": method,
                "controller": {"steps": 2, "samples_per_step": 3},
                "derive_samples": 4,
                "bn_calibration_batches": 1,
                **nas,
            },
            "costs": {"latency": {"enabled": False}},
        }
    )


@pytest.fixture(scope="module")
def images():
    return load_dataset({"name": "digits", "image": True}, seed=0)


def _series(rec: MemoryRecorder, key: str) -> list[float]:
    return [v for _, v in rec.metrics.get(key, [])]


@pytest.mark.parametrize("method", ["darts", "enas"])
def test_supernet_trial_logs_the_gap_every_epoch_and_the_genotype(images, method):
    rec = MemoryRecorder()
    trainer = build_trainer(_exp(method, order=2), images, recorder=rec)
    trainer.fit()
    relaxed, discrete, gap = (_series(rec, f"nas/{k}") for k in ("relaxed_val_acc", "discrete_val_acc", "gap"))
    assert len(relaxed) == len(discrete) == len(gap) == 2
    assert gap == pytest.approx([r - d for r, d in zip(relaxed, discrete)])
    assert all(0 <= v <= 1 for v in relaxed + discrete)
    assert len(_series(rec, "nas/skip_fraction")) == 2
    genotype = rec.artifacts["genotype.json"]
    assert {"normal", "reduce", "normal_concat", "reduce_concat"} <= set(genotype)
    assert "plots/genotype.png" in rec.artifacts
    if method == "darts":
        assert len(_series(rec, "nas/alpha_entropy")) == 2
        assert {"plots/alpha_heatmap.png", "plots/alpha_history.png", "alphas.json"} <= set(rec.artifacts)
        # the genotype logged is the discretization of the final alphas
        assert genotype == trainer.model.genotype().to_dict()
    else:
        assert _series(rec, "nas/controller_reward")


def test_darts_alphas_move_only_through_the_architect(images):
    exp = _exp("darts")
    trainer = build_trainer(exp, images)
    arch = trainer.model.arch_parameters()
    optimized = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert not any(id(a) in optimized for a in arch)
    assert len(weight_parameters(trainer.model)) == len(optimized)
    before = [a.detach().clone() for a in arch]
    trainer.fit()
    assert any(not torch.equal(b, a) for b, a in zip(before, arch)), "the architect must update alpha"


def test_darts_uses_disjoint_halves_for_weights_and_architecture(images):
    exp = _exp("darts")
    splits = images.to_tensors("cpu")
    weights, arch = split_for_nas(exp, exp.kinds["nas"], splits)
    n = len(splits.train[0])
    assert len(weights.train[0]) + len(arch[0]) == n and abs(len(arch[0]) - n // 2) <= 1
    rows = {tuple(r.flatten().tolist()) for r in weights.train[0]}
    assert not any(tuple(r.flatten().tolist()) in rows for r in arch[0][:50])


def test_darts_plus_early_stop_records_the_reason(images):
    model = {
        "name": "darts_supernet",
        "layers": 1,
        "channels": 2,
        "nodes": 1,
        "multiplier": 1,
        "ops": ["none", "skip_connect"],
    }
    exp = validate_dict({**_exp("darts").to_dict(), "model": model, "nas": {"method": "darts", "early_stop_skips": 1}})
    rec = MemoryRecorder()
    trainer = build_trainer(exp, images, recorder=rec)
    trainer.fit()
    assert trainer.epoch == 1 < exp.trainer.epochs
    assert "DARTS+" in rec.tags["growray.stop_reason"]
    assert _series(rec, "nas/early_stopped") == [1.0]
    assert "test/acc" in rec.metrics, "a stopped search still finishes with its final evaluation"


@pytest.mark.parametrize("method", ["darts", "enas"])
def test_resume_from_checkpoint_continues_the_search_exactly(images, tmp_path, method):
    exp = _exp(method, order=1)
    straight = build_trainer(exp, images)
    straight.fit()

    first = build_trainer(exp.with_overrides({"trainer.epochs": 1}), images)
    first.fit()
    first.save(str(tmp_path))
    resumed = build_trainer(exp, images, checkpoint_dir=str(tmp_path))
    assert resumed.epoch == 1
    resumed.fit()
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert straight.hooks[0].genotype == resumed.hooks[0].genotype


def test_retrain_builds_the_evaluation_network_from_the_genotype(images):
    exp = _exp("darts", retrain={"epochs": 1, "channels": 3, "layers": 2, "drop_path": 0.1, "batch_size": 32})
    genotype = {
        "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],
        "normal_concat": [2],
        "reduce": [["max_pool_3x3", 0], ["sep_conv_3x3", 1]],
        "reduce_concat": [2],
    }
    rexp = retrain_experiment(exp, exp.kinds["nas"], genotype)
    assert "nas" not in rexp.kinds and rexp.model["name"] == "cell_network"
    assert (rexp.model["channels"], rexp.model["layers"], rexp.trainer.epochs) == (3, 2, 1)
    rec = MemoryRecorder()
    metrics = retrain_genotype(exp, exp.kinds["nas"], genotype, images, recorder=rec)
    # it learned: 10 classes, chance 0.1; measured 0.59-0.74 over seeds 0-2 (0.08-0.12 with batch 256)
    assert metrics["nas/retrain_val_acc"] > 0.3
    assert rec.artifacts["genotype.json"] == genotype


def test_model_space_file_fills_the_model_section():
    exp = validate_dict(
        {
            "name": "x",
            "data": {"name": "digits", "image": True},
            "model": {"space": "darts_cnn", "layers": 2, "nodes": 2, "multiplier": 2},
            "nas": {"method": "darts"},
            "trainer": {"epochs": 2},
        },
        base_dir=ROOT / "experiments",
    )
    assert exp.model["name"] == "darts_supernet" and exp.model["layers"] == 2
    assert exp.model["ops"][0] == "none" and len(exp.model["ops"]) == 8


def test_nas_config_errors_name_the_path_and_the_fix():
    with pytest.raises(ConfigError) as info:
        validate_dict(
            {
                "name": "x",
                "data": {"name": "digits"},
                "model": {"name": "mlp"},
                "nas": {"method": "enas", "order": 3},
                "search": {
                    "sampler": {"name": "grid"},
                    "space": {"trainer.lr": {"type": "float", "low": 0.1, "high": 0.2}},
                },
            }
        )
    text = str(info.value)
    assert "nas.order" in text
    with pytest.raises(ConfigError) as info:
        validate_dict(
            {
                "name": "x",
                "data": {"name": "digits"},
                "model": {"name": "mlp"},
                "nas": {"method": "enas"},
                "search": {
                    "sampler": {"name": "grid"},
                    "space": {"trainer.lr": {"type": "float", "low": 0.1, "high": 0.2}},
                },
            }
        )
    text = str(info.value)
    assert "model.name" in text and "enas_supernet" in text
    assert "search.space.trainer.lr" in text and "step" in text
    with pytest.raises(ConfigError, match=r"data\.image: true"):
        validate_dict(
            {"name": "x", "data": {"name": "digits"}, "model": {"name": "darts_supernet"}, "nas": {"method": "darts"}}
        )


def test_list_valued_choices_reach_the_trial_as_lists():
    from growray.search.space import SpaceFunction

    exp = validate_dict(
        {
            "name": "x",
            "data": {"name": "digits", "image": True},
            "model": {"name": "darts_supernet", "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1},
            "nas": {"method": "darts"},
            "trainer": {"epochs": 2},
            "search": {"space": {"model.ops": {"type": "categorical", "choices": [OPS, ["none", "skip_connect"]]}}},
        }
    )
    import optuna

    study = optuna.create_study()
    trial = study.ask()
    SpaceFunction.from_experiment(exp)(trial)
    label = trial.params["model.ops"]
    assert isinstance(label, str) and json.loads(label) in (OPS, ["none", "skip_connect"])
    assert exp.with_overrides({"model.ops": label}).model["ops"] == json.loads(label)


def test_grid_sampler_rejects_too_many_samples_and_enumerates_every_point():
    with pytest.raises(ConfigError, match="the grid has 4 points"):
        validate_dict(
            {
                "name": "x",
                "data": {"name": "digits"},
                "model": {"name": "mlp"},
                "search": {
                    "sampler": {"name": "grid"},
                    "num_samples": 5,
                    "space": {"seed": {"type": "categorical", "choices": [0, 1, 2, 3]}},
                },
            }
        )
    import optuna

    from growray.search.samplers import build_sampler

    study = optuna.create_study(sampler=build_sampler({"name": "grid"}, 0))
    seen = []
    for _ in range(4):
        t = study.ask()
        seen.append(t.suggest_categorical("seed", [0, 1, 2, 3]))
        study.tell(t, 0.0)  # the last tell exhausts the grid: must not raise outside optimize()
    assert sorted(seen) == [0, 1, 2, 3]
    assert study.sampler.exhausted


def test_trainer_from_checkpoint_rebuilds_a_supernet(images, tmp_path):
    exp = _exp("darts")
    trainer = build_trainer(exp, images)
    trainer.save(str(tmp_path))
    splits = images.to_tensors("cpu")
    rebuilt = Trainer.from_checkpoint(str(tmp_path), splits, exp.trainer)
    assert type(rebuilt.model).__name__ == "DartsSupernet"
