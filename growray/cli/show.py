"""``growray show FILE | plugins``: the resolved experiment, or what is registered."""

from __future__ import annotations

import argparse
from typing import Any

from growray import api
from growray.cli._common import EXIT_INVALID, EXIT_OK, load

__all__ = ["register"]


def cmd_show(args: argparse.Namespace) -> int:
    if args.what == "plugins":
        path = None
        for info in api.plugins():
            if info.path != path:
                path = info.path
                print(f"{path}:")
            print(f"  {info.name:<12} {info.description}")
            if info.params:
                print(f"  {'':<12} {', '.join(f'{k}={v!r}' for k, v in info.params.items())}")
        return EXIT_OK
    exp = load(args, args.what)
    if exp is None:
        return EXIT_INVALID
    print(api.to_yaml(exp.to_dict()), end="")
    return EXIT_OK


def register(sub: Any) -> None:
    sp = sub.add_parser(
        "show", help="'show FILE': the resolved experiment; 'show plugins': registered names and parameters"
    )
    sp.add_argument("what", help="an experiment file, or 'plugins'")
    sp.add_argument("--set", action="append", metavar="PATH=VALUE")
    sp.set_defaults(fn=cmd_show)
