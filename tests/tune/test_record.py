"""The sweep record (latest_sweep.json) is untrusted input: JSON only, every key checked,
and a damaged one refused with the file, the key and what was expected."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import pytest

from growray.tune.record import RECORD_FILE, SweepRecord, SweepRecordError, find_sweep


def _experiment_dict(tmp_path: Path) -> dict:
    from conftest import tiny_experiment

    return tiny_experiment(tmp_path).to_dict()


def _record(tmp_path: Path, **changes) -> SweepRecord:
    state = tmp_path / "runs" / "tiny"
    values = {
        "sweep": "tiny-20260101-120000",
        "experiment": {"name": "tiny"},
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "experiment_id": "1",
        "parent_run_id": "0123abcd",
        "storage_path": str(state / "ray" / "tiny-20260101-120000"),
        "ray_root": str(state / "ray"),
        "state_dir": str(state),
        "shared_storage": False,
        "optuna_storage": f"sqlite:///{state / 'optuna.db'}",
        "provenance": {"mlflow.source.git.commit": "abc"},
        "growray_version": "0.1.0",
    }
    values.update(changes)
    return SweepRecord(**values)


def _write(folder: Path, raw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RECORD_FILE
    path.write_text(raw if isinstance(raw, str) else json.dumps(raw))
    return path


def test_a_saved_record_loads_back_equal(tmp_path):
    record = _record(tmp_path)
    path = record.save(tmp_path)
    assert path == tmp_path / RECORD_FILE
    assert [p.name for p in tmp_path.iterdir()] == [RECORD_FILE]  # no temporary file left behind
    loaded = SweepRecord.load(path)
    assert loaded == record and loaded.source == path
    assert json.loads(path.read_text()) == record.to_dict()  # plain JSON, "source" not saved
    assert "source" not in record.to_dict()


def test_missing_unknown_and_mistyped_keys_are_all_named(tmp_path):
    raw = _record(tmp_path).to_dict()
    del raw["parent_run_id"]
    raw["extra"] = 1
    raw["shared_storage"] = "yes"
    raw["provenance"] = {"mlflow.source.git.commit": 3}
    path = _write(tmp_path / "bad", raw)
    with pytest.raises(SweepRecordError) as info:
        SweepRecord.load(path)
    err = info.value
    assert isinstance(err, ValueError) and err.path == path
    text = str(err)
    assert str(path) in text and len(err.problems) == 4
    assert "missing key 'parent_run_id' (the MLflow parent run id as a non-empty string)" in text
    assert "unknown key 'extra'" in text
    assert "key 'shared_storage': expected true or false; got the string \"yes\"" in text
    assert "key 'provenance'" in text and "'mlflow.source.git.commit' is the number 3" in text


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sweep", "../../elsewhere", "the sweep's name"),  # becomes a folder name: one path element only
        ("sweep", "", "the sweep's name"),
        ("tracking_uri", "mlflow.db", "the MLflow tracking URI"),
        ("optuna_storage", None, "the Optuna storage URI"),
        ("experiment", [], "the resolved experiment as a non-empty object"),
        ("experiment_id", 1, "the MLflow experiment id as a non-empty string"),
        ("storage_path", {"a": 1}, "Tune's folder or URI"),
    ],
)
def test_each_field_is_type_checked(tmp_path, key, value, expected):
    raw = {**_record(tmp_path).to_dict(), key: value}
    with pytest.raises(SweepRecordError, match=f"key '{key}': expected {expected}"):
        SweepRecord.load(_write(tmp_path, raw))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ('["a", "list"]', "the top level must be a JSON object; got a list"),
        ('{"sweep": NaN}', "not valid JSON"),
    ],
)
def test_what_is_not_a_json_object_is_refused(tmp_path, text, match):
    with pytest.raises(SweepRecordError, match=match):
        SweepRecord.load(_write(tmp_path, text))


class _Payload:
    """Unpickling this would create a file: the proof that a record is never unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / RECORD_FILE
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(SweepRecordError, match=r"not (UTF-8 text|valid JSON)"):
        SweepRecord.load(path)
    assert not marker.exists()


def test_find_sweep_takes_the_experiment_file_its_folder_or_the_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.yaml").write_text(
        "name: rec\ndata: {name: digits}\nmodel: {name: mlp, hidden: [4]}\noutput_dir: runs\n"
    )
    folder = tmp_path / "runs" / "rec"
    with pytest.raises(FileNotFoundError, match="run `growray run` first"):
        find_sweep(tmp_path / "exp.yaml")
    record = _record(tmp_path, state_dir=str(folder))
    folder.mkdir(parents=True)
    path = record.save(folder)
    assert find_sweep(tmp_path / "exp.yaml") == record
    assert find_sweep(folder) == record and find_sweep(path) == record
    path.write_text("{}")
    with pytest.raises(SweepRecordError, match="12 problem"):
        find_sweep(folder)


def test_the_recorded_experiment_is_validated_again(tmp_path):
    record = _record(tmp_path, experiment=_experiment_dict(tmp_path))
    exp = SweepRecord.load(record.save(tmp_path)).load_experiment()
    assert (exp.name, exp.trainer.epochs, exp.search.num_samples) == ("tiny", 3, 3)
    assert exp.tracking.uri == record.experiment["tracking"]["uri"]
    from growray.config import ConfigError

    broken = {**record.experiment, "trainer": {"epochs": -1}}
    path = _record(tmp_path, experiment=broken).save(tmp_path)
    with pytest.raises(ConfigError, match=f"(?s){re.escape(str(path))} \\(key 'experiment'\\).*trainer.epochs"):
        SweepRecord.load(path).load_experiment()


def test_growray_resume_prints_a_damaged_record_and_exits_2(tmp_path, capsys):
    from growray.cli import main

    raw = _record(tmp_path).to_dict()
    raw["shared_storage"] = 1
    path = _write(tmp_path / "runs" / "tiny", raw)
    assert main(["resume", str(path.parent)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("growray resume: ") and str(path) in err
    assert "key 'shared_storage': expected true or false; got the number 1" in err
