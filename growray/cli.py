"""``growray``: validate | run | resume | ls | pareto | ui | show.

Exit codes: 0 success, 1 a sweep ran but every trial failed (or it was interrupted),
2 invalid experiment file or arguments.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _parse_sets(items: Sequence[str] | None) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"growray: --set takes PATH=VALUE (e.g. trainer.epochs=3); got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _load(args: argparse.Namespace) -> Any:
    from growray.config import ConfigError, load_experiment

    try:
        return load_experiment(args.file, _parse_sets(args.set))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    exp = _load(args)
    if exp is None:
        return EXIT_INVALID
    space = exp.search.space if isinstance(exp.search.space, dict) else {}
    print(
        f"{args.file}: OK — experiment {exp.name!r} ({exp.kind}), {exp.search.num_samples} trials, "
        f"{len(space)} searched parameter(s): {', '.join(space) or '(none)'}"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    exp = _load(args)
    if exp is None:
        return EXIT_INVALID
    from growray.api import prepare_ray_env

    prepare_ray_env(args.address)  # before Ray is imported
    from growray.data import DatasetNotFoundError
    from growray.tune.orchestrate import SetupError, run_sweep

    print(
        f"growray: running {exp.name!r}: {exp.search.num_samples} trials, "
        f"{exp.search.max_concurrent} at a time, {exp.resources.cpu:g} CPU / {exp.resources.gpu:g} GPU each"
    )
    try:
        result = run_sweep(
            exp,
            address=args.address,
            tracking_uri=args.tracking_uri,
            verbose=args.verbose,
            shared_storage=args.shared_storage,
        )
    except (SetupError, DatasetNotFoundError) as exc:  # found before any trial started
        print(f"growray: nothing was started: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return _report(result, exp, resume_hint=args.file)


def _report(result: Any, exp: Any, resume_hint: str) -> int:
    if result.interrupted:
        print(
            f"\nsweep {result.name} was INTERRUPTED after {result.seconds:.0f} s; unfinished trials keep their "
            f"checkpoints.\ncontinue it with: growray resume {resume_hint}",
            file=sys.stderr,
        )
        print(result.table())
        return EXIT_FAILED
    print(f"\nsweep {result.name} finished in {result.seconds:.0f} s\n")
    print(result.table())
    best = result.best
    if result.pareto is not None:
        print(
            f"\nPareto front ({len(result.pareto.front)} of {len(result.pareto.rows)} trials; tagged growray.pareto=true):"
        )
        print(result.pareto.table())
    print(f"\nMLflow: {result.tracking_uri} (experiment {exp.experiment_name!r}, parent run {result.parent_run_id})")
    if best is not None:
        print(f"best trial: {best.trial_id}  {result.metric}={best.metric:.4f}  MLflow run {best.mlflow_run_id}")
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
    from growray.api import prepare_ray_env

    prepare_ray_env(args.address)
    from growray.tune.orchestrate import SetupError, find_sweep, resume_sweep

    try:  # the record is untrusted: SweepRecordError and ConfigError (both ValueErrors) name the file
        record = find_sweep(args.target)
        exp = record.load_experiment()
    except (FileNotFoundError, ValueError) as exc:
        print(f"growray resume: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(f"growray: resuming sweep {record.sweep} (MLflow parent run {record.parent_run_id})")
    try:
        result = resume_sweep(
            args.target, address=args.address, verbose=args.verbose, shared_storage=args.shared_storage
        )
    except SetupError as exc:
        print(f"growray resume: nothing was started: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return _report(result, exp, resume_hint=args.target)


def _uri(args: argparse.Namespace) -> str:
    from growray.tune.orchestrate import absolute_tracking_uri

    return absolute_tracking_uri(args.tracking_uri or "sqlite:///mlflow.db")


def cmd_ls(args: argparse.Namespace) -> int:
    from growray.tracking import list_sweeps
    from growray.tracking.tables import format_table

    rows = list_sweeps(_uri(args), args.experiment)
    if not rows:
        print(f"no sweeps in {_uri(args)}")
        return EXIT_OK
    for r in rows:
        if isinstance(r.get("best_val_acc"), float):
            r["best_val_acc"] = f"{r['best_val_acc']:.4f}"
    print(format_table(rows, ["experiment", "name", "status", "start_time", "n_trials", "best_val_acc", "run_id"]))
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from growray.api import ConfigError, retrain

    try:
        run_id, metrics = retrain(args.run_id, tracking_uri=args.tracking_uri, overrides=_parse_sets(args.set))
    except (ConfigError, ValueError, ConnectionError) as exc:
        print(f"growray retrain: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(
        f"retrained {args.run_id} into MLflow run {run_id}: "
        f"nas/retrain_val_acc={metrics['nas/retrain_val_acc']:.4f} nas/retrain_test_acc={metrics['nas/retrain_test_acc']:.4f}"
    )
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    from growray.tracking import start_ui, wait_healthy

    uri = _uri(args)
    proc = start_ui(uri, host=args.host, port=args.port)
    url = f"http://{args.host}:{args.port}"
    try:
        wait_healthy(url, timeout=120, process=proc)
        print(f"MLflow UI for {uri}: {url}  (Ctrl-C to stop)", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        proc.stop()
    return EXIT_OK


def cmd_pareto(args: argparse.Namespace) -> int:
    """The Pareto front of an experiment's latest sweep (or ``--run-id``), from MLflow alone."""
    from pathlib import Path

    from growray.tracking import latest_sweep_run, sweep_front

    name, uri = args.experiment, args.tracking_uri
    if Path(args.experiment).suffix in (".yaml", ".yml") and Path(args.experiment).is_file():
        args.file, args.set = args.experiment, None
        exp = _load(args)
        if exp is None:
            return EXIT_INVALID
        name, uri = exp.experiment_name, uri or exp.tracking.uri
    args.tracking_uri = uri
    uri = _uri(args)
    try:
        run_id = args.run_id or getattr(latest_sweep_run(uri, name), "info", None)
        if run_id is None:
            print(f"no sweep recorded for experiment {name!r} in {uri}", file=sys.stderr)
            return EXIT_FAILED
        run_id = run_id if isinstance(run_id, str) else run_id.run_id
        report = sweep_front(uri, run_id)
    except ValueError as exc:
        print(f"growray pareto: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(
        f"sweep run {run_id}: {len(report.front)} of {len(report.rows)} trials on the front "
        f"({', '.join(f'{m} {d}' for m, d in zip(report.metrics, report.modes))})"
    )
    print(report.table(only_front=not args.all))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    if args.what == "plugins":
        from growray.api import plugins

        path = None
        for info in plugins():
            if info.path != path:
                path = info.path
                print(f"{path}:")
            print(f"  {info.name:<12} {info.description}")
            if info.params:
                print(f"  {'':<12} {', '.join(f'{k}={v!r}' for k, v in info.params.items())}")
        return EXIT_OK
    args.file = args.what
    exp = _load(args)
    if exp is None:
        return EXIT_INVALID
    import yaml

    print(yaml.safe_dump(exp.to_dict(), sort_keys=False), end="")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="growray", description="Network-growth and NAS sweeps on Ray Tune + Optuna, recorded in MLflow."
    )
    from growray import __version__

    p.add_argument("--version", action="version", version=f"growray {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_file(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("file", help="experiment YAML file")
        sp.add_argument(
            "--set", action="append", metavar="PATH=VALUE", help="override a value, e.g. --set trainer.epochs=3"
        )

    sp = sub.add_parser("validate", help="check an experiment file; every error with its YAML path (exit 2)")
    with_file(sp)
    sp.set_defaults(fn=cmd_validate)

    sp = sub.add_parser("run", help="validate, then run the sweep on Ray Tune and record it in MLflow")
    with_file(sp)
    sp.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT (default: start Ray locally)")
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (overrides tracking.uri), e.g. http://127.0.0.1:5000")
    sp.add_argument("--verbose", action="store_true", help="forward the trials' own logs to this terminal")
    sp.add_argument(
        "--shared-storage",
        action="store_true",
        help="output_dir is a folder mounted at the same path on every node (NFS...); without it, "
        "a plain folder is refused on a multi-node cluster (or give output_dir as file:///... or s3://...)",
    )
    sp.set_defaults(fn=cmd_run)

    sp = sub.add_parser(
        "resume", help="continue an interrupted or killed sweep from its checkpoints (same MLflow and Optuna records)"
    )
    sp.add_argument("target", help="the experiment file, or its output folder (runs/<name>)")
    sp.add_argument("--address", help="join a running Ray cluster: 'auto' or HOST:PORT")
    sp.add_argument("--verbose", action="store_true")
    sp.add_argument(
        "--shared-storage",
        action="store_true",
        help="output_dir is a folder mounted at the same path on every node (NFS...); without it, "
        "a plain folder is refused on a multi-node cluster (or give output_dir as file:///... or s3://...)",
    )
    sp.set_defaults(fn=cmd_resume)

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

    sp = sub.add_parser(
        "retrain", help="train the architecture a DARTS/ENAS search run found from scratch, into a linked run"
    )
    sp.add_argument("run_id", help="the MLflow run id of a search trial (it holds genotype.json)")
    sp.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="override the search run's config, e.g. nas.retrain.epochs=20 nas.retrain.channels=36",
    )
    sp.add_argument("--tracking-uri", help="default: sqlite:///mlflow.db in this folder")
    sp.set_defaults(fn=cmd_retrain)

    sp = sub.add_parser(
        "show", help="'show FILE': the resolved experiment; 'show plugins': registered names and parameters"
    )
    sp.add_argument("what", help="an experiment file, or 'plugins'")
    sp.add_argument("--set", action="append", metavar="PATH=VALUE")
    sp.set_defaults(fn=cmd_show)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
