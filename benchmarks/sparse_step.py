"""What does dynamic sparse training cost on the CPU? Measured in one run, printed as a table.

For the MLP and the CNN of experiments/fashion_mnist_dst.yaml (Fashion-MNIST shapes, batch
128, SGD with momentum and weight decay), each step as the trainer takes it (forward,
backward, optimizer step, and the training-compute bookkeeping ``TrainingCompute.add_step``):

  * a dense training step is the unit;
  * a masked training step (``WeightMasks`` at 90% ERK sparsity: gradient hooks, mask
    buffers, the masked FLOP count) as a ratio to the dense step;
  * a RigL update step (the masked step with its dense gradient kept, plus the mask update of
    every layer: drop, regrow, weight and optimizer-slot reset) as a ratio to a masked step,
    without and with the kind's diagnostics (the probe loss before and after the update, 128
    held-out samples in eval mode) — the same for SET and structured RigL — and what an update
    adds to every step when it happens once every delta_t = 20 steps (the experiment's ΔT).

Targets (issue 13): a masked step at most 1.1x a dense one; an update step at most 2x a
training step. Masks do not make the dense kernels faster on a CPU: the FLOPs saved are
counted (``cost/flops``, ``cost/train_flops``), not realised.

    python benchmarks/sparse_step.py [--threads 1] [--reps 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from growray.cost import TrainingCompute
from growray.models import MODELS
from growray.sparse import UPDATERS, ERKDistribution, LayerInfo, WeightMasks, active_counts, maskable_layers

BATCH = 128
DELTA_T = 20  # experiments/fashion_mnist_dst.yaml's update interval
SHAPE = (1, 28, 28)
MODEL_SPECS = {
    "mlp": {"name": "mlp", "hidden": [300, 100]},
    "cnn": {"name": "cnn", "channels": [16, 32]},
}


Timing = tuple[float, float]  # median (wall, process CPU) seconds


def median_time(fn: Callable[[], object], reps: int, warmup: int = 3) -> Timing:
    """Median wall time and median CPU time of this process (the CPU time is what a shared,
    overloaded machine distorts least: the benchmark runs one thread)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


Row = tuple[str, str, Timing, Timing]  # model, what, its timing, the timing it is a ratio of


def build(
    model_name: str, sparsity: float | None, updater: str = "rigl"
) -> tuple[torch.nn.Module, torch.optim.Optimizer, WeightMasks | None]:
    torch.manual_seed(0)
    model = MODELS.build(MODEL_SPECS[model_name], input_shape=SHAPE, n_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    if sparsity is None:
        return model, opt, None
    shapes = {k: tuple(m.weight.shape) for k, m in maskable_layers(model).items()}
    counts = active_counts(shapes, ERKDistribution().densities(shapes, sparsity))
    gen = torch.Generator().manual_seed(0)
    first = UPDATERS.build(updater)  # its own first mask (SRigL: constant fan-in)
    masks = WeightMasks({k: first.init_mask(s, counts[k], gen) for k, s in shapes.items()})
    masks.attach(model)
    return model, opt, masks


def bench_model(model_name: str, reps: int) -> list[Row]:
    x, y = torch.randn(BATCH, *SHAPE), torch.randint(0, 10, (BATCH,))
    probe = (torch.randn(128, *SHAPE), torch.randint(0, 10, (128,)))

    def stepper(model: torch.nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
        compute = TrainingCompute()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            compute.add_step(model, SHAPE, BATCH)

        return step

    dense_model, dense_opt, _ = build(model_name, None)
    sparse_model, sparse_opt, _ = build(model_name, 0.9)
    dense_step, sparse_step = stepper(dense_model, dense_opt), stepper(sparse_model, sparse_opt)
    # interleave the two so that load changes on a shared machine hit both alike
    dense_t, sparse_t = [], []
    for _ in range(3):
        dense_t.append(median_time(dense_step, reps))
        sparse_t.append(median_time(sparse_step, reps))
    dense = (statistics.median(t[0] for t in dense_t), statistics.median(t[1] for t in dense_t))
    masked = (statistics.median(t[0] for t in sparse_t), statistics.median(t[1] for t in sparse_t))
    rows: list[Row] = [
        (model_name, "dense training step", dense, dense),
        (model_name, "masked training step (90% ERK)", masked, dense),
    ]
    gen = torch.Generator().manual_seed(1)
    for name in ("rigl", "set", "srigl"):
        model, opt, layer_masks = build(model_name, 0.9, name)
        assert layer_masks is not None
        rows += bench_updates(model_name, name, model, opt, layer_masks, stepper(model, opt), probe, gen, reps)
    return rows


def bench_updates(
    model_name: str,
    name: str,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    masks: WeightMasks,
    step: Callable[[], None],
    probe: tuple[torch.Tensor, torch.Tensor],
    gen: torch.Generator,
    reps: int,
) -> list[Row]:
    """An update step of updater ``name`` against the masked step of the same model."""
    updater = UPDATERS.build(name)

    def probe_loss() -> float:
        model.eval()
        with torch.no_grad():
            out = float(F.cross_entropy(model(probe[0]), probe[1]))
        model.train()
        return out

    def update_step(diagnostics: bool) -> None:
        if updater.needs_gradient:
            masks.capture_next()
        step()
        grads = masks.release()
        if diagnostics:
            probe_loss()
        for i, layer in enumerate(masks.layers):
            info = LayerInfo(layer, i, len(masks.layers))
            upd = updater.update(info, masks.mask(layer), masks.weight(layer).detach(), grads.get(layer), 0.3, gen)
            masks.replace(layer, upd.mask, opt)
        if diagnostics:
            probe_loss()

    # interleaved rounds, as for the training steps: the reference and the update steps are
    # measured close together, so load changes on a shared machine hit them alike
    rounds: list[tuple[Timing, Timing, Timing]] = []
    for _ in range(3):
        rounds.append(
            (
                median_time(step, reps),
                median_time(lambda: update_step(False), reps),
                median_time(lambda: update_step(True), reps),
            )
        )

    def med(i: int) -> Timing:
        return statistics.median(r[i][0] for r in rounds), statistics.median(r[i][1] for r in rounds)

    masked, update = med(0), med(2)
    amortised = tuple(m + (u - m) / DELTA_T for m, u in zip(masked, update))
    return [
        (model_name, f"{name} update step", med(1), masked),
        (model_name, f"{name} update step + probe losses", update, masked),
        (model_name, f"  per step, amortised over delta_t={DELTA_T}", (amortised[0], amortised[1]), masked),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial's resources.cpu)")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, input {SHAPE}")
    print(f"{'model':5}  {'what':38}  {'wall ms':>8}  {'cpu ms':>8}  {'ratio (wall)':>12}  {'ratio (cpu)':>11}  of")
    for model_name in MODEL_SPECS:
        for model, what, (wall, cpu), (ref_wall, ref_cpu) in bench_model(model_name, args.reps):
            unit = "dense step" if "training step" in what else "masked step"
            print(
                f"{model:5}  {what:38}  {wall * 1e3:8.2f}  {cpu * 1e3:8.2f}  {wall / ref_wall:12.2f}  "
                f"{cpu / max(ref_cpu, 1e-9):11.2f}  {unit}"
            )
    print("targets: masked step <= 1.1 x dense step; update step <= 2 x training step")


if __name__ == "__main__":
    main()
