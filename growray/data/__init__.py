"""Datasets by name, as host-side arrays that become tensors on a trial's device.

``load_dataset({"name": "digits", **params}, seed=0)`` builds one registered dataset;
``Dataset.to_tensors(device)`` moves it. Registered: ``digits`` (scikit-learn, offline),
``fashion_mnist`` (local IDX files; torchvision only to download), ``mnist``, ``cifar10``,
``cifar100`` (torchvision's on-disk layout; CIFAR pickles through a restricted unpickler),
``synthetic`` (the NORTH toy task); the continual-learning task sequences ``split_digits``,
``split_fashion_mnist``, ``split_mnist``, ``permuted_fashion_mnist`` (``growray.data.tasks``).
"""

from growray.data._base import Dataset, DatasetNotFoundError, TensorSplits
from growray.data._idx import IDXFormatError
from growray.data._registry import DATASETS, describe_dataset, load_dataset

# Registration happens on import; nothing is loaded until a dataset is built.
from growray.data import digits as _digits  # noqa: F401  isort: skip
from growray.data import fashion_mnist as _fashion_mnist  # noqa: F401  isort: skip
from growray.data import synthetic as _synthetic  # noqa: F401  isort: skip
from growray.data import tasks as _tasks  # noqa: F401  isort: skip
from growray.data import torchvision_sets as _torchvision_sets  # noqa: F401  isort: skip
from growray.data.torchvision_sets import CIFARFormatError  # isort: skip

__all__ = [
    "DATASETS",
    "CIFARFormatError",
    "Dataset",
    "DatasetNotFoundError",
    "IDXFormatError",
    "TensorSplits",
    "describe_dataset",
    "load_dataset",
]
