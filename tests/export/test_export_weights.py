"""network.json (spec + weights as JSON, no pickle), rebuilding from it, folding masks, and
finding a run's newest Ray checkpoint: what an export starts from."""

from __future__ import annotations

import base64
import json

import pytest
import torch

from growray.config import TrainerConfig
from growray.data import load_dataset
from growray.export import (
    NETWORK_ARTIFACT,
    ExportError,
    NetworkWeights,
    decode_network,
    encode_network,
    final_network,
    find_checkpoint,
    rebuild,
)
from growray.kinds.plasticity import PlasticityConfig, PlasticityHook
from growray.models import ArchSpec, GrowableMLP, build_model
from growray.tracking import MemoryRecorder
from growray.train import CheckpointData, Trainer, save_checkpoint

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def splits():
    return load_dataset({"name": "digits"}, seed=0).to_tensors("cpu")


def _mlp(hidden=(5, 3), batch_norm=True):
    torch.manual_seed(0)
    return GrowableMLP((64,), 10, hidden=list(hidden), batch_norm=batch_norm)


def test_a_state_dict_survives_the_json_document_bit_for_bit():
    state = {
        "w": torch.randn(3, 4),
        "d": torch.randn(2, dtype=torch.float64),
        "h": torch.randn(5).to(torch.bfloat16),
        "n": torch.tensor(7),  # BatchNorm's num_batches_tracked: a 0-d int64
        "b": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3),
    }
    spec = ArchSpec("mlp", {"hidden": [4]})
    doc = json.loads(json.dumps(encode_network(spec, state, {"hidden.0": torch.tensor([1.0, 0.0])})))
    back = decode_network(doc, "test")
    assert back.spec == spec
    assert set(back.state) == set(state)
    for k, v in state.items():
        assert back.state[k].dtype == v.dtype and back.state[k].shape == v.shape, k
        assert torch.equal(back.state[k], v), k
    assert torch.equal(back.masks["hidden.0"], torch.tensor([1.0, 0.0]))


def _valid_doc():
    return json.loads(json.dumps(encode_network(ArchSpec("mlp", {}), {"w": torch.ones(2, 2)})))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="pickle"), "not a growray network document"),
        (lambda d: d.update(extra=1), "unknown keys ['extra']"),
        (lambda d: d.update(architecture={"hidden": [3]}), "'architecture' is not an ArchSpec"),
        (lambda d: d["tensors"]["w"].update(dtype="object"), "dtype must be one of"),
        (lambda d: d["tensors"]["w"].update(shape=[2, -2]), "shape must be a list of ints >= 0"),
        (lambda d: d["tensors"]["w"].update(shape=[3, 2]), "16 bytes of data for a float32 tensor of shape [3, 2]"),
        (lambda d: d["tensors"]["w"].update(data="@@not base64@@"), "not valid base64"),
        (lambda d: d["tensors"].update(w=[1, 2]), "tensor 'w' must be an object"),
        (lambda d: d.update(masks=[1]), "'masks' must be an object of tensors"),
    ],
)
def test_a_damaged_document_is_refused_naming_the_field(edit, message):
    doc = _valid_doc()
    edit(doc)
    with pytest.raises(ExportError, match="run x") as info:
        decode_network(doc, "run x")
    assert message in str(info.value)


def test_the_network_rebuilds_from_spec_and_weights_alone():
    model = _mlp().eval()
    with torch.no_grad():
        model.hidden[0].norm.running_mean.uniform_(-1, 1)  # buffers travel too
    weights = decode_network(json.loads(json.dumps(final_network(model.spec(), model, []))), "run")
    rebuilt = rebuild(weights, "run")
    x = torch.randn(9, 64)
    assert not rebuilt.training
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=1e-6)


def test_weights_that_do_not_fit_the_spec_are_refused():
    model = _mlp()
    state = dict(model.state_dict())
    state["head.weight"] = torch.zeros(10, 4)
    with pytest.raises(ExportError, match=r"run r: the weights do not fit the architecture 'mlp'.*head\.weight"):
        rebuild(NetworkWeights(model.spec(), state), "run r")


def test_an_unknown_model_name_says_a_plugin_may_be_missing():
    with pytest.raises(ExportError, match=r"model 'no_such_net'.*plug-in's model needs its package"):
        rebuild(NetworkWeights(ArchSpec("no_such_net", {}), {}), "run r")


