"""Seconds per search step of every NAS method (architecture step + weight step), printed as a table.

The paper's search configuration by default: 8 cells, 16 channels, 4 nodes, DARTS' 8 ops,
batch 64 of 32x32x3 random images, 10 classes. One search step is

  1. ``DartsArchitect.step`` on a validation batch (Adam 3e-4, betas (0.5, 0.999), wd 1e-3;
     first order, or second order unrolled through the weight optimizer);
  2. a weight step on a training batch: SGD lr 0.025, momentum 0.9, weight decay 3e-4,
     gradient norm clipped to 5.

``--methods``: ``darts`` (the above), ``gdas`` (the same supernet sampling one op per edge,
first order only), ``pcdarts`` (partial channels K = 4 and edge normalisation), ``enas``
(no architecture step: a cell sampled by the controller, then the weight step on the shared
weights; 5 ops, 5 nodes). ``--space nb201`` runs the gradient methods on NAS-Bench-201's
supernet (16 channels, 5 cells per stage). The last column is the time per step relative to
the first row, measured in this run.

For each order x autocast setting the table gives the mean seconds per step after
``--warmup`` untimed steps (and the architecture share), steps per second and, on CUDA,
the peak memory allocated. bf16 autocast wraps both steps
(``torch.autocast(device_type, dtype=torch.bfloat16)``); ``--channels-last`` converts the
model and inputs to channels-last memory format.

    python benchmarks/darts_step.py --device cpu --orders 1 2 --steps 2 --warmup 1
    python benchmarks/darts_step.py --device cpu --methods darts gdas pcdarts enas --orders 1 --steps 2
    python benchmarks/darts_step.py --device cuda --orders 1 2 --amp none bf16 --channels-last

``--reference PATH`` (the ``cnn/`` folder of the public DARTS code, github.com/quark0/darts)
instead times DARTS' own first-order search step against growray's, interleaved in this one
process on the same random batches, ``--rounds`` rounds, and prints both medians and the
speed-up (the target of issue 19: >= 1.5x on the CPU). Nothing of that code is copied here:
it is imported from PATH, and its hard-coded ``.cuda()`` calls are made no-ops while its
network is built on the CPU. Without the folder the comparison is skipped.

``--compile`` wraps the supernet in ``torch.compile`` (static shapes: it recompiles only when
the architecture changes); the first, compiling step is reported apart.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from growray.nas import DartsArchitect, DartsSupernet, EnasController, EnasSupernet, Nb201Supernet, RelaxedSupernet


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--methods", nargs="+", choices=["darts", "gdas", "pcdarts", "enas"], default=["darts"])
    p.add_argument("--space", choices=["darts", "nb201"], default="darts", help="darts: DARTS' cells; nb201")
    p.add_argument("--orders", type=int, nargs="+", choices=[1, 2], default=[1, 2])
    p.add_argument("--amp", nargs="+", choices=["none", "bf16"], default=["none"])
    p.add_argument("--channels-last", action="store_true", help="model and inputs in channels-last format")
    p.add_argument("--steps", type=int, default=5, help="timed search steps per setting")
    p.add_argument("--warmup", type=int, default=2, help="untimed search steps first")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32, help="input height and width (3 channels)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", type=Path, help="the cnn/ folder of github.com/quark0/darts: time it against growray")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds with --reference")
    p.add_argument("--compile", action="store_true", help="torch.compile the supernet")
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        p.error(f"--steps must be >= 1 and --warmup >= 0; got {args.steps}, {args.warmup}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available here")
    return args


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(args: argparse.Namespace, method: str) -> RelaxedSupernet | EnasSupernet:
    shape = (3, args.size, args.size)
    if method == "enas":
        return EnasSupernet(shape, args.classes, channels=args.channels, layers=args.layers, nodes=args.nodes + 1)
    pc = {"partial_channels": 4, "edge_normalization": True} if method == "pcdarts" else {}
    if args.space == "nb201":
        return Nb201Supernet(shape, args.classes, channels=args.channels, **pc)  # type: ignore[arg-type]
    return DartsSupernet(
        shape,
        args.classes,
        channels=args.channels,
        layers=args.layers,
        nodes=args.nodes,
        multiplier=args.nodes,
        **pc,  # type: ignore[arg-type]
    )


def bench(args: argparse.Namespace, method: str, order: int, amp: str) -> dict[str, float]:
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = _model(args, method).to(device).to(memory_format=fmt)
    weights = list(model.weight_parameters())
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    architect = None
    controller = None
    if isinstance(model, EnasSupernet):
        controller = EnasController(n_nodes=model.n_nodes, op_names=model.op_names).to(device)
    else:
        architect = DartsArchitect(model, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3, order=order)
    if method == "gdas" and isinstance(model, RelaxedSupernet):
        model.set_gumbel(10.0, torch.Generator().manual_seed(args.seed))

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=fmt)
        return x, torch.randint(0, args.classes, (args.batch,), device=device)

    train, val = batch(), batch()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()
    )

    def search_step() -> tuple[float, float]:
        t0 = time.perf_counter()
        if architect is not None:
            with autocast:
                architect.step(train, val, w_opt)
        elif controller is not None and isinstance(model, EnasSupernet):
            with torch.no_grad():
                model.set_arch(controller.sample()[0])
        _sync(device)
        t1 = time.perf_counter()
        w_opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(train[0]), train[1])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()
        _sync(device)
        return t1 - t0, time.perf_counter() - t1

    model.train()
    for _ in range(args.warmup):
        search_step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    arch_s = weight_s = 0.0
    for _ in range(args.steps):
        a, w = search_step()
        arch_s += a
        weight_s += w
    total = (arch_s + weight_s) / args.steps
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"s_per_step": total, "arch_s": arch_s / args.steps, "steps_per_s": 1.0 / total, "peak_mib": peak}


@contextlib.contextmanager
def _cuda_calls_are_no_ops(device: torch.device) -> Iterator[None]:
    """The reference code calls ``.cuda()`` on tensors and modules; on the CPU those are no-ops."""
    if device.type == "cuda":
        yield
        return
    tensor_cuda, module_cuda = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = tensor_cuda, module_cuda  # type: ignore[method-assign]


def _reference_step(args: argparse.Namespace, device: torch.device) -> Callable[..., float] | None:
    """DARTS' own first-order search step (``train_search.train``'s loop body), or None when
    ``--reference`` holds no ``model_search.py``."""
    folder = args.reference.resolve()
    if not (folder / "model_search.py").is_file():
        print(f"--reference {folder}: no model_search.py there; the comparison is skipped")
        return None
    sys.path.insert(0, str(folder))
    model_search, architect = importlib.import_module("model_search"), importlib.import_module("architect")
    torch.manual_seed(args.seed)
    criterion = torch.nn.CrossEntropyLoss()
    with _cuda_calls_are_no_ops(device):
        model = model_search.Network(args.channels, args.classes, args.layers, criterion, steps=args.nodes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    hyper = SimpleNamespace(momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3)
    arch = architect.Architect(model, hyper)
    model.train()

    def step(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> float:
        t0 = time.perf_counter()
        arch.step(train[0], train[1], val[0], val[1], 0.025, opt, unrolled=False)
        opt.zero_grad()
        loss = criterion(model(train[0]), train[1])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    return step


def _growray_step(args: argparse.Namespace, device: torch.device) -> Callable[..., float]:
    """growray's first-order DARTS search step on the same settings (architect, then weights)."""
    torch.manual_seed(args.seed)
    model = _model(args, "darts").to(device)
    net: Any = torch.compile(model) if args.compile else model
    weights = list(model.weight_parameters())
    opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch = DartsArchitect(net, lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3, order=1)
    model.train()

    def step(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> float:
        t0 = time.perf_counter()
        arch.step(train, val, opt)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(train[0]), train[1])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 5.0)
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    return step


