"""Metric names: the MLflow keys the comparison UI depends on (DESIGN.md). Keep them stable."""

from __future__ import annotations

__all__ = ["KNOWN_METRICS", "METRIC_PREFIXES", "is_known_metric", "width_metric"]

KNOWN_METRICS: dict[str, str] = {
    "train/loss": "mean training loss (per logged step; per epoch at epoch ends)",
    "train/acc": "training accuracy over the epoch",
    "train/lr": "learning rate in use (PBT mutates it)",
    "val/loss": "validation loss",
    "val/acc": "validation accuracy",
    "test/loss": "test loss (end of training)",
    "test/acc": "test accuracy (end of training)",
    "best/val_acc": "best validation accuracy so far",
    "cost/params": "current trainable parameter count",
    "cost/flops": "forward FLOPs per sample",
    "cost/train_seconds": "cumulative training wall time",
    "cost/train_flops": "cumulative training compute: (forward + backward) FLOPs x samples seen, following growth",
    "cost/gpu_seconds": "cumulative training time x the trial's GPU share (GPU trials)",
    "cost/latency_ms": "median inference latency at the protocol's first batch size, on the trial's device",
    "cost/latency_p95_ms": "95th percentile of the same measurement",
    "growth/events": "number of growth events so far",
    "growth/preservation_error": "max |output change| at the last growth event (held-out batch)",
    "growth/depth": "number of hidden layers",
    "growth/newborn_act_parity": "log(newborn / incumbent) activity, mean over sites measured at this step",
    "growth/newborn_grad_parity": "log(newborn / incumbent) mean |dL/dz|, mean over sites measured at this step",
    "epoch": "completed epochs",
    "nas/relaxed_val_acc": "supernet validation accuracy (DARTS: the relaxed mixture; ENAS: the derived cell on shared weights)",
    "nas/discrete_val_acc": "the discretized network with inherited weights and recalibrated BatchNorm statistics",
    "nas/gap": "nas/relaxed_val_acc - nas/discrete_val_acc",
    "nas/skip_fraction": "share of parameter-free ops in the normal cell's genotype (collapse signal)",
    "nas/skip_count": "skip_connect ops in the normal cell's genotype",
    "nas/alpha_entropy": "mean entropy of softmax(alpha) over the normal cell's edges (nats)",
    "nas/alpha_entropy_reduce": "the same for the reduction cell",
    "nas/arch_loss": "DARTS: validation loss at the last architecture step",
    "nas/arch_grad_norm": "DARTS: norm of the last architecture gradient (before clipping)",
    "nas/early_stopped": "1 when the DARTS+ rule ended the search",
    "nas/retrain_val_acc": "the discretized architecture trained from scratch: validation accuracy",
    "nas/retrain_test_acc": "the same network's test accuracy",
    "nas/retrain_gap": "nas/relaxed_val_acc at the end of the search - nas/retrain_val_acc",
    "nas/controller_reward": "ENAS: mean reward of the controller's samples in its last update",
    "nas/controller_baseline": "ENAS: the moving-average reward baseline",
    "nas/controller_entropy": "ENAS: entropy of the controller's samples",
    "nas/controller_loss": "ENAS: REINFORCE loss of the last update",
    "nas/controller_log_prob": "ENAS: mean log-probability of the controller's samples",
    "growth/senn_eta": "SENN: natural expansion score summed over the sites at the last check",
    "plasticity/cycle": "Grow-vs-Prune: index of the current cycle",
    "plasticity/cycle_acc": "Grow-vs-Prune: validation accuracy at the end of each cycle (while editing)",
    "plasticity/taa": "Grow-vs-Prune: time-averaged validation accuracy over the epochs so far",
    "plasticity/active_units": "Grow-vs-Prune: active (unmasked) hidden units",
    "plasticity/active_weights": "Grow-vs-Prune: weights of the active units",
    "plasticity/wt_acc": "winning ticket: test accuracy of the final mask retrained from re-initialised weights",
    "plasticity/wt_val_acc": "winning ticket: its final validation accuracy",
    **{
        f"plasticity/{when}_{what}_parity": f"log(newborn or removed / incumbent) {what} at {when} of a cycle"
        for when in ("post", "exit", "end")
        for what in ("act", "grad")
    },
}
METRIC_PREFIXES: dict[str, str] = {
    "plasticity/active_units/": "active units at one site",
    "growth/senn_eta/": "SENN: natural expansion score eta of one site",
    "growth/senn_delta_eta/": "SENN: lower bound delta-eta' of the best proposal at one site",
    **{
        f"plasticity/{when}_{what}_parity/": "the same parity at one site or for one cohort (cycle<k>)"
        for when in ("post", "exit", "end")
        for what in ("act", "grad")
    },
    "growth/width/": "width of one site, e.g. growth/width/hidden.0",
    "cost/latency_ms/bs": "median latency at another protocol batch size, e.g. cost/latency_ms/bs256",
    "growth/newborn_act_parity/": "newborn activation log-parity at one site",
    "growth/newborn_grad_parity/": "newborn gradient log-parity at one site",
}


def width_metric(site: str) -> str:
    return f"growth/width/{site}"


def is_known_metric(name: str) -> bool:
    return name in KNOWN_METRICS or any(name.startswith(p) and len(name) > len(p) for p in METRIC_PREFIXES)
