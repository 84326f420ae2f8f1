"""Without --verbose, Ray's, Optuna's and MLflow's notices about what growray reports itself are
hidden; their other warnings stay."""

from __future__ import annotations

import logging

from growray.tune.session import quiet_noise


def test_quiet_noise_drops_only_the_known_notices(monkeypatch, caplog):
    import optuna

    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    monkeypatch.setattr(logging.getLogger("ray.tune.tune"), "filters", [])  # restored afterwards
    monkeypatch.setattr(logging.getLogger("ray._private.authentication.authentication_token_setup"), "filters", [])
    monkeypatch.setattr(logging.getLogger("mlflow.store.db.utils"), "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger("ray.tune.execution.tune_controller"), "filters", [])
    monkeypatch.setattr(logging.getLogger("ray.train._internal.syncer"), "filters", [])
    monkeypatch.delenv("RAY_IGNORE_UNHANDLED_ERRORS", raising=False)
    verbosity = optuna.logging.get_verbosity()
    quiet_noise(verbose=False)
    quiet_noise(verbose=False)  # idempotent: one filter per logger
    import os

    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # Ray's experiment box and TensorBoard hint
    assert optuna.logging.get_verbosity() == optuna.logging.WARNING  # "A new study created in RDB"
    tune_log = logging.getLogger("ray.tune.tune")
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    assert sum(type(f).__name__ == "_DropMessages" for f in tune_log.filters) == 1
    with caplog.at_level(logging.WARNING):
        tune_log.warning('Experiment has been interrupted...\nResume experiment with: Tuner.restore(path="x")')
        auth_log.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled")
        tune_log.warning("a trial failed to start")
    assert [r.getMessage() for r in caplog.records] == ["a trial failed to start"]
    # its "SQLAlchemy database error" log precedes the exception growray reports
    assert logging.getLogger("mlflow.store.db.utils").getEffectiveLevel() == logging.CRITICAL
    assert os.environ["RAY_IGNORE_UNHANDLED_ERRORS"] == "1"
    # a trial failed on a full disk: growray says so once at the end; other trial failures stay
    controller = logging.getLogger("ray.tune.execution.tune_controller")
    with caplog.at_level(logging.ERROR):
        caplog.clear()
        for cause in (OSError(28, "No space left on device"), ValueError("a bug in a trigger")):
            try:
                raise cause
            except Exception:
                controller.error("Trial task failed for trial t", exc_info=True)
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [cause]
    # Tune's background copy of a checkpoint failed on the full disk (its traceback is in the text)
    syncer = logging.getLogger("ray.train._internal.syncer")
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        syncer.warning(
            "Last sync command failed with the following error:\nOSError: [Errno 28] No space left on device"
        )
        syncer.warning("Last sync command failed with the following error:\nPermissionError: denied")
    assert [r.getMessage().split("\n")[1] for r in caplog.records] == ["PermissionError: denied"]
    optuna.logging.set_verbosity(verbosity)


def test_verbose_leaves_everything_on(monkeypatch):
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    monkeypatch.delenv("RAY_IGNORE_UNHANDLED_ERRORS", raising=False)
    quiet_noise(verbose=True)
    import os

    assert "RAY_AIR_NEW_OUTPUT" not in os.environ and "RAY_IGNORE_UNHANDLED_ERRORS" not in os.environ