def test_a_supernet_is_not_logged_and_not_rebuilt_it_points_at_the_retrain_run():
    supernet = build_model(
        ArchSpec(
            "darts_supernet",
            {"input_shape": [1, 8, 8], "n_classes": 10, "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1},
        )
    )
    assert final_network(supernet.spec(), supernet, []) is None
    with pytest.raises(ExportError, match=r"not deployable as such.*growray\.retrain_run_id.*growray retrain"):
        rebuild(NetworkWeights(supernet.spec(), supernet.state_dict()), "run s")


def test_a_grow_arm_masked_mlp_exports_what_it_computed_under_its_masks(splits):
    torch.manual_seed(0)
    model = GrowableMLP(splits.input_shape, splits.n_classes, hidden=[16, 12])
    hook = PlasticityHook(
        PlasticityConfig(arm="grow", cycles=2, compactness=0.5, winning_ticket=False),
        (splits.val[0][:64], splits.val[1][:64]),
    )
    rec = MemoryRecorder()
    trainer = Trainer(model, splits, TrainerConfig(epochs=2, batch_size=64, lr=0.05), hooks=[hook], recorder=rec)
    trainer.fit()
    dormant = hook.masks.inactive("hidden.0")
    assert len(dormant) > 0
    # dormant units keep non-zero weights: without their masks the network computes something else
    assert torch.count_nonzero(model.hidden[0].linear.weight[dormant]) > 0
    x = splits.test[0][:128]
    with torch.no_grad():
        masked = model.eval()(x)
        hook.masks.detach()
        dense = model(x)
    weights = decode_network(json.loads(json.dumps(rec.artifacts[NETWORK_ARTIFACT])), "run")
    assert set(weights.masks) == {"hidden.0", "hidden.1"}
    with torch.no_grad():
        exported = rebuild(weights, "run")(x)
    torch.testing.assert_close(exported, masked, rtol=0, atol=1e-5)
    assert (exported - dense).abs().max() > 1e-3


def test_a_weight_mask_named_by_its_layer_multiplies_that_weight():
    model = _mlp(batch_norm=False)
    mask = torch.ones_like(model.head.weight)
    mask[:, 0] = 0
    weights = NetworkWeights(model.spec(), model.state_dict(), {"head": mask})
    rebuilt = rebuild(weights, "run")
    assert torch.count_nonzero(rebuilt.head.weight[:, 0]) == 0
    torch.testing.assert_close(rebuilt.head.weight[:, 1:], model.head.weight[:, 1:])
    with pytest.raises(ExportError, match="mask 'nowhere' of shape"):
        rebuild(NetworkWeights(model.spec(), model.state_dict(), {"nowhere": mask}), "run")


def _save(folder, model, run_id, epoch):
    save_checkpoint(
        folder,
        CheckpointData(
            spec=model.spec(),
            model_state=model.state_dict(),
            optimizer_state={},
            rng_state=torch.get_rng_state(),
            data_rng_state=torch.Generator().get_state(),
            meta={"step": 10 * epoch, "epoch": epoch, "mlflow_run_id": run_id},
        ),
    )


def test_the_newest_checkpoint_of_the_run_is_found_and_others_ignored(tmp_path):
    model = _mlp()
    _save(tmp_path / "trial_a" / "checkpoint_000000", model, "run-a", 1)
    _save(tmp_path / "trial_a" / "checkpoint_000002", model, "run-a", 3)
    _save(tmp_path / "trial_a" / "checkpoint_000001", model, "run-a", 2)
    _save(tmp_path / "trial_b" / "checkpoint_000009", model, "run-b", 9)
    broken = tmp_path / "trial_c" / "checkpoint_000005"
    _save(broken, model, "run-a", 5)
    (broken / "meta.json").write_text("{not json")
    assert find_checkpoint(tmp_path, "run-a") == tmp_path / "trial_a" / "checkpoint_000002"
    assert find_checkpoint(tmp_path, "run-b") == tmp_path / "trial_b" / "checkpoint_000009"
    assert find_checkpoint(tmp_path, "run-z") is None
    assert find_checkpoint(tmp_path / "missing", "run-a") is None


def test_base64_is_what_the_document_holds_not_a_pickle():
    doc = encode_network(ArchSpec("mlp", {}), {"w": torch.tensor([1.0, 2.0])})
    raw = base64.b64decode(doc["tensors"]["w"]["data"])
    assert raw == torch.tensor([1.0, 2.0]).numpy().astype("<f4").tobytes()


def test_dynamic_sparse_training_exports_with_its_zeros_and_no_change_to_export():
    from growray.config import validate_dict
    from growray.train import build_trainer

    exp = validate_dict(
        {
            "name": "dst",
            "data": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [24, 12]},
            "trainer": {"epochs": 1, "batch_size": 64, "optimizer": "sgd", "lr": 0.05},
            "sparse": {"dense": False, "sparsity": 0.8, "updater": {"name": "rigl"}, "delta_t": 5},
            "costs": {"latency": {"enabled": False}},
        }
    )
    rec = MemoryRecorder()
    trainer = build_trainer(exp, load_dataset(exp.data, seed=0), recorder=rec)
    trainer.fit()
    weights = decode_network(json.loads(json.dumps(rec.artifacts[NETWORK_ARTIFACT])), "run")
    assert "hidden.0.linear" in weights.masks  # the sparse hook's weight masks, by layer
    rebuilt = rebuild(weights, "run")
    x = torch.randn(16, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), trainer.model.eval()(x), rtol=0, atol=1e-6)
    zeros = (rebuilt.hidden[0].linear.weight == 0).float().mean().item()
    assert zeros > 0.5


@pytest.mark.parametrize(
    "spec",
    [
        ArchSpec(
            "nb201_network",
            {
                "input_shape": [1, 8, 8],
                "n_classes": 10,
                "channels": 4,
                "cells_per_stage": 1,
                "genotype": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
            },
        ),
        ArchSpec(
            "cell_network",  # a PC-DARTS retrain network: partial channels
            {
                "input_shape": [1, 8, 8],
                "n_classes": 10,
                "channels": 4,
                "layers": 2,
                "partial_channels": 2,
                "genotype": {
                    "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],
                    "normal_concat": [2],
                    "reduce": [["max_pool_3x3", 0], ["sep_conv_3x3", 1]],
                    "reduce_concat": [2],
                },
            },
        ),
    ],
    ids=["nb201_network", "pcdarts_cell_network"],
)
def test_networks_of_newer_nas_methods_rebuild_from_their_document(spec):
    torch.manual_seed(0)
    model = build_model(spec).eval()
    weights = decode_network(json.loads(json.dumps(final_network(model.spec(), model, []))), "run")
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(rebuild(weights, "run")(x), model(x), rtol=0, atol=1e-6)
