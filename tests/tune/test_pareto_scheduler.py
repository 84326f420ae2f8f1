"""ParetoHalvingScheduler: exact decisions driven by hand, then a real Ray Tune sweep with a
multi-objective OptunaSearch that must stop exactly the expected trials at the expected rungs."""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass

import pytest

from growray.tune.schedulers import ParetoHalvingScheduler

pytestmark = pytest.mark.timeout(120)

CONTINUE, STOP = "CONTINUE", "STOP"

# Trial i reports (loss, params) = EARLY[i] at iteration 1 and LATE[i] at iterations 2..4; both
# minimised. Grace 1, reduction factor 2, max_t 4: rungs at iterations 1 and 2. Every decision
# below is fixed by front membership alone (each front lies wholly inside or outside the kept
# ceil(n/2)), so crowding distance and tie-breaking never decide it.
EARLY = [(5, 5), (6, 6), (4, 4), (9, 1), (7, 7), (3, 3), (8, 8), (2, 6)]
LATE = [(5, 5), (6, 6), (4, 4), (9, 9), (7, 7), (3, 3), (8, 8), (6, 6)]
# Rung 1, arrivals t0..t7 (n, kept):
#   t0 1,1 C | t1 2,1 S (dominated by t0) | t2 3,2 C (dominates all) | t3 4,2 C (front 0 with t2:
#   worst loss but fewest params; ASHA on loss alone would stop it) | t4 5,3 S (last front) |
#   t5 6,3 C (front 0 with t3) | t6 7,4 S (last) | t7 8,4 C (front 0 with t3, t5)
# Rung 2, arrivals t0, t2, t3, t5, t7:
#   t0 1,1 C | t2 2,1 C | t3 3,2 S (9,9 is last) | t5 4,2 C (dominates all) | t7 5,3 S ((6,6) is 4th)
REACHED = {0: 4, 1: 1, 2: 4, 3: 2, 4: 1, 5: 4, 6: 1, 7: 2}  # iterations each trial reports


@dataclass
class FakeTrial:
    trial_id: str


def _vector(i: int, iteration: int) -> tuple[float, float]:
    return EARLY[i] if iteration == 1 else LATE[i]


def _drive(sched, modes=("min", "min"), sign=(1, 1)):
    """Run the trials one after another, as max_concurrent_trials=1 does; returns every decision."""
    decisions = []
    for i in range(8):
        trial = FakeTrial(f"t{i}")
        sched.on_trial_add(None, trial)
        for it in range(1, 5):
            loss, params = _vector(i, it)
            result = {"training_iteration": it, "loss": sign[0] * loss, "params": sign[1] * params}
            decision = sched.on_trial_result(None, trial, result)
            decisions.append((i, it, decision))
            if decision == STOP:
                sched.on_trial_complete(None, trial, result)
                break
    return decisions


def _expected_decisions():
    out = []
    for i, last in REACHED.items():
        out += [(i, it, CONTINUE) for it in range(1, last)] + [(i, last, STOP)]
    return out


@pytest.mark.parametrize("modes, sign", [(("min", "min"), (1, 1)), (("max", "min"), (-1, 1))])
def test_exact_decisions_in_a_known_arrival_order(modes, sign):
    sched = ParetoHalvingScheduler(["loss", "params"], list(modes), max_t=4, grace_period=1, reduction_factor=2)
    assert [r["milestone"] for r in sched.state["rungs"]] == [1, 2]
    assert _drive(sched, modes, sign) == _expected_decisions()
    assert sched.stopped == {"t1": 1, "t4": 1, "t6": 1, "t3": 2, "t7": 2}
    assert list(sched.recorded(1)) == [f"t{i}" for i in range(8)]  # stopped trials stay peers
    assert list(sched.recorded(2)) == ["t0", "t2", "t3", "t5", "t7"]
    assert sched.recorded(2)["t3"] == [sign[0] * 9.0, 9.0]
    assert "5 stopped early" in sched.debug_string() and "loss (" + modes[0] + ")" in sched.debug_string()


