"""What every command module shares: exit codes, ``--set`` parsing, loading a file."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from growray import api

if TYPE_CHECKING:
    from growray.config import Experiment

__all__ = ["EXIT_FAILED", "EXIT_INVALID", "EXIT_OK", "load", "overrides", "with_file"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def overrides(args: argparse.Namespace) -> dict[str, object]:
    return api.parse_overrides(getattr(args, "set", None) or [])


def load(args: argparse.Namespace, file: str | None = None) -> Experiment | None:
    """The validated experiment, or None after printing every problem (exit 2)."""
    try:
        return api.load(file or args.file, overrides(args))
    except api.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def with_file(sp: argparse.ArgumentParser) -> None:
    """The ``FILE [--set PATH=VALUE ...]`` arguments of commands that read an experiment file."""
    sp.add_argument("file", help="experiment YAML file")
    sp.add_argument(
        "--set", action="append", metavar="PATH=VALUE", help="override a value, e.g. --set trainer.epochs=3"
    )
