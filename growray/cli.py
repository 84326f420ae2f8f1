"""``growray``: validate | run | resume | ls | pareto | ui | retrain | export | show.

The command line is a thin layer over :mod:`growray.api`: it parses arguments, calls the API
and prints. Exit codes: 0 success, 1 a sweep ran but every trial failed (or it was
interrupted), 2 invalid experiment file or arguments (nothing was started).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from growray import api

if TYPE_CHECKING:
    from growray.config import Experiment
    from growray.tune.results import SweepResult

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return api.parse_overrides(getattr(args, "set", None) or [])


def _load(args: argparse.Namespace, file: str | None = None) -> Experiment | None:
    """The validated experiment, or None after printing every problem (exit 2)."""
    try:
        return api.load(file or args.file, _overrides(args))
    except api.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    exp = _load(args)
    if exp is None:
        return EXIT_INVALID
    space = exp.search.space
    print(
        f"{args.file}: OK — experiment {exp.name!r} ({exp.kind}), {exp.search.num_samples} trials, "
        f"{len(space)} searched parameter(s): {', '.join(space) or '(none)'}"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    exp = _load(args)
    if exp is None:
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
    if best is not None and best.metric is not None:
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
    for r in rows:
        if isinstance(r.get("best_val_acc"), float):
            r["best_val_acc"] = f"{r['best_val_acc']:.4f}"
    print(api.format_table(rows, ["experiment", "name", "status", "start_time", "n_trials", "best_val_acc", "run_id"]))
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    try:
        run_id, metrics = api.retrain(args.run_id, tracking_uri=args.tracking_uri, overrides=_overrides(args))
    except (api.ConfigError, ValueError, LookupError, ConnectionError) as exc:
        print(f"growray retrain: {exc}", file=sys.stderr)
        return EXIT_INVALID
    shown = " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if "/retrain_" in k)
    print(f"retrained {args.run_id} into MLflow run {run_id}: {shown}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    try:
        reports = api.export(
            args.target,
            formats=args.format or ["onnx"],
            out=args.out,
            tracking_uri=args.tracking_uri,
            pareto=args.pareto,
            latency=args.latency,
            log_model=args.log_model,
            register=args.register,
            tolerance=args.tolerance,
        )
    except api.ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except (ValueError, LookupError, ConnectionError) as exc:  # ExportError is a ValueError
        print(f"growray export: {exc}", file=sys.stderr)
        return EXIT_INVALID
    for r in reports:
        print(f"exported run {r.run_id}{f' ({r.via})' if r.via else ''} to {r.folder}/")
        for c in r.checks:
            print(
                f"  {c.format:<11} {', '.join(c.files):<29} max |logit - PyTorch| {c.max_abs_error:.1e} "
                f"({c.max_scaled_error:.1e} of max(1, |logit|)) on {c.n_samples} held-out samples, "
                f"{c.argmax_agreement:.0%} same class"
            )
        if r.latency:
            head = r.latency[0]
            trained = "n/a" if r.training_latency_ms is None else f"{r.training_latency_ms:.4f} ms"
            print(
                f"  latency     onnxruntime CPU, batch {head.batch_size}, {head.n_threads} thread(s): "
                f"{head.median_ms:.4f} ms (p95 {head.p95_ms:.4f}); training-time cost/latency_ms: {trained}"
            )
        if r.model_uri:
            print(f"  MLflow model {r.model_uri}")
        if r.registered:
            print(f"  registered  models:/{r.registered[0]}/{r.registered[1]}")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    try:
        uri = api.absolute_tracking_uri(args.tracking_uri)
        proc = api.start_ui(uri, host=args.host, port=args.port)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        print(f"growray ui: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        print(f"MLflow UI for {uri}: {proc.url}  (Ctrl-C to stop)", flush=True)
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        proc.stop()
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
    return EXIT_OK


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
    exp = _load(args, args.what)
    if exp is None:
        return EXIT_INVALID
    print(api.to_yaml(exp.to_dict()), end="")
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
        "export", help="write a trial's final network as pt, ONNX or TorchScript files (and an MLflow model)"
    )
    sp.add_argument(
        "target",
        help="a trial or retrain run id, a sweep's parent run id (its best trial), or an experiment file "
        "(its latest sweep's best trial); a NAS search run exports its retrain run",
    )
    sp.add_argument(
        "--format",
        action="append",
        choices=["pt", "onnx", "torchscript"],
        help="repeat for several (default: onnx)",
    )
    sp.add_argument("--out", help="the export folder (default: exports/<run id>; with --pareto, one folder per trial)")
    sp.add_argument("--tracking-uri", help="default: the file's tracking.uri, else sqlite:///mlflow.db in this folder")
    sp.add_argument("--pareto", action="store_true", help="with a sweep: every trial on its Pareto front")
    sp.add_argument(
        "--latency",
        action="store_true",
        help="time the ONNX model with onnxruntime on the CPU under the run's latency protocol; log export/latency_ms",
    )
    sp.add_argument("--log-model", action="store_true", help="log the ONNX model as the run's MLflow model")
    sp.add_argument("--register", metavar="NAME", help="also register it in MLflow's model registry as NAME")
    sp.add_argument(
        "--tolerance",
        type=float,
        default=1e-5,
        help="largest |exported - PyTorch| / max(1, |logit|) accepted on any held-out logit (1e-5)",
    )
    sp.set_defaults(fn=cmd_export)

    sp = sub.add_parser(
        "show", help="'show FILE': the resolved experiment; 'show plugins': registered names and parameters"
    )
    sp.add_argument("what", help="an experiment file, or 'plugins'")
    sp.add_argument("--set", action="append", metavar="PATH=VALUE")
    sp.set_defaults(fn=cmd_show)
    return p


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


if __name__ == "__main__":
    raise SystemExit(main())
