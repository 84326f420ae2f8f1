"""A corpus of malformed experiment files: each one is an exit-2 message naming the YAML path
(or the file's line), never a traceback; `run` on them starts no Ray and writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from growray.cli import main

BASE = "name: bad\ndata: {name: digits}\nmodel: {name: mlp, hidden: [4]}\n"
GROW = "growth: {trigger: {name: schedule}}\n"

# (file content, a string the error output must contain)
CASES: dict[str, tuple[str, str]] = {
    "not a mapping": ("- a\n- b\n", "<root>: an experiment file is a YAML mapping"),
    "yaml syntax": ("name: x\ndata: {name: digits\n", "YAML syntax error"),
    "duplicate key": (BASE + "seed: 1\nseed: 2\n", "duplicate key 'seed'"),
    "list key": (BASE + "? [1, 2]\n: 3\n", "a key must be a name, not a list"),
    "python tag": (BASE + "seed: !!python/object/apply:os.system ['true']\n", "YAML syntax error"),
    "unknown top-level key": (BASE + "trainr: {epochs: 1}\n", "trainr: unknown key; accepted:"),
    "unknown dataset": ("name: x\ndata: {name: digitz}\nmodel: {name: mlp}\n", "data.name: unknown dataset"),
    "dataset name is a list": ("name: x\ndata: {name: [digits]}\nmodel: {name: mlp}\n", "data.name: unknown dataset"),
    "model name is a mapping": ("name: x\ndata: {name: digits}\nmodel: {name: {a: 1}}\n", "model.name: unknown model"),
    "missing model": ("name: x\ndata: {name: digits}\n", "model: required key is missing"),
    "missing name": ("data: {name: digits}\nmodel: {name: mlp}\n", "name: required key is missing"),
    "bad name": ("name: 'a b/c'\ndata: {name: digits}\nmodel: {name: mlp}\n", "name: String should match pattern"),
    "model param typo": (
        "name: x\ndata: {name: digits}\nmodel: {name: mlp, hiden: [4]}\n",
        "model.hiden: model 'mlp' has no parameter",
    ),
    "hidden not a list": (
        "name: x\ndata: {name: digits}\nmodel: {name: mlp, hidden: '8,8'}\n",
        "model.hidden: Input should be a valid list",
    ),
    "hidden bool": (
        "name: x\ndata: {name: digits}\nmodel: {name: mlp, hidden: [true]}\n",
        "model.hidden[0]: Input should be a valid integer",
    ),
    "epochs zero": (BASE + "trainer: {epochs: 0}\n", "trainer.epochs: Input should be greater than or equal to 1"),
    "epochs bool": (BASE + "trainer: {epochs: true}\n", "trainer.epochs: Input should be a valid integer"),
    "lr bool": (BASE + "trainer: {lr: true}\n", "trainer.lr: Input should be a valid number"),
    "lr nan": (BASE + "trainer: {lr: .nan}\n", "trainer.lr: Input should be a finite number"),
    "lr too big": (BASE + "trainer: {lr: 11}\n", "trainer.lr: Input should be less than or equal to 10"),
    "unknown optimizer": (BASE + "trainer: {optimizer: rmsprop}\n", "trainer.optimizer: Input should be"),
    "trainer typo": (BASE + "trainer: {lrr: 0.1}\n", "trainer.lrr: unknown key; accepted:"),
    "trainer is a list": (BASE + "trainer: []\n", "trainer: Input should be a valid dictionary"),
    "negative seed": (BASE + "seed: -1\n", "seed: Input should be greater than or equal to 0"),
    "val fraction": (
        "name: x\ndata: {name: digits, val_fraction: 1.5}\nmodel: {name: mlp}\n",
        "data.val_fraction: val_fraction must be",
    ),
    "fractions sum": (
        "name: x\ndata: {name: digits, val_fraction: 0.6, test_fraction: 0.5}\nmodel: {name: mlp}\n",
        "must sum to less than 1",
    ),
    "missing data root": (
        "name: x\ndata: {name: fashion_mnist, root: /no/such/folder}\nmodel: {name: mlp}\n",
        "data.root: root '/no/such/folder' is not a folder",
    ),
    "growth not a mapping": (BASE + "growth: 3\n", "growth: Input should be a valid dictionary"),
    "growth no trigger": (BASE + "growth: {max_width: 8}\n", "growth.trigger: required key is missing"),
    "unknown trigger": (BASE + "growth: {trigger: {name: plato}}\n", "growth.trigger.name: unknown trigger"),
    "trigger param typo": (
        BASE + "growth: {trigger: {name: schedule, every_step: 3}}\n",
        "growth.trigger.every_step: trigger 'schedule' has no parameter",
    ),
    "trigger param range": (
        BASE + "growth: {trigger: {name: schedule, every_steps: 0}}\n",
        "growth.trigger.every_steps",
    ),
    "unknown initializer": (
        BASE + GROW.replace("}}", "}, initializer: {name: rand}}"),
        "growth.initializer.name: unknown initializer",
    ),
    "growth typo": (
        BASE + "growth: {trigger: {name: schedule}, max_widht: 8}\n",
        "growth.max_widht: unknown key; accepted:",
    ),
    "max width below hidden": (
        BASE + "growth: {trigger: {name: schedule}, max_width: 2}\n",
        "growth.max_width: smaller than the initial width",
    ),
    "unknown growth site": (
        BASE + "growth: {trigger: {name: schedule}, sites: [hidden.7]}\n",
        "growth.sites: not sites of this model",
    ),
    "nas typo": (
        "name: x\ndata: {name: digits, image: true}\nmodel: {name: darts_supernet}\nnas: {method: darts, ordr: 2}\n",
        "nas.ordr: unknown key; accepted:",
    ),
    "unknown nas method": (
        "name: x\ndata: {name: digits, image: true}\nmodel: {name: darts_supernet}\nnas: {method: dart}\n",
        "nas.method: unknown NAS method 'dart'",
    ),
    "plasticity typo": (
        "name: x\ndata: {name: digits}\nmodel: {name: mlp}\ntrainer: {epochs: 5}\nplasticity: {cycle: 5}\n",
        "plasticity.cycle: unknown key; accepted:",
    ),
    "plasticity with growth": (
        BASE + GROW + "trainer: {epochs: 5}\nplasticity: {cycles: 5}\n",
        "the Grow-vs-Prune protocol edits unit masks",
    ),
    "unknown metric": (
        BASE + GROW + "search: {metric: val/acc2}\n",
        "search.metric: not a metric that trials of this experiment report",
    ),
    "metric of another kind": (BASE + GROW + "search: {metric: nas/gap}\n", "search.metric: not a metric"),
    "unknown sampler": (BASE + "search: {sampler: {name: tpee}}\n", "search.sampler.name: unknown sampler"),
    "sampler param": (
        BASE + "search: {sampler: {name: tpe, n_startup: 3}}\n",
        "search.sampler.n_startup: sampler 'tpe' has no parameter",
    ),
    "space path": (
        BASE + GROW + "search: {space: {trainer.lrr: {type: float, low: 0.01, high: 0.1}}}\n",
        "with trainer.lrr=0.01: trainer.lrr: unknown key; accepted:",
    ),
    "space section": (
        BASE + "search: {space: {trainr.lr: {type: float, low: 0.01, high: 0.1}}}\n",
        "with trainr.lr=0.01: trainr: unknown key; accepted:",
    ),
    "space inverted": (
        BASE + "search: {space: {trainer.lr: {type: float, low: 0.1, high: 0.01}}}\n",
        "'low' (0.1) must not exceed 'high' (0.01)",
    ),
    "space log zero": (
        BASE + "search: {space: {trainer.lr: {type: float, low: 0.0, high: 0.1, log: true}}}\n",
        "log scale needs low > 0",
    ),
    "space bad bound": (
        BASE + "search: {space: {trainer.epochs: {type: int, low: 0, high: 3}}}\n",
        "with trainer.epochs=0",
    ),
    "space file missing": (BASE + "search: {space: no_such_space}\n", "search-space file not found"),
    "space choice unknown": (
        BASE + GROW + "search: {space: {growth.trigger.name: {type: categorical, choices: [plato]}}}\n",
        "unknown trigger",
    ),
    "constraint nan": (
        BASE + "search: {constraints: ['cost/latency_ms <= nan']}\n",
        "search.constraints[0].value: Input should be a finite number",
    ),
    "constraint syntax": (
        BASE + "search: {constraints: ['cost/latency_ms < 2']}\n",
        "a constraint reads 'METRIC <= VALUE'",
    ),
    "one objective": (BASE + "search: {objectives: [{metric: val/acc, mode: max}]}\n", "objectives: give two or more"),
    "objectives with cmaes": (
        BASE
        + "search: {sampler: {name: random}, objectives: [{metric: val/acc, mode: max}, {metric: cost/params, mode: min}], constraints: ['cost/params <= 9']}\n",
        "ignores constraints",
    ),
    "grid with float": (
        BASE + "search: {sampler: {name: grid}, space: {trainer.lr: {type: float, low: 0.01, high: 0.1}}}\n",
        "enumerates a grid",
    ),
    "pbt without mutate": (BASE + "search: {scheduler: {name: pbt}}\n", "scheduler 'pbt' needs scheduler.mutate"),
    "gpu fraction": (BASE + "resources: {gpu: 1.5}\n", "resources.gpu"),
    "gpu inf": (BASE + "resources: {gpu: .inf}\n", "resources.gpu: Input should be a finite number"),
    "cpu zero": (BASE + "resources: {cpu: 0}\n", "resources.cpu: Input should be greater than 0"),
    "cpu beyond the machine": (BASE + "resources: {cpu: 4096}\n", "resources.cpu: a trial asks for 4096 CPU, but this"),
    "gpus beyond the machine": (
        BASE + "resources: {gpu: 4096}\ntrainer: {device: auto}\n",
        "resources.gpu: a trial asks for 4096 GPU, but this machine has",
    ),
    "gpu with cpu device": (
        BASE + "resources: {gpu: 1}\ntrainer: {device: cpu}\n",
        "trials ask Ray for a GPU but trainer.device is 'cpu'",
    ),
    "tracking plain path": (
        BASE + "tracking: {uri: mlflow.db}\n",
        "tracking.uri: a tracking URI such as sqlite:///mlflow.db",
    ),
    "tracking two slashes": (BASE + "tracking: {uri: 'sqlite://mlflow.db'}\n", "sqlite URIs have three slashes"),
    "tracking file store": (BASE + "tracking: {uri: 'file:///tmp/mlruns'}\n", "the file store is in maintenance mode"),
    "latency batch size": (BASE + "costs: {latency: {batch_sizes: [0]}}\n", "costs.latency.batch_sizes"),
    "internal key": (BASE + "kinds: {}\n", "kinds: unknown key; accepted:"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_reports_it_with_exit_2(case, tmp_path, capsys):
    text, expected = CASES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2, case
    err = capsys.readouterr().err
    assert expected in err, f"{case}: expected {expected!r} in:\n{err}"
    assert "Traceback" not in err and "internal error" not in err


def test_run_on_malformed_files_starts_nothing(tmp_path):
    """One process runs `growray run` on every file: none starts Ray, none writes a store or a folder."""
    files = []
    for i, case in enumerate(sorted(CASES)):
        path = tmp_path / "files" / f"{i}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(CASES[case][0])
        files.append(str(path))
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import sys; from growray.cli import main\n"
        "codes = [main(['run', f]) for f in sys.argv[1:]]\n"
        "assert 'ray' not in sys.modules, 'run imported Ray for an invalid file'\n"
        "print(codes)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *files], cwd=work, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == str([2] * len(files))
    assert list(Path(work).iterdir()) == [], "an invalid file created files"
    assert "Traceback" not in res.stderr
