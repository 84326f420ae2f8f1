"""What an export refuses, each with one message that says what to do: an architecture ONNX
cannot express, a missing optional package, outputs that do not match; and the latency of an
exported model under a declared protocol."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from growray import cli
from growray.cost import LatencyProtocol
from growray.export import (
    EXPORT_EXTRA,
    ExportError,
    MissingDependencyError,
    export_network,
    measure_onnx_latency,
    protocol_from_params,
    require_onnx,
)
from growray.models import MODELS, ArchSpec, build_model

torch.set_num_threads(1)
pytest.importorskip("onnxruntime", reason="the export extra (pip install 'growray[export]')")


class _Spectral(nn.Module):
    """A network whose forward uses an eigendecomposition, which ONNX has no operator for."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.input_shape, self.n_classes = tuple(input_shape), n_classes
        self.proj = nn.Linear(input_shape[0], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return torch.linalg.eigvalsh(h[:, :, None] * h[:, None, :] + torch.eye(h.shape[1]))

    def spec(self) -> ArchSpec:
        return ArchSpec("export_test_spectral", {"input_shape": list(self.input_shape), "n_classes": self.n_classes})


@pytest.fixture
def spectral():
    MODELS.register("export_test_spectral")(_Spectral)
    yield build_model(ArchSpec("export_test_spectral", {"input_shape": [4], "n_classes": 3})).eval()
    MODELS.unregister("export_test_spectral")


def test_an_architecture_onnx_cannot_express_is_refused_and_pt_still_works(spectral, tmp_path):
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    with pytest.raises(ExportError, match=r"ONNX cannot express the 'export_test_spectral' network.*--format pt"):
        export_network(spectral, spectral.spec(), tmp_path, ["onnx"], x, about={})
    assert not list(tmp_path.glob("model.*"))
    report = export_network(spectral, spectral.spec(), tmp_path, ["pt"], x, about={})
    assert report.checks[0].max_abs_error <= 1e-5


def test_outputs_beyond_the_tolerance_leave_nothing_written(tmp_path):
    model = build_model(ArchSpec("mlp", {"input_shape": [4], "n_classes": 3, "hidden": [5]})).eval()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    with pytest.raises(
        ExportError, match=r"does not match the PyTorch network within -1 on 8 held-out samples.*max\(1, \|logit\|\) 0"
    ):
        export_network(model, model.spec(), tmp_path, ["pt", "torchscript"], x, about={}, tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def no_onnxruntime(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError


def test_a_missing_optional_package_names_the_extra(no_onnxruntime):
    with pytest.raises(MissingDependencyError, match=r"ONNX export needs the package 'onnxruntime'") as info:
        require_onnx()
    assert EXPORT_EXTRA in str(info.value)


def test_the_command_line_says_so_with_exit_2_before_reading_any_run(no_onnxruntime, tmp_path, capsys):
    code = cli.main(["export", "0" * 32, "--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "--latency"])
    err = capsys.readouterr().err
    assert code == 2
    assert "measuring latency with onnxruntime needs the package 'onnxruntime'" in err
    assert "pip install 'growray[export]'" in err and "Traceback" not in err


def test_a_pt_only_export_needs_no_onnx(no_onnxruntime, tmp_path):
    model = build_model(ArchSpec("mlp", {"input_shape": [4], "n_classes": 3, "hidden": [5]})).eval()
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    report = export_network(model, model.spec(), tmp_path, ["pt", "torchscript"], x, about={})
    assert {c.format for c in report.checks} == {"pt", "torchscript"}


def test_onnx_latency_follows_the_declared_protocol(tmp_path):
    model = build_model(ArchSpec("mlp", {"input_shape": [16], "n_classes": 3, "hidden": [8]})).eval()
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    export_network(model, model.spec(), tmp_path, ["onnx"], x, about={})
    protocol = LatencyProtocol(batch_sizes=(1, 4), threads=1, warmup=2, min_run_time=0.05)
    results = measure_onnx_latency(tmp_path / "model.onnx", (16,), protocol)
    assert [r.batch_size for r in results] == [1, 4]
    for r in results:
        assert r.n_threads == 1 and r.device == "cpu" and r.n_measurements >= 1
        assert 0 < r.median_ms <= r.p95_ms + 1e-12 and r.median_ms < 1000


def test_the_run_s_logged_protocol_is_read_back_exactly():
    logged = LatencyProtocol(batch_sizes=(1, 32), threads=3, warmup=4, min_run_time=0.25)
    fallback = LatencyProtocol()
    assert protocol_from_params(logged.as_params(device="cpu"), fallback) == logged
    inherit = LatencyProtocol(threads=None).as_params()
    assert protocol_from_params(inherit, fallback).threads is None
    assert protocol_from_params({}, fallback) is fallback  # the run measured no latency
    assert protocol_from_params({"cost.latency.batch_sizes": "x"}, fallback) is fallback
