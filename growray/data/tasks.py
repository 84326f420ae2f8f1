"""Task-sequence datasets for continual learning: split Fashion-MNIST, split MNIST, split digits,
permuted Fashion-MNIST.

Each holds every task's samples with *global* labels and declares its tasks as data through
the ``tasks`` capability, ``tasks(**params) -> (classes of each task, setting, n_classes)``,
which answers without loading anything (``growray.continual.TaskSequence`` reads it):

- **split** datasets: the classes in ``class_order`` (default 0..9), in consecutive groups of
  ``classes_per_task`` (5 tasks of 2 classes: 0/1, 2/3, ...). A class may appear in several
  groups (a repeated task, task-incremental only).
- **permuted** Fashion-MNIST: ``n_tasks`` copies of the data, task t's pixels shuffled by a
  fixed permutation (task 0: the identity, as in Kirkpatrick et al. 2017; the others drawn
  from ``permutation_seed``); task t's classes are 10t..10t+9.

``setting``: ``task`` (task-incremental: one head per task, the task id given) or ``class``
(class-incremental: one shared head).
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

from collections.abc import Callable

import numpy as np

from growray.checks import check_int
from growray.data._base import Dataset
from growray.data._registry import DATASETS, load_dataset

__all__ = ["permuted_fashion_mnist", "split_digits", "split_fashion_mnist", "split_mnist"]

_SETTINGS = ("task", "class")
TaskInfo = tuple[list[list[int]], str, int]


def _check_setting(setting: object) -> str:
    if setting not in _SETTINGS:
        raise ValueError(f"setting must be one of {', '.join(_SETTINGS)}; got {setting!r}")
    return str(setting)


def _split_tasks(class_order: object, classes_per_task: object, setting: object, n_classes: int = 10) -> TaskInfo:
    setting = _check_setting(setting)
    k = check_int("classes_per_task", classes_per_task, minimum=2)
    order = list(range(n_classes)) if class_order is None else class_order
    if not isinstance(order, (list, tuple)) or not all(isinstance(c, int) and 0 <= c < n_classes for c in order):
        raise ValueError(f"class_order must be a list of classes in [0, {n_classes}); got {class_order!r}")
    if len(order) % k or not order:
        raise ValueError(f"class_order has {len(order)} classes, not a multiple of classes_per_task={k}")
    tasks = [list(order[i : i + k]) for i in range(0, len(order), k)]
    if any(len(set(t)) != k for t in tasks):
        raise ValueError(f"a task lists each class once; got {tasks}")
    if setting == "class" and len({c for t in tasks for c in t}) != len(order):
        raise ValueError("a class appears in two tasks: repeated tasks need setting: task (one head per task)")
    return tasks, setting, n_classes


def _select(ds: Dataset, classes: set[int], name: str) -> Dataset:
    """Only the samples of ``classes`` (global labels kept)."""

    def keep(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = np.isin(y, sorted(classes))
        return x[m], y[m]

    (xtr, ytr), (xva, yva), (xte, yte) = (
        keep(ds.x_train, ds.y_train),
        keep(ds.x_val, ds.y_val),
        keep(ds.x_test, ds.y_test),
    )
    return Dataset(name, xtr, ytr, xva, yva, xte, yte, ds.input_shape, ds.n_classes)


def _split(base: Dataset, name: str, info: TaskInfo) -> Dataset:
    return _select(base, {c for t in info[0] for c in t}, name)


def _split_describe(input_shape: tuple[int, ...]):  # type: ignore[no-untyped-def]
    def describe(**params: object) -> tuple[tuple[int, ...], int]:
        _split_tasks(params.get("class_order"), params.get("classes_per_task", 2), params.get("setting", "task"))
        return input_shape, 10

    return describe


def _split_info(**params: object) -> TaskInfo:
    return _split_tasks(params.get("class_order"), params.get("classes_per_task", 2), params.get("setting", "task"))


@DATASETS.register("split_digits", describe=_split_describe((64,)), tasks=_split_info, requires=("sklearn",))
def split_digits(
    seed: int,
    setting: str = "task",
    classes_per_task: int = 2,
    class_order: list[int] | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Dataset:
    """scikit-learn's 8x8 digits (``digits``) as a class-split task sequence (fast tests).

    Args:
        seed: seeds the splits.
        setting: ``task`` (one head per task) or ``class`` (one shared head).
        classes_per_task: classes in each task.
        class_order: the classes in task order (null: 0..9); consecutive groups make the tasks.
        val_fraction: share held out for validation.
        test_fraction: share held out for testing.
    """
    info = _split_tasks(class_order, classes_per_task, setting)
    base = load_dataset({"name": "digits", "val_fraction": val_fraction, "test_fraction": test_fraction}, seed=seed)
    return _split(base, "split_digits", info)


def _official(name: str, seed: int, **params: object) -> Dataset:
    return load_dataset({"name": name, **{k: v for k, v in params.items() if v is not None}}, seed=seed)


def _split_official(name: str, base: str, doc: str) -> Callable[..., Dataset]:
    """A class-split task sequence of the official-files dataset ``base``, registered as ``name``
    (the parameters are the split's, then ``base``'s own)."""

    def load(
        seed: int,
        setting: str = "task",
        classes_per_task: int = 2,
        class_order: list[int] | None = None,
        root: str | None = None,
        val_fraction: float = 0.1,
        limit_train: int | None = None,
        limit_test: int | None = None,
    ) -> Dataset:
        info = _split_tasks(class_order, classes_per_task, setting)
        data = _official(
            base, seed, root=root, val_fraction=val_fraction, limit_train=limit_train, limit_test=limit_test
        )
        return _split(data, name, info)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"""{doc}

    Args:
        seed: seeds the subsets and the validation split.
        setting: ``task`` or ``class``.
        classes_per_task: classes in each task (2: the usual 5 tasks).
        class_order: the classes in task order (null: 0..9).
        root: folder holding the files (see ``{base}``).
        val_fraction: share of the (limited) training set held out.
        limit_train: a stratified subset of this many training images over all 10 classes (null: all).
        limit_test: a stratified subset of this many test images (null: all).
    """
    register = DATASETS.register(name, describe=_split_describe((1, 28, 28)), tasks=_split_info)
    return register(load)


split_fashion_mnist = _split_official(
    "split_fashion_mnist",
    "fashion_mnist",
    "Fashion-MNIST (the local IDX files, as ``fashion_mnist``) as a class-split task sequence.",
)
split_mnist = _split_official(
    "split_mnist", "mnist", "MNIST (torchvision's on-disk layout, as ``mnist``) as a class-split task sequence."
)


def _permuted_info(**params: object) -> TaskInfo:
    n = check_int("n_tasks", params.get("n_tasks", 5), minimum=1)
    return [list(range(10 * t, 10 * t + 10)) for t in range(n)], _check_setting(params.get("setting", "task")), 10 * n


def _permuted_describe(**params: object) -> tuple[tuple[int, ...], int]:
    _, _, n_classes = _permuted_info(**params)
    return (1, 28, 28), n_classes


def permutations(n_tasks: int, n_pixels: int, seed: int) -> list[np.ndarray]:
    """Task t's pixel order: the identity for task 0, then draws from ``seed``."""
    rng = np.random.default_rng(seed)
    return [np.arange(n_pixels)] + [rng.permutation(n_pixels) for _ in range(n_tasks - 1)]