def test_interleaved_arrivals_are_judged_against_the_peers_so_far():
    sched = ParetoHalvingScheduler(["a", "b"], ["min", "max"], max_t=8, grace_period=2, reduction_factor=2)
    x, y, z = FakeTrial("x"), FakeTrial("y"), FakeTrial("z")

    def r(t: int, a: float, b: float) -> dict:
        return {"training_iteration": t, "a": a, "b": b}

    assert sched.on_trial_result(None, x, r(1, 9, 0)) == CONTINUE  # below the first rung: no judgement
    assert sched.on_trial_result(None, x, r(2, 1, 1)) == CONTINUE  # alone at rung 2
    assert sched.on_trial_result(None, y, r(2, 0.5, 2)) == CONTINUE  # dominates x (b is maximised): 1st of 2
    assert sched.recorded(2) == {"x": [1.0, 1.0], "y": [0.5, 2.0]}
    assert sched.on_trial_result(None, x, r(3, 5, 5)) == CONTINUE  # already judged at rung 2
    assert sched.on_trial_result(None, z, r(2, 3, 0)) == STOP  # dominated by x: 3rd of 3, keep 2
    assert sched.on_trial_result(None, x, r(4, 1, 9)) == CONTINUE  # first at rung 4
    assert sched.on_trial_result(None, x, r(8, 1, 9)) == STOP  # max_t
    assert sched.stopped == {"z": 2}


def test_tie_goes_to_the_earlier_arrival():
    sched = ParetoHalvingScheduler(["a", "b"], ["min", "min"], max_t=4, grace_period=1, reduction_factor=2)
    assert sched.on_trial_result(None, FakeTrial("x"), {"training_iteration": 1, "a": 1, "b": 2}) == CONTINUE
    # mutually non-dominated, two-point front (both crowding inf): keep ceil(2/2)=1, x came first
    assert sched.on_trial_result(None, FakeTrial("y"), {"training_iteration": 1, "a": 2, "b": 1}) == STOP


def test_a_result_jumping_past_rungs_is_judged_at_the_highest_reached():
    sched = ParetoHalvingScheduler(
        ["a", "b"], ["min", "min"], time_attr="time_total_s", max_t=100, grace_period=1, reduction_factor=3
    )
    assert [r["milestone"] for r in sched.state["rungs"]] == [1, 3, 9, 27, 81]
    t = FakeTrial("x")
    assert sched.on_trial_result(None, t, {"time_total_s": 10.5, "a": 1, "b": 1}) == CONTINUE
    assert list(sched.recorded(9)) == ["x"] and sched.recorded(3) == {} and sched.recorded(1) == {}
    assert sched.on_trial_result(None, t, {"a": 1, "b": 1}) == CONTINUE  # no time_attr: no decision


def test_missing_objective_at_a_rung_is_an_error_naming_it():
    sched = ParetoHalvingScheduler(["val/loss", "cost/params"], ["min", "min"], max_t=4)
    t = FakeTrial("abc")
    assert sched.on_trial_result(None, t, {"training_iteration": 0.5}) == CONTINUE  # between rungs: fine
    with pytest.raises(ValueError, match=r"trial abc .*without the objective\(s\) \['cost/params'\]"):
        sched.on_trial_result(None, t, {"training_iteration": 1, "val/loss": 0.3})


def test_nan_objectives_rank_last():
    sched = ParetoHalvingScheduler(["a", "b"], ["min", "min"], max_t=4, grace_period=1, reduction_factor=2)
    assert sched.on_trial_result(None, FakeTrial("x"), {"training_iteration": 1, "a": math.nan, "b": 0}) == CONTINUE
    assert sched.on_trial_result(None, FakeTrial("y"), {"training_iteration": 1, "a": 9, "b": 9}) == CONTINUE
    assert sched.on_trial_result(None, FakeTrial("z"), {"training_iteration": 1, "a": 9, "b": 9}) == CONTINUE
    assert sched.on_trial_result(None, FakeTrial("w"), {"training_iteration": 1, "a": 1, "b": math.inf}) == STOP


def test_set_search_properties_keeps_the_schedulers_own_objectives():
    sched = ParetoHalvingScheduler(["loss", "params"], ["min", "min"])
    assert sched.set_search_properties("val/acc", "max", config={}) is True
    assert sched.set_search_properties(None, None) is True
    assert sched.metrics == ["loss", "params"] and sched.modes == ["min", "min"]
    assert sched.metric is None  # Ray's single-metric result check stays off; the scheduler checks its own


