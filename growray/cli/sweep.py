"""``growray validate | run | resume``: the commands that start (or check) a sweep."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from growray import api
from growray.cli._common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, load, with_file

if TYPE_CHECKING:
    from growray.config import Experiment
    from growray.tune.results import SweepResult

__all__ = ["register"]


_SHARED_STORAGE_HELP = (
    "output_dir is a folder mounted at the same path on every node (NFS...); without it, "
    "a plain folder is refused on a multi-node cluster (or give output_dir as file:///... or s3://...)"
)


def cmd_validate(args: argparse.Namespace) -> int:
    exp = load(args)
    if exp is None:
        return EXIT_INVALID
    issues = api.resource_issues(exp, args.address)
    if issues:
        print(api.ConfigError(issues, args.file), file=sys.stderr)
        return EXIT_INVALID
    space = exp.search.space
    print(
        f"{args.file}: OK — experiment {exp.name!r} ({exp.kind}), {exp.search.num_samples} trials, "
        f"{len(space)} searched parameter(s): {', '.join(space) or '(none)'}"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    exp = load(args)
    if exp is None:
        return EXIT_INVALID
    issues = api.resource_issues(exp, args.address, local_only=True)  # a cluster is checked once joined
    if issues:
        print(api.ConfigError(issues, args.file), file=sys.stderr)
        return EXIT_INVALID
    print(
        f"growray: running {exp.name!r}: {exp.search.num_samples} trials, "
        f"{exp.search.max_concurrent} at a time, {exp.resources.cpu:g} CPU / {exp.resources.gpu:g} GPU each"
    )
    try:
        result = api.run(
            exp,
            address=args.address,
            tracking_uri=args.tracking_uri,
            verbose=args.verbose,
            shared_storage=args.shared_storage,
        )
    except api.NOTHING_STARTED as exc:  # found before any trial started
        print(f"growray: nothing was started: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return _report(result, exp, resume_hint=args.file)


def _report(result: SweepResult, exp: Experiment, resume_hint: str) -> int:
    counts = ", ".join(
        f"{result.count(s)} {s.lower()}"
        for s in ("TERMINATED", "STOPPED", "INTERRUPTED", "ERROR", "DIVERGED")
        if result.count(s)
    )
    if result.interrupted:
        print(
            f"\nsweep {result.name} was INTERRUPTED after {result.seconds:.0f} s ({counts}); unfinished trials "
            f"keep their checkpoints.\ncontinue it with: growray resume {resume_hint}",
            file=sys.stderr,
        )
        print(result.table())
        return EXIT_FAILED
    print(f"\nsweep {result.name} finished in {result.seconds:.0f} s: {len(result.trials)} trials ({counts})\n")
    print(result.table())
    best = result.best
    if result.pareto is not None:
        print(
            f"\nPareto front ({len(result.pareto.front)} of {len(result.pareto.rows)} trials; tagged growray.pareto=true):"
        )
        print(result.pareto.table())
    for warning in result.warnings():
        print(f"growray: warning: {warning}", file=sys.stderr)
    print(f"\nMLflow: {result.tracking_uri} (experiment {exp.experiment_name!r}, parent run {result.parent_run_id})")
    if best is not None and best.metric is not None:
        test = f"  {result.test_metric}={best.test_acc:.4f}" if best.test_acc is not None else ""
        print(f"best trial: {best.trial_id}  {result.metric}={best.metric:.4f}{test}  MLflow run {best.mlflow_run_id}")
    print(f"compare the trials: growray ui --tracking-uri {result.tracking_uri}")
    if result.trials and result.n_errors == len(result.trials):
        print("growray: every trial failed; see the errors above and the growray.failure tags", file=sys.stderr)
        return EXIT_FAILED
    if len(result.trials) < exp.search.num_samples and exp.search.time_budget_s is None:
        print(
            f"growray: only {len(result.trials)} of {exp.search.num_samples} trials ran; "
            f"continue with: growray resume {resume_hint}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    try:  # the record is untrusted: SweepRecordError and ConfigError (both ValueErrors) name the file
        record = api.find_sweep(args.target)
        exp = record.load_experiment()
    except (FileNotFoundError, ValueError) as exc:
        print(f"growray resume: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"growray: resuming sweep {record.sweep} (MLflow parent run {record.parent_run_id})")
    try:
        result = api.resume(args.target, address=args.address, verbose=args.verbose, shared_storage=args.shared_storage)
    except api.NothingToResume as exc:
        print(f"growray resume: {exc}")
        return EXIT_OK
    except api.NOTHING_STARTED as exc:
        print(f"growray resume: nothing was started: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return _report(result, exp, resume_hint=args.target)


def register(sub: Any) -> None:
    sp = sub.add_parser("validate", help="check an experiment file; every error with its YAML path (exit 2)")
    with_file(sp)
    sp.add_argument(
        "--address",
        help="check resources against this Ray cluster ('auto' or HOST:PORT; joined for the check) "
        "instead of this machine",
    )
    sp.set_defaults(fn=cmd_validate)

    sp = sub.add_parser("run", help="validate, then run the sweep on Ray Tune and record it in MLflow")
    with_file(sp)
    sp.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: start Ray locally)")
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.uri), e.g. http://127.0.0.1:5000")
    sp.add_argument("--verbose", action="store_true", help="forward the trials' own logs to this terminal")
    sp.add_argument("--shared-storage", action="store_true", help=_SHARED_STORAGE_HELP)
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser(
        "resume", help="continue an interrupted or killed sweep from its checkpoints (same MLflow and Optuna records)"
    )
    sp.add_argument("target", help="the experiment file, or its output folder (runs/<name>)")
    sp.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT")
    sp.add_argument("--verbose", action="store_true")
    sp.add_argument("--shared-storage", action="store_true", help=_SHARED_STORAGE_HELP)
    sp.set_defaults(fn=cmd_resume)
