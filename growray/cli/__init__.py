"""``growray``: validate | run | resume | ls | pareto | ui | retrain | export | report | show.

The command line is a thin layer over :mod:`growray.api`: it parses arguments, calls the API
and prints. Each command group is one module of this package with a ``register(sub)``
function that adds its sub-parsers (``sweep``: validate, run, resume; ``store``: ls, ui,
pareto; ``models``: retrain, export; ``show``); a new command is a new module listed in
``COMMANDS``. Exit codes: 0 success, 1 a sweep ran but every trial failed (or it was
interrupted), 2 invalid experiment file or arguments (nothing was started), or a full disk.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence

from growray.cli import models, report, show, store, sweep
from growray.cli._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_INVALID", "EXIT_OK", "build_parser", "main"]

#: The command modules, in the order ``growray --help`` lists them.
COMMANDS = (sweep, store, models, report, show)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="growray", description="Network-growth and NAS sweeps on Ray Tune + Optuna, recorded in MLflow."
    )
    from growray import __version__

    p.add_argument("--version", action="version", version=f"growray {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def _disk_full(exc: BaseException) -> str | None:
    """What filled up, when ``exc`` (or an exception it was raised from) is a full disk or
    quota: ``OSError`` ENOSPC/EDQUOT, or sqlite's "database or disk is full" through MLflow."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{seen.strerror}: {seen.filename}" if seen.filename else str(seen.strerror)
        if "database or disk is full" in str(seen):
            return "the MLflow store: database or disk is full"
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except BrokenPipeError:  # `growray show plugins | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:  # a bug, not a mistake in the file: one line, the traceback on request
        if os.environ.get("GROWRAY_TRACEBACK"):
            raise
        full = _disk_full(exc)
        if full is not None:
            print(
                f"growray {args.command}: the disk is full ({full}); free space or move output_dir and "
                "tracking.uri to a larger disk, then `growray resume FILE` (it refuses any state the full "
                "disk left damaged) or run the sweep again; finished trials stay in MLflow",
                file=sys.stderr,
            )
            return EXIT_INVALID
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        at = f" ({where.tb_frame.f_code.co_filename}:{where.tb_lineno})" if where is not None else ""
        print(
            f"growray {args.command}: internal error {type(exc).__name__}: {exc}{at}\n"
            "this is a growray bug: please report it with the traceback (rerun with GROWRAY_TRACEBACK=1)",
            file=sys.stderr,
        )
        return EXIT_FAILED
