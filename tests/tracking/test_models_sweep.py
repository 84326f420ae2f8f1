"""One real quickstart-like sweep (Ray, Optuna, MLflow sqlite), then ``growray export`` of its
best trial, a grown MLP: every format, the MLflow model (loaded with ``mlflow.pyfunc``) and
the registry version, compared with the trial's own Ray checkpoint; the deployment latency
beside the training one; a trial without network.json exported from its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from conftest import tiny_experiment

import growray.api as gr
from growray import cli
from growray.data import load_dataset
from growray.export import FORMATS, load_pt
from growray.models import build_model
from growray.train import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400), pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")]
ort = pytest.importorskip("onnxruntime", reason="the export extra (pip install 'growray[export]')")
TOL = 1e-5


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    from growray.tune.orchestrate import run_sweep

    tmp = tmp_path_factory.mktemp("export-sweep")
    exp = tiny_experiment(tmp, trainer={"epochs": 2}, search={"num_samples": 2})
    result = run_sweep(exp, live_interval_s=5)
    assert [t.status for t in result.trials] == ["TERMINATED"] * 2
    return exp, result, tmp, load_dataset(exp.data, seed=exp.seed)


def _checkpoint_logits(result, run_id, x):
    """The trial's last Ray checkpoint (found here by scanning Tune's folder), rebuilt by hand."""
    found = []
    for meta in Path(result.storage_path).glob("*/checkpoint_*/meta.json"):
        data = json.loads(meta.read_text())
        if data["mlflow_run_id"] == run_id:
            found.append((data["epoch"], meta.parent))
    ckpt = load_checkpoint(max(found)[1])
    model = build_model(ckpt.spec)
    model.load_state_dict(ckpt.model_state)
    with torch.no_grad():
        return model.eval()(torch.from_numpy(x)).numpy()


def test_the_best_trial_exports_and_its_mlflow_model_predicts_the_checkpoint_s_classes(sweep, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    _, result, tmp, dataset = sweep
    uri = result.tracking_uri
    client = MlflowClient(uri)
    for t in result.trials:  # every finished trial logged its final network
        assert "network.json" in {a.path for a in client.list_artifacts(t.mlflow_run_id)}
    (report,) = gr.export(
        result.parent_run_id, formats=FORMATS, out=tmp / "best", tracking_uri=uri, latency=True, register="tiny-best"
    )
    best = result.best.mlflow_run_id
    assert report.run_id == best and report.via == f"best trial of sweep {result.name}"
    assert all(w > 6 for w in report.manifest["architecture"]["hidden"])  # a grown MLP (it started at [6, 6])
    x = dataset.x_test
    reference = _checkpoint_logits(result, best, x)
    assert {c.format for c in report.checks} == set(FORMATS)
    assert all(c.max_abs_error <= TOL and c.argmax_agreement == 1.0 for c in report.checks), report.checks

    # each file read back here, against the checkpoint (not against the export's own model)
    session = ort.InferenceSession(str(tmp / "best" / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], reference, rtol=0, atol=TOL)
    with torch.no_grad():
        scripted = torch.jit.load(str(tmp / "best" / "model.torchscript"))
        np.testing.assert_allclose(scripted(torch.from_numpy(x)).numpy(), reference, rtol=0, atol=TOL)
        np.testing.assert_allclose(load_pt(tmp / "best")(torch.from_numpy(x)).numpy(), reference, rtol=0, atol=TOL)

    # the registered MLflow model: pyfunc (ONNX flavour), same classes as the checkpoint
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model = mlflow.pyfunc.load_model("models:/tiny-best/1")
    predicted = model.predict(x)["logits"]
    assert (predicted.argmax(1) == reference.argmax(1)).all()
    np.testing.assert_allclose(predicted, reference, rtol=0, atol=TOL)
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 64)
    assert model.metadata.metadata["growray"]["n_classes"] == 10
    version = client.get_model_version("tiny-best", "1")
    trial = client.get_run(best)
    assert version.tags["growray.sweep"] == result.name
    assert version.tags["growray.trial"] == trial.data.tags["growray.trial"]
    assert version.tags["growray.run_id"] == best and version.run_id == best
    assert report.registered == ("tiny-best", "1") and report.model_uri.startswith("models:/m-")
    logged = client.get_logged_model(report.model_uri.removeprefix("models:/"))
    assert logged.experiment_id == trial.info.experiment_id and logged.source_run_id == best  # not "Default"

    # deployment latency beside cost/latency_ms, under the run's own protocol; the run stays FINISHED
    run = client.get_run(best)
    assert run.info.status == "FINISHED"
    (lat,) = client.get_metric_history(best, "export/latency_ms")
    train_steps = [m.step for m in client.get_metric_history(best, "cost/latency_ms")]
    assert lat.step == max(train_steps) and lat.value > 0
    assert report.training_latency_ms == pytest.approx(run.data.metrics["cost/latency_ms"])
    protocol = json.loads((tmp / "best" / "export.json").read_text())["latency"]["protocol"]
    assert str(protocol["threads"]) == run.data.params["cost.latency.threads"]
    assert ",".join(map(str, protocol["batch_sizes"])) == run.data.params["cost.latency.batch_sizes"]
    assert run.data.tags["growray.export.latency_runtime"].startswith("onnxruntime ")


def _artifact_file(client, run_id, name):
    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / name


def test_a_run_without_network_json_exports_from_its_ray_checkpoint(sweep):
    from mlflow import MlflowClient

    _, result, tmp, dataset = sweep
    client = MlflowClient(result.tracking_uri)
    other = next(t.mlflow_run_id for t in result.trials if t.mlflow_run_id != result.best.mlflow_run_id)
    _artifact_file(client, other, "network.json").unlink()  # as for a run recorded before it was logged
    (report,) = gr.export(other, formats=["pt"], out=tmp / "other", tracking_uri=result.tracking_uri)
    x = dataset.x_test[:50]
    with torch.no_grad():
        got = load_pt(tmp / "other")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, _checkpoint_logits(result, other, x), rtol=0, atol=TOL)
    assert report.run_id == other

    client.set_tag(other, "growray.sweep", "a-sweep-elsewhere")  # its checkpoints are not on this machine
    with pytest.raises(ValueError, match=rf"run {other} has no weights: no network.json in MLflow.*a-sweep-elsewhere"):
        gr.export(other, formats=["pt"], out=tmp / "nowhere", tracking_uri=result.tracking_uri)
    client.set_tag(other, "growray.sweep", result.name)


def test_an_experiment_file_exports_its_latest_sweep_s_best_trial(sweep, capsys, monkeypatch):
    exp, result, tmp, _ = sweep
    file = tmp / "tiny.yaml"
    file.write_text(gr.to_yaml(exp.to_dict()))
    monkeypatch.chdir(tmp / "runs")  # no mlflow.db here: the file's tracking.uri is the store
    assert cli.main(["export", str(file), "--format", "pt", "--out", str(tmp / "from-file")]) == 0
    out = capsys.readouterr().out
    assert f"exported run {result.best.mlflow_run_id} (best trial of sweep {result.name})" in out
    assert (tmp / "from-file" / "model.pt").is_file()


def test_the_command_line_exports_and_refuses_with_exit_2(sweep, capsys):
    _, result, tmp, _ = sweep
    uri = result.tracking_uri
    assert (
        cli.main(["export", result.parent_run_id, "--tracking-uri", uri, "--format", "pt", "--out", str(tmp / "c")])
        == 0
    )
    out = capsys.readouterr().out
    assert f"exported run {result.best.mlflow_run_id} (best trial of sweep {result.name})" in out
    assert "pt          model.pt, architecture.json" in out and "100% same class" in out
    assert cli.main(["export", result.parent_run_id, "--tracking-uri", uri, "--pareto"]) == 2
    err = capsys.readouterr().err
    assert "growray export:" in err and "no trial tagged growray.pareto=true" in err and "Traceback" not in err
