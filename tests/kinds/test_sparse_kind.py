"""The sparse kind through the real trainer: metrics, exact counts at every update, SET as
RigL with random regrowth bit for bit, identical masks after a checkpoint round trip, the
dense arm, and every config error with its path, value and what is accepted."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.data import load_dataset
from growray.kinds.sparse import steps_per_epoch
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)

BASE = {
    "name": "sparse-kind",
    "seed": 3,
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [24, 16]},
    "trainer": {
        "epochs": 2,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-3,
        "log_every_steps": 5,
    },
    "sparse": {"sparsity": 0.8, "updater": {"name": "rigl"}, "delta_t": 4, "t_end": 0.9},
    "costs": {"latency": {"enabled": False}},
}


def _exp(**sparse):
    raw = copy.deepcopy(BASE)
    raw["sparse"] = {**raw["sparse"], **sparse}
    return validate_dict(raw)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset({"name": "digits"}, seed=3)


def _fit(exp, dataset, **kwargs):
    rec = MemoryRecorder()
    trainer = build_trainer(exp, dataset, recorder=rec, device="cpu", **kwargs)
    final = trainer.fit()
    return trainer, rec, final


@pytest.fixture(scope="module")
def fitted(dataset):
    """One fit per updater setting, shared by the tests that only read them."""
    cache = {}

    def get(name, **updater):
        key = (name, tuple(sorted(updater.items())))
        if key not in cache:
            cache[key] = _fit(_exp(updater={"name": name, **updater}), dataset)
        return cache[key]

    return get


def _hook(trainer):
    (hook,) = [h for h in trainer.hooks if h.name == "sparse"]
    return hook


def test_rigl_trial_logs_every_sparse_metric_and_exact_counts(fitted):
    trainer, rec, final = fitted("rigl")
    hook = _hook(trainer)
    updates = [e for e in hook.history if e["kind"] == "update"]
    assert [e["step"] for e in updates] == [t for t in range(1, trainer.step + 1) if hook.schedule.is_update(t)]
    assert len(updates) == final["sparse/updates"] >= 5
    for e in updates:
        for layer, c in e["layers"].items():
            k = int(c["active_before"] * e["drop_fraction"])
            assert c["dropped"] == c["grown"] == k, f"step {e['step']} {layer}"
            assert c["active"] == c["active_before"], "every layer keeps its count"
            assert c["removed"] == c["added"] <= k
    assert final["sparse/sparsity"] == pytest.approx(0.8, abs=2e-3)
    for key in ("sparse/mask_churn", "sparse/loss_before_update", "sparse/loss_after_update", "sparse/drop_fraction"):
        assert [s for s, _ in rec.metrics[key]] == [e["step"] for e in updates]
    for layer in hook.masks.layers:
        assert f"sparse/sparsity/{layer}" in final and f"sparse/mask_churn/{layer}" in rec.metrics
    assert final["cost/params"] < final["cost/params_dense"]
    assert final["cost/params_dense"] - final["cost/params"] == sum(
        hook.masks.numel(k) - hook.masks.n_active(k) for k in hook.masks
    )
    assert final["cost/flops"] < 0.3 * final["cost/flops_dense"]
    assert {"sparse_history.json", "plots/sparse_masks.png"} <= set(rec.artifacts)
    assert rec.artifacts["sparse_history.json"][-1]["digest"] == hook.masks.digest()
    # the masked weights really are zero in the trained model
    for layer in hook.masks:
        assert torch.all(hook.masks.weight(layer)[~hook.masks.mask(layer)] == 0)


def test_random_regrowth_reproduces_set_bit_for_bit(fitted):
    rigl_random, _, f1 = fitted("rigl", regrow="random")
    set_, _, f2 = fitted("set")
    rigl, _, _ = fitted("rigl")
    digests = [[e["digest"] for e in _hook(t).history] for t in (rigl_random, set_, rigl)]
    assert digests[0] == digests[1], "the same masks after every update"
    assert digests[0] != digests[2], "gradient regrowth chooses other connections"
    for a, b in zip(rigl_random.model.state_dict().values(), set_.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert f1["cost/train_flops"] == f2["cost/train_flops"]


def test_static_never_updates_and_rigl_pays_for_its_dense_gradient(fitted):
    static, rec, final = fitted("static")
    hook = _hook(static)
    assert [e["kind"] for e in hook.history] == ["init"] and final["sparse/updates"] == 0
    assert "sparse/mask_churn" not in rec.metrics
    _, _, f_set = fitted("set")
    rigl, _, f_rigl = fitted("rigl")
    assert f_set["cost/train_flops"] == final["cost/train_flops"], "same counts, same effective compute"
    n_train, per_epoch = len(rigl.data.train[0]), steps_per_epoch(len(rigl.data.train[0]), 64)
    batch = {s: (n_train - 64 * (per_epoch - 1) if s % per_epoch == 0 else 64) for s in range(1, rigl.step + 1)}
    updates = [e["step"] for e in _hook(rigl).history if e["kind"] == "update"]
    extra = f_rigl["cost/train_flops"] - f_set["cost/train_flops"]
    # each update adds (1 - density) x forward FLOPs x its batch for the dense weight gradient; for
    # an MLP that is the dense minus the effective forward FLOPs
    dense_fwd, fwd = f_rigl["cost/flops_dense"], f_rigl["cost/flops"]
    assert extra == sum(batch[s] for s in updates) * (dense_fwd - fwd) > 0


def test_restored_trainer_continues_with_identical_masks(dataset, tmp_path):
    exp = _exp(updater={"name": "srigl"}, delta_t=3)
    straight, _, final = _fit(exp, dataset)
    kept = tmp_path / "ckpt"

    def report(metrics, ckpt):
        if ckpt is not None and metrics["epoch"] == 1:
            shutil.copytree(ckpt, kept)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_trainer(exp, dataset, report=report, device="cpu").fit()
    resumed = build_trainer(exp, dataset, checkpoint_dir=str(kept), device="cpu")
    hook = _hook(resumed)
    assert hook.masks is not None, "the masks come back from the checkpoint"
    first_epoch = [e for e in _hook(straight).history if e["step"] <= resumed.step]
    assert hook.masks.digest() == first_epoch[-1]["digest"]
    again = resumed.fit()
    assert [e["digest"] for e in hook.history] == [e["digest"] for e in _hook(straight).history]
    assert again["val/acc"] == final["val/acc"] and again["cost/train_flops"] == final["cost/train_flops"]


def test_dense_arm_has_no_mask(dataset):
    trainer, _, final = _fit(_exp(dense=True), dataset)
    assert _hook(trainer).masks is None
    assert final["sparse/sparsity"] == 0.0 and final["cost/params"] == final["cost/params_dense"]
    assert final["cost/flops"] == final["cost/flops_dense"]


def test_delta_t_beyond_t_end_is_refused_before_training(dataset):
    with pytest.raises(ValueError, match=r"sparse.delta_t=500 leaves no mask update before T_end"):
        _fit(_exp(delta_t=500), dataset)


def _issues(**changes):
    raw = copy.deepcopy(BASE)
    for path, value in changes.items():
        section, _, key = path.partition(".")
        if key:
            raw[section] = {**raw.get(section, {}), key: value}
        else:
            raw[section] = value
    with pytest.raises(ConfigError) as info:
        validate_dict(raw)
    return {i.path: str(i) for i in info.value.issues}


@pytest.mark.parametrize(
    "changes, path, words",
    [
        ({"sparse.sparsity": 1.0}, "sparse.sparsity", ["less than 1", "1.0"]),
        ({"sparse.sparsity": 0}, "sparse.sparsity", ["greater than 0", "0"]),
        ({"sparse.delta_t": 0}, "sparse.delta_t", ["greater than or equal to 1", "0"]),
        ({"sparse.t_end": 1.5}, "sparse.t_end", ["less than or equal to 1", "1.5"]),
        ({"sparse.updater": {"name": "rigel"}}, "sparse.updater.name", ["rigel", "rigl"]),
        ({"sparse.updater": {"name": "rigl", "regrow": "grad"}}, "sparse.updater.regrow", ["gradient", "random"]),
        ({"sparse.distribution": {"name": "erdos"}}, "sparse.distribution.name", ["erdos", "erk", "uniform"]),
        (
            {"growth": {"trigger": {"name": "schedule"}}},
            "growth",
            ["does not combine with growth", "remove growth or sparse"],
        ),
        (
            {"plasticity": {"cycles": 2}},
            "plasticity",
            ["does not combine with plasticity", "remove plasticity or sparse"],
        ),
    ],
)
def test_config_errors_name_path_value_and_accepted(changes, path, words):
    issues = _issues(**changes)
    assert path in issues, f"expected an issue at {path}; got {issues}"
    for w in words:
        assert w in issues[path], f"{w!r} not in {issues[path]!r}"


def test_nas_combination_is_refused():
    raw = copy.deepcopy(BASE)
    raw["model"] = {"name": "darts_supernet", "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1}
    raw["data"] = {"name": "digits", "image": True}
    raw["nas"] = {"method": "darts"}
    with pytest.raises(ConfigError) as info:
        validate_dict(raw)
    assert any(i.path == "nas" and "does not combine with nas" in str(i) for i in info.value.issues)


def test_a_model_with_every_layer_kept_dense_is_refused():
    raw = copy.deepcopy(BASE)
    raw["model"] = {"name": "mlp", "hidden": []}
    raw["sparse"] = {**raw["sparse"], "dense_first": True, "dense_last": True}
    with pytest.raises(ConfigError) as info:
        validate_dict(raw)
    assert any(i.path == "sparse.dense_last" and "no sparse Linear/Conv2d layer" in str(i) for i in info.value.issues)
