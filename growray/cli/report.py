"""``growray report EXPERIMENT|RUN_ID``: the growth report of a sweep, from MLflow alone."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from growray import api
from growray.cli._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK

__all__ = ["register"]


def cmd_report(args: argparse.Namespace) -> int:
    """Print the same ``growth_report.md`` the sweep's end wrote on its parent run."""
    try:
        run_id, text = api.growth_report(args.target, tracking_uri=args.tracking_uri)
    except api.ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except LookupError as exc:
        print(f"growray report: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as exc:
        print(f"growray report: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"sweep run {run_id}")
    print(text, end="")
    return EXIT_OK


def register(sub: Any) -> None:
    sp = sub.add_parser(
        "report", help="the growth report (arms, baselines, verdicts) of a sweep, read back from MLflow"
    )
    sp.add_argument("target", help="an experiment file, an MLflow experiment name, or a sweep's or trial's run id")
    sp.add_argument("--tracking-uri", default=None, help="the MLflow store (default: the file's, or ./mlflow.db)")
    sp.set_defaults(fn=cmd_report)
