"""MNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout in a local folder.

Nothing is fetched unless ``download: true``: these machines reach no dataset host, so a
missing dataset is a :class:`DatasetNotFoundError` that names the folders searched, the
files expected and how to get them. Folders searched, in order (the first one holding every
file wins; the search is ``growray.data._folders``'s, shared with fashion_mnist):

1. ``root`` itself and ``root/<layout>`` (torchvision's layout), when ``root`` is given;
2. ``$GROWRAY_DATA_ROOT/<name>`` and ``$GROWRAY_DATA_ROOT/<layout>``;
3. ``~/.cache/growray/<layout>`` (where ``download: true`` puts it without a root), only
   when no ``root`` is given;

with ``<layout>`` = ``MNIST/raw`` (the four IDX files, plain or ``.gz``),
``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) or
``cifar-100-python`` (``train``, ``test``; the 100 fine labels are used).

**CIFAR pickles are read with a restricted unpickler** (``growray.data._cifar``): it
resolves only numpy's array-rebuilding functions and ``_codecs.encode``; any other global a
file names is refused with :class:`CIFARFormatError` before it is called.

Preprocessing: pixels scaled to [0, 1], then standardized per channel with the mean and
std of the training split only (for MNIST's one channel this is fashion_mnist's scalar
standardization). The arrays are fixed tensors, as for every growray dataset; random crop,
flip and cutout are applied per training batch by the trainer when ``data.augment`` asks for
them (:mod:`growray.train.augment`), never to validation or test data.
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

from collections.abc import Callable, Mapping
from pathlib import Path

from growray.data._cifar import CIFARFormatError, load_cifar_batch, read_cifar_batches
from growray.data._folders import FileSource, Split, official_dataset
from growray.data._idx import MNIST_FILES, read_mnist_layout

__all__ = ["SOURCES", "CIFARFormatError", "cifar10", "cifar100", "load_cifar_batch", "mnist"]


def _fetch_mnist(target: Path) -> None:
    import torchvision.datasets

    # the class knows the mirrors; IDX files involve no unpickling
    torchvision.datasets.MNIST(str(target), train=True, download=True)


def _fetch_cifar(name: str) -> Callable[[Path], None]:
    def fetch(target: Path) -> None:
        import torchvision.datasets
        from torchvision.datasets import utils as tv_utils

        # archive only (md5-checked), so torchvision never unpickles the batches itself
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        tv_utils.download_and_extract_archive(cls.url, str(target), filename=cls.filename, md5=cls.tgz_md5)

    return fetch


def _cifar_reader(
    train_files: tuple[str, ...], test_files: tuple[str, ...], label_key: str, n_classes: int
) -> Callable[[Mapping[str, Path]], tuple[Split, Split]]:
    def read(files: Mapping[str, Path]) -> tuple[Split, Split]:
        train = read_cifar_batches([files[f] for f in train_files], label_key, n_classes)
        test = read_cifar_batches([files[f] for f in test_files], label_key, n_classes)
        return train, test

    return read


_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))

SOURCES: dict[str, FileSource] = {
    "mnist": FileSource(
        name="mnist",
        layout="MNIST/raw",
        files=MNIST_FILES,
        gz_ok=True,
        kind="IDX files",
        obtain="Get the four *-ubyte.gz files from the dataset's site on a machine with a network",
        input_shape=(1, 28, 28),
        n_classes=10,
        read=read_mnist_layout,
        fetch=_fetch_mnist,
    ),
    "cifar10": FileSource(
        name="cifar10",
        layout="cifar-10-batches-py",
        files=(*_CIFAR10_TRAIN, "test_batch"),
        gz_ok=False,
        kind="pickled batches",
        obtain="Get cifar-10-python.tar.gz from the dataset's site on a machine with a network, extract it",
        input_shape=(3, 32, 32),
        n_classes=10,
        read=_cifar_reader(_CIFAR10_TRAIN, ("test_batch",), "labels", 10),
        fetch=_fetch_cifar("cifar10"),
    ),
    "cifar100": FileSource(
        name="cifar100",
        layout="cifar-100-python",
        files=("train", "test"),
        gz_ok=False,
        kind="pickled batches",
        obtain="Get cifar-100-python.tar.gz from the dataset's site on a machine with a network, extract it",
        input_shape=(3, 32, 32),
        n_classes=100,
        read=_cifar_reader(("train",), ("test",), "fine_labels", 100),
        fetch=_fetch_cifar("cifar100"),
    ),
}

# --- registered datasets -------------------------------------------------------------------------


mnist = official_dataset(
    "mnist",
    lambda: SOURCES["mnist"],
    """MNIST (28x28 grey digits, 10 classes) from the IDX files in ``MNIST/raw``.

    Validation is a stratified, seeded split of the official training set; test is the
    official test set. Pixels are scaled to [0, 1], then standardized per channel with the
    training split's statistics (augmentation, if any, is the trainer's: ``data.augment``).
    """,
    "IDXFormatError: a file is corrupt.",
)
cifar10 = official_dataset(
    "cifar10",
    lambda: SOURCES["cifar10"],
    """CIFAR-10 (32x32 colour images, 10 classes) from the pickled batches in ``cifar-10-batches-py``.

    Same parameters, splits and preprocessing as :func:`mnist`; 50,000 training and 10,000
    test images. The batches are read with the restricted unpickler (module docstring).
    """,
    "CIFARFormatError: a batch is corrupt, or names a global the unpickler refuses.",
)
cifar100 = official_dataset(
    "cifar100",
    lambda: SOURCES["cifar100"],
    """CIFAR-100 (32x32 colour images, 100 fine classes) from ``cifar-100-python``.

    Same parameters, splits and preprocessing as :func:`mnist`; 50,000 training and 10,000
    test images; the 20 coarse labels are not used. Read with the restricted unpickler.
    """,
    "CIFARFormatError: a batch is corrupt, or names a global the unpickler refuses.",
)