def test_state_is_plain_data_and_round_trips(tmp_path):
    sched = ParetoHalvingScheduler(["loss", "params"], ["min", "min"], max_t=4, grace_period=1, reduction_factor=2)
    _drive(sched)
    state = sched.state
    assert json.loads(json.dumps(state)) == state
    clone = pickle.loads(pickle.dumps(sched))
    assert clone.state == state
    assert ParetoHalvingScheduler.from_state(state).state == state
    sched.save(str(tmp_path / "sched.json"))
    fresh = ParetoHalvingScheduler(["loss", "params"], ["min", "min"], max_t=4, grace_period=1, reduction_factor=2)
    fresh.restore(str(tmp_path / "sched.json"))
    assert fresh.state == state
    # the restored scheduler goes on deciding as the original would
    late = FakeTrial("late")
    assert fresh.on_trial_result(None, late, {"training_iteration": 1, "loss": 1, "params": 1}) == CONTINUE
    other = ParetoHalvingScheduler(["loss"], ["min"], max_t=4)
    with pytest.raises(ValueError, match="state is for metrics"):
        other.restore(str(tmp_path / "sched.json"))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"metrics": "loss", "modes": ["min"]}, r"metrics must be a non-empty list.*'loss'"),
        ({"metrics": [], "modes": []}, r"metrics must be a non-empty list"),
        ({"metrics": ["a", "a"], "modes": ["min", "min"]}, r"each metric once; got \['a', 'a'\]"),
        ({"metrics": ["a", "b"], "modes": ["min", "up"]}, r"'min' or 'max'; got \['up'\]"),
        ({"metrics": ["a", "b"], "modes": ["min"]}, r"one mode per metric: 2 metrics"),
        ({"metrics": ["a"], "modes": ["min"], "reduction_factor": 1}, r"reduction_factor must be .*than 1.*got 1"),
        ({"metrics": ["a"], "modes": ["min"], "grace_period": 0}, r"grace_period must be positive; got 0"),
        ({"metrics": ["a"], "modes": ["min"], "grace_period": 5, "max_t": 4}, r"grace_period \(5\) .* max_t \(4\)"),
        ({"metrics": ["a"], "modes": ["min"], "max_t": 0}, r"max_t must be positive; got 0"),
    ],
)
def test_constructor_errors_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParetoHalvingScheduler(**kwargs)


# -- real Ray Tune ---------------------------------------------------------------------------


def space(trial):
    """Define-by-run space (module level, so the searcher pickles): which scripted trial to be."""
    trial.suggest_int("i", 0, 7)


def test_real_tune_run_stops_the_expected_trials(ray_session, tmp_path):
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    early, late = EARLY, LATE

    def scripted(config):  # local: shipped to the workers by value
        i = config["i"]
        for it in range(1, 5):
            loss, params = early[i] if it == 1 else late[i]
            tune.report({"loss": float(loss), "params": float(params)})

    sched = ParetoHalvingScheduler(["loss", "params"], ["min", "min"], max_t=4, grace_period=1, reduction_factor=2)
    search = OptunaSearch(
        space, metric=["loss", "params"], mode=["min", "min"], points_to_evaluate=[{"i": i} for i in range(8)]
    )
    tuner = tune.Tuner(
        scripted,
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=sched,
            metric="loss",  # single, as STACK_NOTES §1 requires; Ray hands it to set_search_properties
            mode="min",
            num_samples=8,
            max_concurrent_trials=1,  # deterministic arrival order t0..t7
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="pareto", storage_path=str(tmp_path / "ray"), verbose=0),
    )
    results = tuner.fit()
    assert results.num_errors == 0, [r.error for r in results]
    reached = {r.config["i"]: r.metrics["training_iteration"] for r in results}
    assert reached == REACHED
    # Tune drove this very object (the Tuner keeps its TuneConfig): its rungs hold Tune's trial
    # ids in arrival order.
    ids = {r.metrics["trial_id"]: r.config["i"] for r in results}
    assert [ids[t] for t in sched.recorded(1)] == list(range(8))
    assert [ids[t] for t in sched.recorded(2)] == [0, 2, 3, 5, 7]
    assert {ids[t]: m for t, m in sched.stopped.items()} == {1: 1, 4: 1, 6: 1, 3: 2, 7: 2}
    # The scheduler pickled into tuner.pkl comes back on Tuner.restore and is accepted again.
    path = str(tmp_path / "ray" / "pareto")
    assert tune.Tuner.can_restore(path)
    again = tune.Tuner.restore(path, trainable=scripted).fit()
    assert {r.config["i"]: r.metrics["training_iteration"] for r in again} == REACHED
