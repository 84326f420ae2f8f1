"""A grown CNN with BatchNorm and a retrained DARTS cell network, each trained by the one
trainer, exported to pt, ONNX and TorchScript from the network.json it logged, and each
written file read back independently and compared with the trained PyTorch network. (The
grown MLP is the best trial of the real sweep in tests/tracking/test_models_sweep.py,
exported to every format there.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_experiment

from growray.config import validate_dict
from growray.data import load_dataset
from growray.export import FORMATS, NETWORK_ARTIFACT, TOLERANCE, decode_network, export_weights, load_pt
from growray.kinds.nas import retrain_genotype
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

# slow: an ONNX export (torch.export + translation) of these costs 3-6 s of CPU each; the grown
# MLP (the sweep's best trial in tests/tracking/test_models_sweep.py) covers every format by default
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),
]
torch.set_num_threads(1)
ort = pytest.importorskip("onnxruntime", reason="the export extra (pip install 'growray[export]')")

GENOTYPE = {
    "normal": [["sep_conv_3x3", 0], ["skip_connect", 1]],
    "normal_concat": [2],
    "reduce": [["max_pool_3x3", 0], ["sep_conv_3x3", 1]],
    "reduce_concat": [2],
}


def _grown(tmp_path, **sections):
    exp = tiny_experiment(tmp_path, trainer={"epochs": 1}, costs={"latency": {"enabled": False}}, **sections)
    dataset = load_dataset(exp.data, seed=exp.seed)
    rec = MemoryRecorder()
    trainer = build_trainer(exp, dataset, recorder=rec)
    before = dict(trainer.widths())
    trainer.fit()
    assert all(trainer.widths()[s] > w for s, w in before.items()), (before, trainer.widths())  # it grew
    return exp, dataset, trainer.model, rec


def _retrained(tmp_path):
    exp = validate_dict(
        {
            "name": "nas",
            "seed": 2,
            "output_dir": str(tmp_path / "runs"),
            "data": {"name": "digits", "image": True},
            "model": {"name": "darts_supernet", "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1},
            "trainer": {"epochs": 1, "batch_size": 256, "optimizer": "sgd", "lr": 0.05},
            "nas": {"method": "darts", "retrain": {"epochs": 1, "channels": 2, "layers": 3, "drop_path": 0.1}},
            "costs": {"latency": {"enabled": False}},
        }
    )
    dataset = load_dataset(exp.data, seed=exp.seed)
    rec = MemoryRecorder()
    retrain_genotype(exp, exp.kinds["nas"], GENOTYPE, dataset, recorder=rec)  # 3 cells: normal, reduce, reduce
    return exp, dataset, None, rec


CASES = {
    "grown_cnn_bn": lambda tmp: _grown(
        tmp, data={"image": True}, model={"name": "cnn", "channels": [3, 4], "hidden": [5], "batch_norm": True}
    ),
    "retrained_darts_cell_network": _retrained,
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_format_computes_what_the_trained_network_computes(tmp_path, case):
    exp, dataset, trained, rec = CASES[case](tmp_path)
    weights = decode_network(json.loads(json.dumps(rec.artifacts[NETWORK_ARTIFACT])), case)
    expected_kind = "cell_network" if trained is None else exp.model["name"]
    assert weights.spec.kind == expected_kind
    if expected_kind == "cnn":
        assert any(k.endswith("norm.running_var") for k in weights.state)  # BatchNorm statistics travel
    out = tmp_path / "export"
    report = export_weights(
        weights, case, out, FORMATS, data=exp.data, seed=exp.seed, source={}, tolerance=TOLERANCE, n_samples=64
    )
    assert [c.format for c in report.checks] == list(FORMATS)
    for c in report.checks:
        assert c.max_abs_error <= TOLERANCE and c.argmax_agreement == 1.0, c
        assert c.max_scaled_error <= c.max_abs_error  # divided by max(1, |logit|)
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["n_classes"] == 10
    assert manifest["input"]["shape"] == ["batch", *dataset.input_shape]
    assert manifest["formats"]["onnx"]["max_abs_error"] == report.checks[1].max_abs_error

    # independently of the export's own check: 7 other test samples, each file read back here
    x = dataset.x_test[100:107]
    reference = _reference(trained, weights, x)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "input" and not isinstance(inp.shape[0], int)  # the batch is dynamic
    assert inp.shape[1:] == list(dataset.input_shape)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], reference, rtol=0, atol=TOLERANCE)
    scripted = torch.jit.load(str(out / "model.torchscript"))
    with torch.no_grad():
        np.testing.assert_allclose(scripted(torch.from_numpy(x)).numpy(), reference, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(load_pt(out)(torch.from_numpy(x)).numpy(), reference, rtol=0, atol=TOLERANCE)
    state = torch.load(out / "model.pt", weights_only=True)
    assert set(state) == set(weights.state)


def _reference(trained, weights, x):
    """The trained network's logits; a retrain run's network is only in its network.json."""
    if trained is None:
        from growray.models import build_model

        trained = build_model(weights.spec)
        trained.load_state_dict(weights.state)
    with torch.no_grad():
        return trained.eval()(torch.from_numpy(x)).numpy()
