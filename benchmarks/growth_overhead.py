"""How much does growth cost, relative to training? Measured in one run, printed as a table.

For the MLP and the CNN:
  * one training step (Adam, batch 128) is the unit;
  * for every registered initializer: surgery + optimizer migration alone, and the whole
    event (initializer + surgery + migration, as GrowthStrategy does it, without the
    preservation/cost bookkeeping), each as a ratio to one step;
  * for every registered trigger: one evaluation on the default buffer of recent training
    samples (growth.buffer_size), as a ratio to one step, and the overhead at its default
    interval (evaluation time / (interval x step time)).

Targets: surgery + migration at most one training step (issue 3); a whole event at most
two training steps and triggers at their default interval at most 5% of training time
(issue 19). The summary lists every row over its target.

    python benchmarks/growth_overhead.py [--threads 1] [--reps 7]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from growray.growth import INITIALIZERS, TRIGGERS, SiteLimits, Trigger, TriggerContext, migrate_optimizer, widen
from growray.kinds.growth import GrowthConfig
from growray.models import MODELS

BATCH = 128
N_NEW = 4


def median_time(fn: Callable[[], object], reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make(model_name: str) -> tuple[torch.nn.Module, tuple[int, ...], str]:
    if model_name == "mlp":
        shape = (64,)
        model = MODELS.build({"name": "mlp", "hidden": [32, 32], "batch_norm": True}, input_shape=shape, n_classes=10)
        return model, shape, "hidden.0"
    shape = (1, 28, 28)
    model = MODELS.build({"name": "cnn", "channels": [16, 32], "hidden": [64]}, input_shape=shape, n_classes=10)
    return model, shape, model.sites()[1]


def bench_model(model_name: str, reps: int) -> list[tuple[str, str, float, float]]:
    torch.manual_seed(0)
    model, shape, site = make(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(BATCH, *shape), torch.randint(0, 10, (BATCH,))
    n_buffer = GrowthConfig.model_fields["buffer_size"].default  # what a trial's triggers see
    buffer = (torch.randn(n_buffer, *shape), torch.randint(0, 10, (n_buffer,)))

    def train_step(m: torch.nn.Module = model, o: torch.optim.Optimizer = opt) -> None:
        o.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        o.step()

    for _ in range(20):
        train_step()
    step = median_time(train_step, max(reps * 4, 20))
    rows = [(model_name, "training step (batch 128)", step * 1e3, 1.0)]

    for name in INITIALIZERS.names():
        init = INITIALIZERS.build(name)
        reason = init.check_site(model, site, SiteLimits(max_width=model.widths()[site] + N_NEW))
        if reason:
            rows.append((model_name, f"event {name}: n/a ({reason[:40]})", float("nan"), float("nan")))
            continue
        surgery, whole = [], []
        for _ in range(reps):
            m, o = copy.deepcopy((model, opt))
            m.eval()
            t0 = time.perf_counter()
            proposal = init.propose(m, site, N_NEW, batch=buffer)
            t1 = time.perf_counter()
            migrate_optimizer(o, widen(m, site, proposal), "zero")
            t2 = time.perf_counter()
            surgery.append(t2 - t1)
            whole.append(t2 - t0)
        rows.append(
            (
                model_name,
                f"event {name}: surgery + optimizer migration",
                statistics.median(surgery) * 1e3,
                statistics.median(surgery) / step,
            )
        )
        rows.append(
            (
                model_name,
                f"event {name}: initializer + surgery + migration",
                statistics.median(whole) * 1e3,
                statistics.median(whole) / step,
            )
        )

    for name in TRIGGERS.names():
        trigger = TRIGGERS.build(name)
        interval = int(getattr(trigger, "check_every", 1))
        state = trigger.state_dict()

        def check(trigger: Trigger = trigger, state: dict = state, interval: int = interval) -> None:
            trigger.load_state_dict(copy.deepcopy(state))  # the same decision point every time
            ctx = TriggerContext(
                step=interval,
                epoch=1,
                phase="step",
                widths=model.widths(),
                train_loss=1.0,
                val_loss=1.0,
                model=model,
                batch=buffer,
            )
            trigger.check(ctx)

        model.eval()
        t = median_time(check, reps)
        model.train()
        rows.append((model_name, f"trigger {name}: one evaluation", t * 1e3, t / step))
        rows.append(
            (model_name, f"trigger {name}: overhead at check_every={interval}", float("nan"), t / (interval * step))
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (a 1-CPU trial uses 1)")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for m in args.models:
        if m in MODELS:
            rows += bench_model(m, args.reps)
    width = max(len(r[1]) for r in rows)
    print(f"{'model':<5}  {'measurement':<{width}}  {'ms':>8}  {'x step':>7}")
    for model_name, what, ms, ratio in rows:
        ms_s = "" if ms != ms else f"{ms:8.2f}"
        ratio_s = "" if ratio != ratio else f"{ratio:7.3f}"
        print(f"{model_name:<5}  {what:<{width}}  {ms_s:>8}  {ratio_s:>7}")
    events = [r for r in rows if "surgery + optimizer migration" in r[1]]
    whole = [r for r in rows if "initializer + surgery + migration" in r[1]]
    overhead = [r for r in rows if "overhead at" in r[1]]
    print(f"\nworst surgery+migration: {max(r[3] for r in events):.3f} x step (target <= 1)")
    print(f"worst whole event: {max(r[3] for r in whole):.3f} x step (target <= 2)")
    print(f"worst trigger overhead at default interval: {max(r[3] for r in overhead):.1%} (target <= 5%)")
    over = [f"{r[0]} {r[1]}: {r[3]:.2f} x step" for r in whole if r[3] > 2]
    over += [f"{r[0]} {r[1]}: {r[3]:.1%}" for r in overhead if r[3] > 0.05]
    print("over target:" + ("".join(f"\n  {o}" for o in over) if over else " none"))


if __name__ == "__main__":
    main()
