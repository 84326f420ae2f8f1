"""Trial summaries from Ray Tune's results, and the rule that tells a trial a scheduler stopped."""

from __future__ import annotations

import pytest
from ray.tune import Result

from growray.tune.results import paired_test_metric, stopped_early, summaries


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        ({"epoch": 2.0, "val/acc": 0.5}, True),  # ASHA stopped it at a rung
        ({"epoch": 4.0, "val/acc": 0.5, "test/acc": 0.4}, False),  # every epoch: ASHA's max_t STOP is no early stop
        ({"epoch": 4.0, "val/acc": 0.5}, False),  # the last epoch, whatever else the result holds
        ({"epoch": 2.0, "val/acc": 0.5, "test/acc": 0.4}, False),  # the trainer ended itself (request_stop)
        ({}, True),  # stopped before its first report of an epoch
    ],
)
def test_stopped_early_reads_the_last_result(last, expected):
    assert stopped_early(last, epochs=4) is expected


def _result(tmp_path, name, metrics, error=None):
    return Result(metrics=metrics, checkpoint=None, error=error, path=str(tmp_path / name))


def test_summaries_from_tune_results(tmp_path):
    done = {
        "trial_id": "abc_00000",
        "epoch": 3.0,
        "val/acc": 0.8,
        "best/val_acc": 0.85,
        "test/acc": 0.79,
        "cost/params": 610.0,
        "growth/width/hidden.0": 12.0,
        "mlflow_run_id": "r0",
        "config": {"trainer.lr": 0.01},
        "training_iteration": 3,
        "done": True,
    }
    stopped = {"epoch": 1.0, "val/acc": 0.3, "mlflow_run_id": "r1", "config": {"trainer.lr": 1e-5}}
    diverged = {"epoch": 1.0, "val/acc": float("nan"), "growray/diverged": 1.0, "mlflow_run_id": "r2"}
    results = [
        _result(tmp_path, "trial_fn_abc_00000_0_lr=0.01", done),
        _result(tmp_path, "trial_main_3c5e1_00001_1_lr=1e-05", stopped),
        _result(tmp_path, "trial_fn_abc_00002_2", diverged),
        _result(tmp_path, "trial_fn_abc_00003_3", {"mlflow_run_id": "r3"}, error=RuntimeError("boom\nlast line")),
    ]
    a, b, c, d = summaries(results, "val/acc", epochs=3)
    assert (a.trial_id, a.status, a.epochs, a.params, a.widths) == ("abc_00000", "TERMINATED", 3, 610, {"hidden.0": 12})
    assert a.config == {"trainer.lr": 0.01} and a.mlflow_run_id == "r0" and not a.stopped_early
    assert a.metric == pytest.approx(0.8) and a.test_acc == pytest.approx(0.79)
    assert a.metrics["best/val_acc"] == pytest.approx(0.85) and "training_iteration" not in a.metrics
    assert b.trial_id == "3c5e1_00001"  # no trial_id in the result: taken from Tune's folder name
    assert b.status == "STOPPED" and b.stopped_early and b.epochs == 1
    assert c.status == "DIVERGED" and not c.stopped_early
    assert d.status == "ERROR" and d.error == "last line" and not d.stopped_early


def test_an_interrupted_sweep_marks_its_unfinished_trials(tmp_path):
    """Ray's status of each trial tells the trials a Ctrl-C left running from those a scheduler stopped."""
    partial = {"epoch": 1.0, "val/acc": 0.3, "mlflow_run_id": "r0"}
    results = [_result(tmp_path, "trial_fn_abc_00000_0", partial), _result(tmp_path, "trial_fn_abc_00001_1", partial)]
    running, stopped = summaries(results, "val/acc", epochs=3, statuses=["RUNNING", "TERMINATED"])
    assert (running.status, running.stopped_early) == ("INTERRUPTED", False)
    assert (stopped.status, stopped.stopped_early) == ("STOPPED", True)


def test_a_nas_trial_summary_carries_its_retrained_test_accuracy(tmp_path):
    last = {"epoch": 2.0, "val/acc": 0.19, "test/acc": 0.18, "nas/retrain_val_acc": 0.69, "nas/retrain_test_acc": 0.66}
    (t,) = summaries([_result(tmp_path, "trial_fn_abc_00000_0", last)], "nas/retrain_val_acc", epochs=2)
    assert t.metric == pytest.approx(0.69) and t.test_acc == pytest.approx(0.66)  # not the supernet's 0.18
    assert paired_test_metric("val/acc") == "test/acc" and paired_test_metric("cost/params") == "test/acc"
