"""Fashion-MNIST from the original IDX files in a local folder (torchvision only to download).

Folders searched, in order (each must hold all four files, ``.gz`` or uncompressed; the
search is ``growray.data._folders``'s, shared with mnist and CIFAR):

1. ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout), when ``root`` is given;
2. ``$GROWRAY_DATA_ROOT/fashion_mnist`` and ``$GROWRAY_DATA_ROOT/FashionMNIST/raw``;
3. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package);
4. ``~/.cache/growray/FashionMNIST/raw`` (where ``download: true`` puts it without a root).
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

from pathlib import Path

from growray.data._folders import FileSource, official_dataset
from growray.data._idx import MNIST_FILES, read_mnist_layout

__all__ = ["SYSTEM_FOLDERS", "fashion_mnist"]

SYSTEM_FOLDERS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)


def _fetch(target: Path) -> None:
    import torchvision.datasets

    torchvision.datasets.FashionMNIST(str(target), train=True, download=True)


def _source() -> FileSource:
    """Built per call, so the system folders are read when the dataset is loaded."""
    system = ", ".join(str(f) for f in SYSTEM_FOLDERS)
    return FileSource(
        name="fashion_mnist",
        layout="FashionMNIST/raw",
        files=MNIST_FILES,
        gz_ok=True,
        kind="IDX files",
        obtain=(
            f"Install them with `apt-get install dataset-fashion-mnist` (into {system}, searched above), "
            "or get the four *-ubyte.gz files from the dataset's site on a machine with a network"
        ),
        input_shape=(1, 28, 28),
        n_classes=10,
        read=read_mnist_layout,
        fetch=_fetch,
        system_folders=SYSTEM_FOLDERS,
    )


fashion_mnist = official_dataset(
    "fashion_mnist",
    _source,
    """Fashion-MNIST (28x28 grey images, 10 classes) read from the original IDX files.

    Validation is a stratified, seeded split of the official training set (60,000 images);
    test is the official test set (10,000). Pixels are scaled to [0, 1], then standardized
    with the scalar mean and std of the training split (its one channel's).
    """,
    "IDXFormatError: a file is corrupt.",
)
