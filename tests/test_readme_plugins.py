"""The README's plug-in tables are ``growray show plugins --markdown``; its quoted space is the file."""

from __future__ import annotations

import re
from pathlib import Path

from growray import api
from growray.cli.show import plugin_tables

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_plugin_tables_are_the_generated_ones(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the space files of the repository
    section = README.split("<!-- plugins:start -->\n", 1)[1].split("\n<!-- plugins:end -->", 1)[0]
    assert section + "\n" == plugin_tables(), "regenerate: growray show plugins --markdown"


def test_every_registered_name_is_in_the_readme(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    section = README.split("<!-- plugins:start -->", 1)[1].split("<!-- plugins:end -->", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE))
    names = {info.name for info in api.plugins()} | {name for name, _, _ in api.space_files()}
    assert names - listed == set()
    assert {"cifar10", "cifar100", "mnist", "cell_network", "darts_supernet", "enas_supernet", "asha"} <= listed


def test_internal_parameters_are_not_listed() -> None:
    section = README.split("<!-- plugins:start -->", 1)[1].split("<!-- plugins:end -->", 1)[0]
    assert "conv_ids" not in section and "hidden_dropin" not in section


def test_the_quoted_quickstart_space_is_the_whole_file() -> None:
    quoted = README.split("# search_spaces/growth_quickstart.yaml", 1)[1].split("```", 1)[0]
    body = [line for line in quoted.splitlines()[1:] if line]
    text = (ROOT / "search_spaces" / "growth_quickstart.yaml").read_text()
    assert body == [line for line in text.splitlines() if line and not line.startswith("#")]
