"""A NAS method may register its own settings model: ``nas: {method: m, m: {...}}``, validated
with errors at ``nas.m.<key>`` that list the accepted keys, and written back under the method."""

from __future__ import annotations

import pytest
from pydantic import Field

from growray.config import ConfigError, Section, validate_dict
from growray.kinds.nas import NAS_METHODS, NasHook


class ProbeSettings(Section):
    tau_max: float = Field(10.0, gt=0)
    tau_min: float = Field(0.1, gt=0)


@pytest.fixture
def probe_method():
    NAS_METHODS.register("probe_method", supernet="darts_supernet", space="darts_cnn", settings=ProbeSettings)(
        type("ProbeHook", (NasHook,), {})
    )
    yield "probe_method"
    NAS_METHODS.unregister("probe_method")


def _exp(nas):
    return {
        "name": "x",
        "data": {"name": "digits", "image": True},
        "model": {"name": "darts_supernet", "layers": 1, "channels": 2, "nodes": 1, "multiplier": 1},
        "trainer": {"epochs": 2},
        "nas": nas,
    }


def test_settings_default_and_round_trip(probe_method):
    exp = validate_dict(_exp({"method": probe_method, probe_method: {"tau_max": 5}}))
    assert exp.kinds["nas"].settings == ProbeSettings(tau_max=5)
    resolved = exp.to_dict()["nas"]
    assert resolved[probe_method] == {"tau_max": 5.0, "tau_min": 0.1} and "settings" not in resolved
    assert validate_dict(exp.to_dict()) == exp
    assert validate_dict(_exp({"method": probe_method})).kinds["nas"].settings == ProbeSettings()


def test_settings_errors_name_their_path_and_the_accepted_keys(probe_method):
    with pytest.raises(ConfigError) as info:
        validate_dict(_exp({"method": probe_method, probe_method: {"tau_maxx": 5, "tau_min": -1}}))
    text = str(info.value)
    assert "nas.probe_method.tau_maxx: unknown key; accepted: tau_max, tau_min (did you mean 'tau_max'?)" in text
    assert "nas.probe_method.tau_min: Input should be greater than 0" in text


def test_a_method_without_settings_refuses_a_settings_section():
    with pytest.raises(ConfigError, match=r"nas\.darts: unknown key"):
        validate_dict(_exp({"method": "darts", "darts": {"order": 2}}))
    assert "settings" not in validate_dict(_exp({"method": "darts"})).to_dict()["nas"]


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(
        ConfigError, match=r"nas\.method: unknown NAS method 'dart'; registered: darts, enas, gdas, pcdarts"
    ):
        validate_dict(_exp({"method": "dart"}))


def test_settings_is_not_a_file_key():
    with pytest.raises(ConfigError) as info:
        validate_dict(_exp({"method": "darts", "ordr": 2}))
    message = next(i.message for i in info.value.issues if i.path == "nas.ordr")
    assert "settings" not in message and "accepted: arch_betas" in message
    with pytest.raises(ConfigError, match=r"a method's settings go under nas\.<method>"):
        validate_dict(_exp({"method": "darts", "settings": {}}))
