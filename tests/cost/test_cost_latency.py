import dataclasses

import pytest
import torch
from torch import nn

from growray.cost import LatencyProtocol, LatencyResult, measure_latency
from growray.models import GrowableMLP

FAST = {"warmup": 1, "min_run_time": 0.01}


class _Probe(nn.Module):
    """Records the grad mode, training flag and thread count its forward pass sees."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.seen = set()

    def forward(self, x):
        self.seen.add((torch.is_grad_enabled(), self.training, torch.get_num_threads(), x.shape[0]))
        return self.linear(x)


def test_results_per_batch_size_and_statistics():
    m = GrowableMLP((4,), 3, hidden=[8])
    results = measure_latency(m, (4,), LatencyProtocol(batch_sizes=(1, 16), threads=1, **FAST))
    assert [r.batch_size for r in results] == [1, 16]
    for r in results:
        assert isinstance(r, LatencyResult)
        assert r.p95_ms >= r.median_ms > 0
        assert r.iqr_ms >= 0 and r.n_measurements >= 1
        assert r.device == "cpu" and r.n_threads == 1


def test_eval_no_grad_threads_and_mode_restored():
    m = _Probe()
    m.train()
    prior = torch.get_num_threads()
    wanted = 2 if prior == 1 else 1
    measure_latency(m, (4,), LatencyProtocol(batch_sizes=(3,), threads=wanted, **FAST))
    assert m.seen == {(False, False, wanted, 3)}
    assert m.training
    assert torch.get_num_threads() == prior

    m.seen.clear()
    m.eval()
    (r,) = measure_latency(m, (4,), LatencyProtocol(threads=None, **FAST))  # keep the current count
    assert {s[2] for s in m.seen} == {prior} and r.n_threads == prior
    assert not m.training


def test_model_rng_and_batchnorm_untouched():
    torch.manual_seed(0)
    m = GrowableMLP((5,), 3, hidden=[6], batch_norm=True)
    m.train()
    m(torch.randn(8, 5))  # non-trivial running statistics
    before = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    measure_latency(m, (5,), LatencyProtocol(batch_sizes=(2,), **FAST))
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_protocol_params():
    p = LatencyProtocol(batch_sizes=[1, 32], threads=1)
    assert p.batch_sizes == (1, 32)  # a YAML list becomes a tuple
    assert p.as_params() == {
        "cost.latency.batch_sizes": "1,32",
        "cost.latency.dtype": "float32",
        "cost.latency.threads": "1",
        "cost.latency.warmup": "10",
        "cost.latency.min_run_time": "0.2",
        "cost.latency.repeats": "3",
    }
    params = LatencyProtocol().as_params(device="cpu")
    assert params["cost.latency.threads"] == "inherit" and params["cost.latency.device"] == "cpu"
    assert all(isinstance(v, str) for v in params.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.warmup = 3


@pytest.mark.parametrize(
    "field,value",
    [
        ("batch_sizes", ()),
        ("batch_sizes", (1, 0)),
        ("batch_sizes", 4),
        ("batch_sizes", (True,)),
        ("dtype", "float64"),
        ("threads", 0),
        ("threads", 1.5),
        ("warmup", -1),
        ("min_run_time", 0),
        ("min_run_time", float("nan")),
        ("min_run_time", "0.2"),
        ("repeats", 0),
    ],
)
def test_invalid_protocol_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        LatencyProtocol(**{field: value})


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_dtype_on_cpu_is_a_clear_error(dtype):
    with pytest.raises(ValueError, match=f"dtype='{dtype}' is measured on CUDA only.*use dtype='float32'"):
        measure_latency(nn.Linear(2, 2), (2,), LatencyProtocol(dtype=dtype, **FAST))


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_shape"):
        measure_latency(nn.Linear(2, 2), (), LatencyProtocol(**FAST))
    with pytest.raises(ValueError, match="device"):
        measure_latency(nn.Linear(2, 2), (2,), LatencyProtocol(**FAST), device="nonsense")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            measure_latency(nn.Linear(2, 2), (2,), LatencyProtocol(**FAST), device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cuda_copy_leaves_the_cpu_model_alone(dtype):
    m = GrowableMLP((64,), 10, hidden=[256, 256], batch_norm=True)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    results = measure_latency(m, (64,), LatencyProtocol(batch_sizes=(1, 256), dtype=dtype, **FAST), device="cuda")
    assert [r.batch_size for r in results] == [1, 256]
    assert all(r.device.startswith("cuda:") and r.p95_ms >= r.median_ms > 0 for r in results)
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in m.parameters())
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


class _Slowing(nn.Module):
    """A forward pass that gets 20x slower 40 ms after its first call: a core another trial started to share."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.start = None

    def forward(self, x):
        import time

        self.start = self.start or time.monotonic()
        time.sleep(0.001 if time.monotonic() - self.start < 0.04 else 0.02)
        return self.linear(x)


def test_repeats_report_the_spread_of_their_medians():
    quiet = measure_latency(nn.Linear(4, 2), (4,), LatencyProtocol(threads=1, repeats=1, **FAST))[0]
    assert quiet.spread == 0.0
    (r,) = measure_latency(_Slowing(), (4,), LatencyProtocol(threads=1, repeats=3, warmup=0, min_run_time=0.03))
    assert r.spread > 1.0, r  # ~19 (1 ms, then 20 ms); a single measurement could not tell
    assert r.n_measurements >= 3
