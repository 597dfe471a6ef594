"""Where data sets come from: a registry of loaders, each returning a :class:`DataBundle`.

Registered data sets (:func:`list_datasets`):

- ``digits``: the 8x8 handwritten digits that ship inside scikit-learn (no download),
  upsampled to 32x32 RGB; a fixed stratified 80/20 train/test split.
- ``cifar10`` / ``cifar100``: torchvision's CIFAR under the data directory; downloaded when
  online, otherwise the official archive must be put there.
- ``fashionmnist``: the 28x28 Fashion-MNIST (60,000 training and 10,000 test images of 10
  kinds of clothing), resized to ``image_size`` and repeated to 3 channels as digits is; read
  from torchvision's layout under the data directory or from the Debian package
  ``dataset-fashion-mnist`` (``apt-get install -y dataset-fashion-mnist``, offline), else
  downloaded by torchvision when online.
- ``imagefolder``: any folder of class sub-folders (e.g. a face set such as VGGFace-100),
  resized to ``image_size``; uses ``train/`` and ``test/`` sub-folders when present, else a
  seeded stratified split. A file that cannot be decoded is an error that names it.

Adding one is a decorated function ``loader(root, [image_size]) -> DataBundle``; the
registration says whether it takes an image size and whether its data directory is a folder
the user chooses (as for ``imagefolder``) rather than the shared data directory.
"""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import DataBundle, ImageTensors
from .errors import BadDataError, DataMissingError, InvalidConfigError
from .paths import default_data_dir, first_missing
from .registry import Registry


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[..., DataBundle]
    resizable: bool  # takes ``image_size`` (images are resized to it)
    user_folder: bool  # its data directory is a folder of the user's, not the shared data directory
    # (data directory) -> whether its files are on this machine; None: cannot tell beforehand
    present: Callable[[Path], bool] | None = None


_DATASETS: Registry[DatasetSpec] = Registry("data set", sort=True)


def register_dataset(
    name: str, *, resizable: bool = False, user_folder: bool = False, present: Callable[[Path], bool] | None = None
):
    def wrap(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        _DATASETS[name] = DatasetSpec(name, fn, resizable, user_folder, present)
        return fn

    return wrap


def list_datasets() -> list[str]:
    return _DATASETS.names()


def dataset_present(name: str, data_dir: str | Path | None = None) -> bool | None:
    """Whether data set ``name`` can be loaded without a download: True or False, or None when
    that cannot be told before loading (a user's image folder). Cheap: it looks for files."""
    spec = dataset_spec(name)
    return None if spec.present is None else spec.present(_root(data_dir))


def dataset_spec(name: str) -> DatasetSpec:
    return _DATASETS.lookup(name)


# Image sides the resized data sets accept: below 8 a ResNet's stages have no pixel left; 512
# is twice the largest side the models are meant for (224) and keeps a data set in memory.
IMAGE_SIZES = range(8, 513)


def check_image_size(size: int) -> int:
    if size not in IMAGE_SIZES:
        raise InvalidConfigError(
            f"image size must be between {IMAGE_SIZES.start} and {IMAGE_SIZES.stop - 1} pixels, got {size}"
        )
    return size


def load_dataset(name: str, data_dir: str | Path | None = None, image_size: int = 32) -> DataBundle:
    """Load a registered data set. ``data_dir`` defaults to :func:`default_data_dir`
    (``imagefolder`` reads its images from it); ``image_size`` (within :data:`IMAGE_SIZES`)
    applies to the data sets that are resized (digits, imagefolder) and is ignored by the others."""
    spec = dataset_spec(name)
    check_image_size(image_size)
    root = _root(data_dir)
    return spec.load(root, image_size=image_size) if spec.resizable else spec.load(root)


def _root(data_dir: str | Path | None) -> Path:
    """The data directory: ``data_dir`` if given, else :func:`default_data_dir`."""
    return Path(data_dir).expanduser() if data_dir else default_data_dir()


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size), bilinear."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = max(1, int(round(len(idx) * test_fraction)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.float().div(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


@register_dataset("digits", resizable=True, present=lambda root: True)  # embedded in scikit-learn
def _load_digits(root: Path, image_size: int = 32) -> DataBundle:
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.from_numpy(raw.images / 16.0 * 255.0).round().to(torch.uint8)  # (1797, 8, 8)
    x = _resize(x.unsqueeze(1), image_size).expand(-1, 3, -1, -1).contiguous()  # (N, 3, S, S)
    y = torch.from_numpy(raw.target.astype(np.int64))
    tr, te = _stratified_split(raw.target, test_fraction=0.2, seed=0)  # fixed, not the run's seed
    train = ImageTensors(x[tr], y[tr])
    mean, std = _channel_stats(train.images)
    return DataBundle("digits", train, ImageTensors(x[te], y[te]), [str(i) for i in range(10)], mean, std)


