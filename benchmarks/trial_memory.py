"""Peak memory of one trial, and how many copies of the dataset it holds (issue 19, item 5).

    python benchmarks/trial_memory.py [FILE ...] [--epochs 1] [--set data.limit_train=null]

For each experiment file (default: the quickstart and the Fashion-MNIST growth experiment)
the driver loads the dataset and puts it in Ray's object store once, as a sweep does
(``tune.with_parameters`` puts its arguments with ``ray.put``); a fresh Ray worker then
fetches it, builds the trainer exactly as a trial does (``growray.train.build_trainer``)
and trains ``--epochs`` epochs with a null recorder. The worker prints, at each stage, its
anonymous (private) memory (``/proc/self/smaps_rollup``) and its peak resident memory
(``ru_maxrss``). The object store's pages are shared memory, not anonymous, so anonymous
growth counts the copies a trial makes. Building a trainer also allocates what does not
depend on the data (the model, torch's first-use buffers), so a file whose dataset has
``limit_train`` is run again on four times the data: the growth of the built trainer's
anonymous memory per byte of dataset is the number of copies a trial holds beyond the
object store (one is expected: the tensors it trains on). Whether the fetched arrays are the
object store's own (read-only, zero-copy) is printed too. Numbers are from a shared machine: memory is steady, time is not.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import resource
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "experiments" / "quickstart.yaml", ROOT / "experiments" / "fashion_mnist_growth.yaml"]
MiB = 1024 * 1024


def _anonymous() -> int:
    """Bytes of anonymous memory of this process (private copies; not the object store's pages)."""
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1]) * 1024
    return 0


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_trial(exp_dict: dict[str, Any], refs: list[Any], epochs: int) -> dict[str, Any]:
    """Runs in a fresh Ray worker: fetch, build, train; memory at each stage."""
    import ray
    import torch

    from growray.config import validate_dict
    from growray.tracking import NullRecorder
    from growray.train import build_trainer

    torch.set_num_threads(1)
    stages = {"start": (_anonymous(), _peak())}
    dataset = ray.get(refs[0])
    stages["dataset fetched"] = (_anonymous(), _peak())
    exp = validate_dict(exp_dict, check_space=False).with_overrides({"trainer.epochs": epochs})
    trainer = build_trainer(exp, dataset, recorder=NullRecorder(), device="cpu")
    stages["trainer built"] = (_anonymous(), _peak())
    trainer.fit()
    stages["trained"] = (_anonymous(), _peak())
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory glibc still holds is not a copy
    stages["after malloc_trim"] = (_anonymous(), _peak())
    return {"stages": stages, "zero_copy": not dataset.x_train.flags.writeable, "pid": os.getpid()}


def dataset_bytes(dataset: Any) -> int:
    return sum(
        a.nbytes
        for a in (dataset.x_train, dataset.y_train, dataset.x_val, dataset.y_val, dataset.x_test, dataset.y_test)
    )


def _measure(task: Any, exp: Any, label: str, epochs: int) -> tuple[int, int, int]:
    """One trial in a fresh worker; prints its stages; returns (dataset bytes, anonymous bytes
    the built trainer added, anonymous bytes held after training)."""
    import ray

    from growray.data import load_dataset

    dataset = load_dataset(exp.data, seed=exp.seed)
    size = dataset_bytes(dataset)
    ref = ray.put(dataset)
    out = ray.get(task.remote(exp.to_dict(), [ref], epochs))
    del ref
    stages = out["stages"]
    base = stages["start"][0]
    print(
        f"\n{label}: dataset {exp.data['name']} {size / MiB:.1f} MiB (train {dataset.x_train.shape}); "
        f"fetched zero-copy from the object store: {out['zero_copy']}"
    )
    print(f"  {'stage':<16} {'anonymous':>10} {'+ since start':>14} {'peak RSS':>10}")
    for name, (anon, peak) in stages.items():
        print(f"  {name:<16} {anon / MiB:>7.1f} MiB {(anon - base) / MiB:>10.1f} MiB {peak / MiB:>6.0f} MiB")
    print(f"  peak RSS of the trial: {stages['trained'][1] / MiB:.0f} MiB")
    return size, stages["trainer built"][0] - base, stages["after malloc_trim"][0] - base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=FILES)
    ap.add_argument("--epochs", type=int, default=1, help="epochs each trial trains (memory peaks in the first)")
    ap.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="e.g. data.limit_train=null")
    args = ap.parse_args()

    import ray

    from growray.config import load_experiment, parse_overrides

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    task = ray.remote(num_cpus=1, max_calls=1)(one_trial)  # max_calls=1: a fresh worker per trial
    try:
        for path in args.files:
            exp = load_experiment(path, parse_overrides(args.set))
            first = _measure(task, exp, path.name, args.epochs)
            limit = exp.data.get("limit_train")
            if isinstance(limit, int):  # the same trial on 4x the data: the slope counts the copies
                bigger = exp.with_overrides({"data.limit_train": 4 * limit})
                second = _measure(task, bigger, f"{path.name} with data.limit_train={4 * limit}", args.epochs)
                built = (second[1] - first[1]) / (second[0] - first[0])
                held = (second[2] - first[2]) / (second[0] - first[0])
                print(
                    f"  => per byte of dataset, a built trainer holds {built:.2f} bytes of anonymous memory and a "
                    f"trained one (after malloc_trim) {held:.2f}: the copies of the dataset beyond the object store"
                )
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
