"""``growray retrain | export``: from a recorded run to a retrained or deployable network."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from growray import api
from growray.cli._common import EXIT_INVALID, EXIT_OK, overrides

__all__ = ["register"]


def cmd_retrain(args: argparse.Namespace) -> int:
    try:
        run_id, metrics = api.retrain(args.run_id, tracking_uri=args.tracking_uri, overrides=overrides(args))
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


def register(sub: Any) -> None:
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