@DATASETS.register("permuted_fashion_mnist", describe=_permuted_describe, tasks=_permuted_info)
def permuted_fashion_mnist(
    seed: int,
    n_tasks: int = 5,
    setting: str = "task",
    permutation_seed: int = 0,
    root: str | None = None,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_test: int | None = None,
) -> Dataset:
    """Permuted Fashion-MNIST: ``n_tasks`` copies of the images, each under a fixed pixel
    permutation; task t's labels are 10t + class.

    Args:
        seed: seeds the subsets and the validation split (the same images in every task).
        n_tasks: permutations (task 0 is the identity).
        setting: ``task`` (a head per permutation) or ``class`` (one head of 10 n_tasks logits).
        permutation_seed: seeds the permutations.
        root, val_fraction, limit_train, limit_test: as ``fashion_mnist``.
    """
    tasks, _, n_classes = _permuted_info(n_tasks=n_tasks, setting=setting)
    base = _official(
        "fashion_mnist", seed, root=root, val_fraction=val_fraction, limit_train=limit_train, limit_test=limit_test
    )
    perms = permutations(
        len(tasks), int(np.prod(base.input_shape)), check_int("permutation_seed", permutation_seed, minimum=0)
    )

    def stack(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = x.reshape(len(x), -1)
        xs = [flat[:, p].reshape(x.shape) for p in perms]
        return np.concatenate(xs).astype(np.float32), np.concatenate([y + 10 * t for t in range(len(perms))])

    (xtr, ytr), (xva, yva), (xte, yte) = (
        stack(base.x_train, base.y_train),
        stack(base.x_val, base.y_val),
        stack(base.x_test, base.y_test),
    )
    return Dataset("permuted_fashion_mnist", xtr, ytr, xva, yva, xte, yte, base.input_shape, n_classes)
