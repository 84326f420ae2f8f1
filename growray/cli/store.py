"""``growray ls | ui | pareto``: read the tracking store (never create one)."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from growray import api
from growray.cli._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK

__all__ = ["register"]


def cmd_ls(args: argparse.Namespace) -> int:
    try:
        uri = api.absolute_tracking_uri(args.tracking_uri)
        rows = api.list_sweeps(uri, args.experiment)
    except (ValueError, LookupError, ConnectionError) as exc:
        print(f"growray ls: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if not rows:
        print(f"no sweeps in {uri}")
        return EXIT_OK
    # result: the sweep's objective(s), as on its parent run and in its final table
    print(api.format_table(rows, ["experiment", "name", "status", "start_time", "n_trials", "result", "run_id"]))
    return EXIT_OK


class _Stopped(BaseException):
    """SIGINT, SIGTERM or SIGHUP reached ``growray ui``. A BaseException, like KeyboardInterrupt,
    so that no ``except Exception`` in the code it interrupts (MLflow's client while the links
    are listed) swallows it."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def cmd_ui(args: argparse.Namespace) -> int:
    """Start ``mlflow server`` on the store; SIGINT (Ctrl-C), SIGTERM and SIGHUP stop it."""
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt (`growray ui &`, then `kill -INT`)
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, _raise_stopped) for s in stops}
    try:
        try:
            uri = api.absolute_tracking_uri(args.tracking_uri)
            proc = api.start_ui(uri, host=args.host, port=args.port)
        except (OSError, ValueError, LookupError, RuntimeError) as exc:  # TimeoutError is an OSError
            print(f"growray ui: {exc}", file=sys.stderr)
            return EXIT_INVALID
        try:
            print(f"MLflow UI for {uri}: {proc.url}  (Ctrl-C to stop)")
            links = proc.links()
            for name, link in links[:5]:
                print(f"  {name}: {link}")
            if len(links) > 5:
                print(f"  ... {len(links) - 5} more experiments (the 'Model training' tab of {proc.url})")
            sys.stdout.flush()
            code = proc.wait()
        finally:
            proc.stop()
        print(
            f"growray ui: mlflow server exited by itself (code {code}); its output ends with:\n{proc.log_tail()}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (KeyboardInterrupt, _Stopped):  # start_ui stops a server it started before raising
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return EXIT_OK


def cmd_pareto(args: argparse.Namespace) -> int:
    """The Pareto front of an experiment's latest sweep (or ``--run-id``), from MLflow alone."""
    try:
        run_id, report = api.pareto_front(args.experiment, tracking_uri=args.tracking_uri, run_id=args.run_id)
    except api.ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except LookupError as exc:
        print(f"growray pareto: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as exc:
        print(f"growray pareto: {exc}", file=sys.stderr)
        return EXIT_INVALID
    modes = ", ".join(f"{m} {d}" for m, d in zip(report.metrics, report.modes, strict=True))
    print(f"sweep run {run_id}: {len(report.front)} of {len(report.rows)} trials on the front ({modes})")
    print(report.table(only_front=not args.all))
    for warning in report.warnings():
        print(f"growray pareto: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    sp = sub.add_parser("ls", help="list past sweeps recorded in MLflow")
    sp.add_argument("--tracking-uri", help="default: sqlite:///mlflow.db in this folder")
    sp.add_argument("--experiment", help="only this MLflow experiment")
    sp.set_defaults(fn=cmd_ls)

    sp = sub.add_parser("ui", help="start the MLflow UI on the tracking store (bound to 127.0.0.1)")
    sp.add_argument("--tracking-uri", help="default: sqlite:///mlflow.db in this folder")
    sp.add_argument(
        "--host",
        default="127.0.0.1",
        help="bind address (default 127.0.0.1; other hosts also need MLflow's --allowed-hosts)",
    )
    sp.add_argument("--port", type=int, default=5000)
    sp.set_defaults(fn=cmd_ui)

    sp = sub.add_parser("pareto", help="print the Pareto front of an experiment's latest sweep (from MLflow alone)")
    sp.add_argument("experiment", help="an experiment file, or the MLflow experiment name")
    sp.add_argument("--tracking-uri", help="default: the file's tracking.uri, else sqlite:///mlflow.db")
    sp.add_argument("--run-id", help="a specific sweep (parent) run instead of the latest")
    sp.add_argument("--all", action="store_true", help="list every trial, front marked")
    sp.set_defaults(fn=cmd_pareto)