def versus_reference(args: argparse.Namespace, where: str) -> None:
    """The reference's and growray's first-order step, interleaved, ``--rounds`` times."""
    device = torch.device(args.device)
    print(
        f"DARTS first-order search step vs the reference code: {args.layers} cells, {args.channels} channels, "
        f"batch {args.batch}, {args.size}x{args.size}; {args.device} ({where}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.warmup} warmup + {args.rounds} interleaved rounds"
        + (", growray compiled" if args.compile else "")
    )
    reference = _reference_step(args, device)
    if reference is None:
        return
    ours = _growray_step(args, device)
    gen = torch.Generator().manual_seed(args.seed)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(args.batch, 3, args.size, args.size, generator=gen).to(device)
        return x, torch.randint(0, args.classes, (args.batch,), generator=gen).to(device)

    first = [ours(batch(), batch()) for _ in range(max(args.warmup, 1 if args.compile else 0))]
    if first:
        print(f"growray warm-up step(s) (compilation included): {', '.join(f'{t:.2f} s' for t in first)}")
    for _ in range(args.warmup):
        train, val = batch(), batch()
        reference(train, val)
    times: dict[str, list[float]] = {"reference": [], "growray": []}
    for r in range(args.rounds):
        train, val = batch(), batch()
        times["reference"].append(reference(train, val))
        times["growray"].append(ours(train, val))
        print(f"  round {r + 1}: reference {times['reference'][-1]:.2f} s, growray {times['growray'][-1]:.2f} s")
    ref, gr = statistics.median(times["reference"]), statistics.median(times["growray"])
    print(f"median: reference {ref:.2f} s, growray {gr:.2f} s; growray is {ref / gr:.2f}x faster (target >= 1.5x)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    if args.reference is not None:
        versus_reference(args, where)
        return
    print(
        f"NAS search step: {args.layers} cells, {args.channels} channels, {args.nodes} nodes, batch {args.batch}, "
        f"{args.size}x{args.size}x3; {args.device} ({where}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {args.warmup} warmup + {args.steps} timed steps"
    )
    header = (
        f"{'method':>8} {'space':>6} {'order':>5} {'amp':>5} {'channels_last':>13} {'s/step':>9} {'arch s':>9} "
        f"{'steps/s':>8} {'peak MiB':>9} {'x first':>8}"
    )
    print(header)
    print("-" * len(header))
    first = None
    for method in args.methods:
        orders = [1] if method in ("gdas", "enas") else args.orders
        for order in orders:
            for amp in args.amp:
                r = bench(args, method, order, amp)
                first = first or r["s_per_step"]
                peak = "-" if r["peak_mib"] != r["peak_mib"] else f"{r['peak_mib']:.0f}"
                space = "darts" if method == "enas" else args.space
                shown_order = "-" if method == "enas" else str(order)
                print(
                    f"{method:>8} {space:>6} {shown_order:>5} {amp:>5} {args.channels_last!s:>13} "
                    f"{r['s_per_step']:>9.3f} {r['arch_s']:>9.3f} {r['steps_per_s']:>8.3f} {peak:>9} "
                    f"{r['s_per_step'] / first:>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
