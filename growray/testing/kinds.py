"""Conformance suite for experiment kinds: subclass, name the kind and give a small valid
experiment that uses it; pytest collects the checks.

    class TestMyKind(KindConformance):
        kind_name = "my_kind"
        example = {"name": "x", "data": {"name": "digits"}, "model": {"name": "mlp"}, "my_kind": {...}}

It checks the contract of ``growray.kinds.Kind`` that the core relies on: the kind is
registered and active when its section is set; its section is closed (an unknown key is an
error at its YAML path that lists the accepted keys) and frozen; the example validates,
round-trips through ``to_dict`` and tags its runs; one epoch through the real trainer
reports only metrics that the core or the kind declares, and no hook overwrites another's;
and a checkpoint taken after that epoch restores the hooks' state so that training
continues exactly as without the interruption.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from growray.config import ConfigError, Section, validate_dict
from growray.data import load_dataset
from growray.kinds import KINDS, get_kind
from growray.metrics import CORE_METRICS, is_known_metric, known_metrics
from growray.plugins import load_plugins
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

__all__ = ["KindConformance"]


class KindConformance:
    """Checks every kind must pass (module docstring). Attributes to set in a subclass:

    Attributes:
        kind_name: the registered name (also the section key).
        example: a small valid experiment (a dict as in a YAML file) that sets the section; keep
            it to a few seconds of CPU training for two epochs.
    """

    kind_name: ClassVar[str]
    example: ClassVar[dict[str, Any]]

    def _example(self, **changes: Any) -> dict[str, Any]:
        raw = copy.deepcopy(self.example)
        raw.setdefault("costs", {"latency": {"enabled": False}})
        raw.update(changes)
        return raw

    def test_registered_and_loaded_by_the_plugin_loader(self) -> None:
        load_plugins()
        assert self.kind_name in KINDS
        kind = get_kind(self.kind_name)
        assert kind.name == self.kind_name, "Kind.name is the section key and the registered name"
        assert issubclass(kind.section, Section), "a kind's section derives from growray.config.Section"

    def test_example_validates_and_activates_the_kind(self) -> None:
        exp = validate_dict(self._example())
        assert self.kind_name in exp.kinds
        kind = get_kind(self.kind_name)
        assert kind.config(exp) is exp.kinds[self.kind_name]
        assert exp.kind, "runs are tagged growray.kind"
        again = validate_dict(exp.to_dict())
        assert again == exp, "the resolved config validates to the same experiment"
        assert exp.to_dict()[self.kind_name] == exp.kinds[self.kind_name].model_dump(mode="json")

    def test_unknown_key_in_the_section_names_the_path_and_the_accepted_keys(self) -> None:
        raw = self._example()
        raw[self.kind_name] = {**raw[self.kind_name], "no_such_key": 1}
        with pytest.raises(ConfigError) as info:
            validate_dict(raw)
        issues = [i for i in info.value.issues if i.path == f"{self.kind_name}.no_such_key"]
        assert issues, f"expected an issue at {self.kind_name}.no_such_key; got {info.value}"
        accepted = get_kind(self.kind_name).section.file_keys()
        assert "accepted: " + ", ".join(accepted) in issues[0].message

    def test_section_is_frozen(self) -> None:
        section = validate_dict(self._example()).kinds[self.kind_name]
        field = next(iter(type(section).model_fields))
        with pytest.raises(Exception, match="frozen"):
            setattr(section, field, getattr(section, field))

    def test_metric_names_are_declared_and_do_not_shadow_the_core(self) -> None:
        kind = get_kind(self.kind_name)
        assert not set(kind.metrics) & set(CORE_METRICS), "a kind reports its own metrics, not the core's"
        assert all("/" in name for name in [*kind.metrics, *kind.metric_prefixes]), "metric names are namespaced"

    def test_one_epoch_reports_only_declared_metrics(self) -> None:
        raw = self._example()
        raw.setdefault("trainer", {})
        exp = validate_dict(raw)
        dataset = load_dataset(exp.data, seed=exp.seed)
        rec = MemoryRecorder()
        reported: list[dict[str, Any]] = []
        trainer = build_trainer(exp, dataset, recorder=rec, report=lambda m, _: reported.append(m), device="cpu")
        trainer.fit()
        names, prefixes = known_metrics([get_kind(n) for n in exp.kinds])
        logged = set(rec.metrics) | {k for r in reported for k in r if k != "step"}
        unknown = sorted(k for k in logged if not is_known_metric(k, names, prefixes))
        assert unknown == [], f"metrics reported but declared neither by the core nor by the kind: {unknown}"

    def test_checkpoint_restores_the_hooks_exactly(self) -> None:
        """Two epochs straight, or one epoch, a checkpoint, a new trainer from it, one more epoch:
        the same weights and the same metrics."""
        raw = self._example()
        raw["trainer"] = {**raw.get("trainer", {}), "epochs": 2}
        exp = validate_dict(raw)
        dataset = load_dataset(exp.data, seed=exp.seed)
        straight = build_trainer(exp, dataset, device="cpu")
        final = straight.fit()
        with tempfile.TemporaryDirectory() as d:
            kept = Path(d) / "checkpoint"

            def report(metrics: dict[str, Any], ckpt: str | None) -> None:
                if ckpt is not None and metrics["epoch"] == 1:
                    shutil.copytree(ckpt, kept)  # the trainer deletes its folder after the report
                    raise _StopAfterFirstEpoch

            first = build_trainer(exp, dataset, report=report, device="cpu")
            with pytest.raises(_StopAfterFirstEpoch):
                first.fit()
            assert kept.is_dir(), "the trainer reports a checkpoint after the first epoch"
            resumed = build_trainer(exp, dataset, checkpoint_dir=str(kept), device="cpu")
            again = resumed.fit()
        for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
            assert torch.equal(a, b), "a resumed trainer continues exactly (same weights)"
        assert again["val/acc"] == final["val/acc"]


class _StopAfterFirstEpoch(Exception):
    """Raised from the report callback to interrupt a trainer after its first checkpoint."""
