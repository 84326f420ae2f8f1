"""After a killed driver, Optuna trials it asked but Tune never saved are recorded as failed."""

import optuna

from growray.tune.finish import fail_orphaned_optuna_trials


def test_orphaned_running_trials_become_fail(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    done = study.ask()
    study.tell(done, 1.0)
    study.ask()  # asked by a driver that died: never told
    assert fail_orphaned_optuna_trials("s", storage) == 1
    states = [t.state for t in optuna.load_study(study_name="s", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert fail_orphaned_optuna_trials("s", storage) == 0