_CIFAR = {
    # name: (torchvision class name, archive file, folder it extracts to, mean, std)
    "cifar10": (
        "CIFAR10",
        "cifar-10-python.tar.gz",
        "cifar-10-batches-py",
        (0.4914, 0.4822, 0.4465),
        (0.2023, 0.1994, 0.2010),
    ),
    "cifar100": (
        "CIFAR100",
        "cifar-100-python.tar.gz",
        "cifar-100-python",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


def _cifar_present(name: str) -> Callable[[Path], bool]:
    """Whether the official archive or the folder it extracts to is in the data directory."""
    _, archive, folder, _, _ = _CIFAR[name]
    return lambda root: (root / archive).is_file() or (root / folder).is_dir()


def _load_cifar(name: str, root: Path) -> DataBundle:
    import torchvision.datasets as tvd

    cls_name, archive, _, mean, std = _CIFAR[name]
    cls = getattr(tvd, cls_name)
    created = first_missing(root)  # a failed load removes what it created, and only that
    try:
        # download=True extracts a local archive after checking its md5, and only downloads
        # when the archive is missing.
        splits = [cls(str(root), train=t, download=True) for t in (True, False)]
    except BaseException as err:  # also an interrupt: nothing half-downloaded stays behind
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if not isinstance(err, (OSError, RuntimeError)):  # URLError is an OSError
            raise
        from torchvision.datasets.utils import check_integrity

        if (root / archive).is_file() and not check_integrity(str(root / archive), cls.tgz_md5):
            raise BadDataError(
                f"{root / archive} is damaged: its MD5 checksum is not the official archive's ({cls.tgz_md5}). "
                "Replace it with the official archive and run again."
            ) from err
        raise DataMissingError(
            f"{name} is not in {root} and could not be downloaded ({err}). Put the official "
            f"archive {archive} into {root} (or pass --data-dir / set UNSIR_DATA_DIR to the "
            "folder that holds it) and run again."
        ) from err

    def to_tensors(ds) -> ImageTensors:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        return ImageTensors(images, torch.as_tensor(ds.targets, dtype=torch.int64))

    train, test = (to_tensors(s) for s in splits)
    return DataBundle(name, train, test, list(splits[0].classes), mean, std)


@register_dataset("cifar10", present=_cifar_present("cifar10"))
def _load_cifar10(root: Path) -> DataBundle:
    return _load_cifar("cifar10", root)


@register_dataset("cifar100", present=_cifar_present("cifar100"))
def _load_cifar100(root: Path) -> DataBundle:
    return _load_cifar("cifar100", root)


# Where Debian's package dataset-fashion-mnist puts the idx files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST's format; gzipped when its name ends in .gz) as a uint8 array: a
    big-endian header of two zero bytes, the type 0x08 (unsigned byte), the number of dimensions
    and each dimension, then the data."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise BadDataError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise BadDataError(f"{path} holds {data.size} values, its header says {shape}")
    return data.reshape(shape)


def _fashion_folder(root: Path) -> Path | None:
    """The first folder holding the four Fashion-MNIST idx files (gzipped or not):
    torchvision's layout under the data directory, then the Debian package's."""
    for folder in (root / "FashionMNIST" / "raw", DEBIAN_FASHION_MNIST):
        names = [n for pair in _FASHION_FILES.values() for n in pair]
        if all((folder / n).exists() or (folder / f"{n}.gz").exists() for n in names):
            return folder
    return None


@register_dataset("fashionmnist", resizable=True, present=lambda root: _fashion_folder(root) is not None)
def _load_fashionmnist(root: Path, image_size: int = 32) -> DataBundle:
    folder = _fashion_folder(root)
    if folder is None:
        import torchvision.datasets as tvd

        created = first_missing(root)
        try:
            tvd.FashionMNIST(str(root), train=True, download=True)  # online only: fetches the idx files
        except BaseException as err:
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            if not isinstance(err, (OSError, RuntimeError)):
                raise
            raise DataMissingError(
                f"fashionmnist is neither in {root / 'FashionMNIST' / 'raw'} nor in {DEBIAN_FASHION_MNIST} and could "
                f"not be downloaded ({err}). Install it offline with `apt-get install -y dataset-fashion-mnist` "
                "(Debian), or put the four idx files into the first folder."
            ) from err
        folder = root / "FashionMNIST" / "raw"

    def split(name: str) -> ImageTensors:
        images, labels = (
            read_idx(next(folder / f for f in (n, f"{n}.gz") if (folder / f).exists())) for n in _FASHION_FILES[name]
        )
        if images.ndim != 3 or labels.shape != (len(images),) or labels.max() >= len(FASHION_MNIST_CLASSES):
            raise BadDataError(
                f"the Fashion-MNIST {name} files in {folder} do not match "
                f"(images {images.shape}, labels {labels.shape})"
            )
        x = _resize(torch.from_numpy(images.copy()).unsqueeze(1), image_size)  # (N, 1, S, S)
        return ImageTensors(x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(labels.astype(np.int64)))

    train, test = split("train"), split("test")
    mean, std = _channel_stats(train.images[:, :1])
    return DataBundle("fashionmnist", train, test, list(FASHION_MNIST_CLASSES), mean * 3, std * 3)


def _read_image_folder(folder: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images (N, 3, S, S) uint8, labels and class names of a folder of class sub-folders,
    in torchvision ImageFolder's order (classes and files sorted by name). Every image file
    that cannot be decoded is collected first, so the error names them all at once."""
    import torchvision.transforms.v2 as T
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError
    from torchvision.datasets.folder import IMG_EXTENSIONS

    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    transform = T.Compose([T.Resize((image_size, image_size)), T.PILToTensor()])
    images, labels, bad = [], [], []
    seen: set[str] = set()  # real paths of the folders and files read: each once, however linked
    for label, name in enumerate(classes):
        files = [f for f in _files_once(folder / name, folder, seen) if f.name.lower().endswith(IMG_EXTENSIONS)]
        if not files:
            raise DataMissingError(
                f"class folder {name!r} in {folder.name} holds no image file ({', '.join(IMG_EXTENSIONS)})"
            )
        for path in files:
            try:
                with Image.open(path) as img:
                    images.append(transform(img.convert("RGB")))
                labels.append(label)
            except (UnidentifiedImageError, DecompressionBombError, OSError, ValueError) as err:
                bad.append((path.relative_to(folder), err))
    if bad:
        (first, err), more = bad[0], len(bad) - 1
        raise BadDataError(
            f"{folder.name}/{first} cannot be read as an image ({type(err).__name__})"
            + (f", nor can {more} more file(s)" if more else "")
            + f"; remove or replace {'them' if more else 'it'} and load the folder again"
        )
    if not images:
        raise DataMissingError(f"{folder.name} holds no class sub-folder with images")
    return torch.stack(images).contiguous(), torch.as_tensor(labels, dtype=torch.int64), classes


def _files_once(top: Path, root: Path, seen: set[str]) -> list[Path]:
    """The files under the class folder ``top`` of the image folder ``root``, sorted by folder
    and name. Links are followed (data sets are often linked in), but not into another part of
    ``root`` (another class's images, or back up the tree), and no folder or file whose real
    path is in ``seen`` is read again (a link loop); what is read is added to ``seen``."""
    root_real, top_real = os.path.realpath(root), os.path.realpath(top)

    def elsewhere_in_root(real: str) -> bool:
        return _within(real, root_real) and not _within(real, top_real)

    found = []
    for base, dirs, names in os.walk(top, followlinks=True):
        real = os.path.realpath(base)
        if real in seen or elsewhere_in_root(real):
            dirs.clear()  # a loop, or images that are not this class's: not read from here
            continue
        seen.add(real)
        for f in names:
            path = os.path.realpath(os.path.join(base, f))
            if path not in seen and not elsewhere_in_root(path):
                seen.add(path)
                found.append((base, f))
    return [Path(base) / f for base, f in sorted(found)]


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


@register_dataset("imagefolder", resizable=True, user_folder=True)
def _load_imagefolder(root: Path, image_size: int = 32, test_fraction: float = 0.2) -> DataBundle:
    """``root`` holds class sub-folders, or ``train/`` and ``test/`` that each do."""
    if not root.is_dir():
        raise DataMissingError(
            f"image folder {root} does not exist; pass --data-dir with a folder of class sub-folders"
        )
    if (root / "train").is_dir() and (root / "test").is_dir():
        x_tr, y_tr, classes = _read_image_folder(root / "train", image_size)
        x_te, y_te, test_classes = _read_image_folder(root / "test", image_size)
        if test_classes != classes:
            raise DataMissingError(f"{root.name}/train and {root.name}/test have different class folders")
        train, test = ImageTensors(x_tr, y_tr), ImageTensors(x_te, y_te)
    else:
        x, y, classes = _read_image_folder(root, image_size)
        tr, te = _stratified_split(y.numpy(), test_fraction, seed=0)
        train, test = ImageTensors(x[tr], y[tr]), ImageTensors(x[te], y[te])
    if len(classes) < 2:
        raise DataMissingError(f"{root.name} has {len(classes)} class folder(s); unlearning needs at least 2")
    for split, part in (("training", train), ("test", test)):  # a class with no image there cannot be measured
        counts = torch.bincount(part.labels, minlength=len(classes))
        if empty := [classes[c] for c in range(len(classes)) if counts[c] == 0]:
            raise DataMissingError(
                f"class {empty[0]!r} of {root.name} has no {split} image"
                + (f" (nor do {len(empty) - 1} more)" if len(empty) > 1 else "")
                + ": every class needs at least 2 images, one to train on and one to test on"
            )
    mean, std = _channel_stats(train.images)
    return DataBundle(f"imagefolder:{root.name}", train, test, list(classes), mean, std)
