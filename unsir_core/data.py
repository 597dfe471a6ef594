"""Data sets as in-memory image tensors, the forget/retain split, and the zero-glance guard.

Every data set is loaded once into uint8 tensors of shape (N, 3, H, W) with int64 labels.
Training, unlearning and evaluation then slice and normalise batches on the fly, which is far
faster on a CPU than a DataLoader that decodes PIL images one at a time, and it gives one
place where access to forget-class samples can be policed (:func:`forbid_classes`).

Registered data sets (:func:`list_datasets`):

- ``digits``: the 8x8 handwritten digits that ship inside scikit-learn (no download),
  upsampled to 32x32 RGB; a fixed stratified 80/20 train/test split.
- ``cifar10`` / ``cifar100``: torchvision's CIFAR under the data directory; downloaded when
  online, otherwise the official archive must be put there.
- ``imagefolder``: any folder of class sub-folders (e.g. a face set such as VGGFace-100),
  resized to ``image_size``; uses ``train/`` and ``test/`` sub-folders when present, else a
  seeded stratified split.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataMissingError, InvalidClassesError, UnknownNameError, ZeroGlanceViolation

# --------------------------------------------------------------------------------------------
# Zero-glance guard
# --------------------------------------------------------------------------------------------

_guard = threading.local()  # per thread, so a dashboard job does not block other sessions


def _forbidden() -> frozenset[int]:
    return getattr(_guard, "classes", frozenset())


@contextlib.contextmanager
def forbid_classes(classes: Sequence[int]):
    """While active, reading the images of any :class:`ImageTensors` that holds a sample of
    ``classes`` raises :class:`ZeroGlanceViolation`. Unlearning runs inside this guard."""
    previous = _forbidden()
    _guard.classes = previous | frozenset(int(c) for c in classes)
    try:
        yield
    finally:
        _guard.classes = previous


class ImageTensors:
    """A labelled set of images: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,).

    ``images`` is read through a property so that the zero-glance guard sees every access.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self._images = images
        self.labels = labels.to(torch.int64)
        self._classes: frozenset[int] | None = None

    @property
    def classes_present(self) -> frozenset[int]:
        if self._classes is None:
            self._classes = frozenset(torch.unique(self.labels).tolist())
        return self._classes

    @property
    def images(self) -> torch.Tensor:
        touched = self.classes_present & _forbidden()
        if touched:
            raise ZeroGlanceViolation(
                f"zero-glance violation: tried to read images of forget class(es) {sorted(touched)} "
                "while unlearning; UNSIR may only read the retained subset Dr_sub"
            )
        return self._images

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._images.shape[1:])  # shape is metadata, not a sample

    def subset(self, indices: torch.Tensor) -> ImageTensors:
        return ImageTensors(self.images[indices], self.labels[indices])

    def select(self, classes: Sequence[int]) -> ImageTensors:
        """Only the samples whose label is in ``classes``."""
        mask = torch.isin(self.labels, torch.as_tensor(list(classes), dtype=torch.int64))
        idx = mask.nonzero().squeeze(1)
        return ImageTensors(self.images[idx] if len(idx) else self._images[:0], self.labels[idx])

    def sample_per_class(self, classes: Sequence[int], per_class: int, seed: int) -> ImageTensors:
        """Up to ``per_class`` samples of each class in ``classes``, drawn with ``seed``
        (all of a class when it has fewer)."""
        gen = torch.Generator().manual_seed(seed)
        picked = []
        for c in classes:
            idx = (self.labels == c).nonzero().squeeze(1)
            picked.append(idx[torch.randperm(len(idx), generator=gen)[:per_class]])
        idx = torch.cat(picked).sort().values
        return self.subset(idx)


@dataclass
class DataBundle:
    """A loaded data set: splits, class names and the per-channel normalisation."""

    name: str
    train: ImageTensors
    test: ImageTensors
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float (B, C, H, W) in the model's input space."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float().div_(255.0) - mean) / std


# --------------------------------------------------------------------------------------------
# Forget / retain split
# --------------------------------------------------------------------------------------------


def resolve_classes(spec: str | Sequence[int | str], class_names: Sequence[str]) -> tuple[int, ...]:
    """Parse forget classes given as ids or names ("3,5", "cat", [3, "dog"]) and validate them:
    at least one, each in range, no repeats, and at least one class left to retain."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [s.strip() if isinstance(s, str) else s for s in items]
    items = [s for s in items if s != ""]
    if not items:
        raise InvalidClassesError("no forget class given: choose at least one class to forget")
    n = len(class_names)
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    ids = []
    for item in items:
        if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.lstrip("-").isdigit()):
            c = int(item)
            if not 0 <= c < n:
                raise InvalidClassesError(f"forget class {c} is out of range: this data set has classes 0..{n - 1}")
        elif isinstance(item, str) and item.lower() in lookup:
            c = lookup[item.lower()]
        else:
            raise InvalidClassesError(f"unknown class {item!r}; classes are: {', '.join(class_names)}")
        if c in ids:
            raise InvalidClassesError(f"forget class {c} ({class_names[c]}) is given twice")
        ids.append(c)
    if len(ids) == n:
        raise InvalidClassesError(f"all {n} classes chosen: at least one class must be retained")
    return tuple(sorted(ids))


def retained_classes(forget: Sequence[int], num_classes: int) -> tuple[int, ...]:
    return tuple(c for c in range(num_classes) if c not in set(forget))


def batches(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(transform(images[i]), labels[i])`` mini-batches, in order or shuffled.

    A last batch of a single sample is merged into the one before it: BatchNorm cannot train
    on one sample when the feature map is 1x1 (MobileNetV2 and ResNet18 at 32x32 input).
    """
    n = labels.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        idx = order[start:end]
        x = images[idx]
        yield (transform(x) if transform else x), labels[idx]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[..., DataBundle]] = {}


def register_dataset(name: str):
    def wrap(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        _LOADERS[name] = fn
        return fn

    return wrap


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def default_data_dir() -> Path:
    """``$UNSIR_DATA_DIR``, else ``$XDG_CACHE_HOME/unsir/data`` (``~/.cache/unsir/data``)."""
    if os.environ.get("UNSIR_DATA_DIR"):
        return Path(os.environ["UNSIR_DATA_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "unsir" / "data"


def load_dataset(name: str, data_dir: str | Path | None = None, **options) -> DataBundle:
    """Load a registered data set. ``data_dir`` defaults to :func:`default_data_dir`;
    ``imagefolder`` reads its images from ``data_dir`` and takes ``image_size``."""
    if name not in _LOADERS:
        raise UnknownNameError(f"unknown data set {name!r}; choose one of: {', '.join(list_datasets())}")
    root = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return _LOADERS[name](root, **options)


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


@register_dataset("digits")
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
    # name: (torchvision class name, archive file, mean, std)
    "cifar10": ("CIFAR10", "cifar-10-python.tar.gz", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", "cifar-100-python.tar.gz", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def _load_cifar(name: str, root: Path) -> DataBundle:
    import torchvision.datasets as tvd

    cls_name, archive, mean, std = _CIFAR[name]
    cls = getattr(tvd, cls_name)
    root.mkdir(parents=True, exist_ok=True)
    try:
        # download=True extracts a local archive after checking its md5, and only downloads
        # when the archive is missing.
        splits = [cls(str(root), train=t, download=True) for t in (True, False)]
    except (OSError, RuntimeError) as err:  # URLError is an OSError
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


@register_dataset("cifar10")
def _load_cifar10(root: Path) -> DataBundle:
    return _load_cifar("cifar10", root)


@register_dataset("cifar100")
def _load_cifar100(root: Path) -> DataBundle:
    return _load_cifar("cifar100", root)


@register_dataset("imagefolder")
def _load_imagefolder(root: Path, image_size: int = 32, test_fraction: float = 0.2) -> DataBundle:
    """``root`` holds class sub-folders, or ``train/`` and ``test/`` that each do."""
    import torchvision.datasets as tvd
    import torchvision.transforms.v2 as T

    if not root.is_dir():
        raise DataMissingError(
            f"image folder {root} does not exist; pass --data-dir with a folder of class sub-folders"
        )
    transform = T.Compose([T.Resize((image_size, image_size)), T.PILToTensor()])

    def read(folder: Path):
        try:
            ds = tvd.ImageFolder(str(folder), transform=transform)
        except (FileNotFoundError, RuntimeError) as err:
            raise DataMissingError(f"no usable images in {folder}: {err}") from err
        images = torch.stack([ds[i][0][:3].expand(3, -1, -1) for i in range(len(ds))])
        return images.contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64), ds.classes

    if (root / "train").is_dir() and (root / "test").is_dir():
        (x_tr, y_tr, classes), (x_te, y_te, test_classes) = read(root / "train"), read(root / "test")
        if test_classes != classes:
            raise DataMissingError(f"{root}/train and {root}/test have different class folders")
        train, test = ImageTensors(x_tr, y_tr), ImageTensors(x_te, y_te)
    else:
        x, y, classes = read(root)
        tr, te = _stratified_split(y.numpy(), test_fraction, seed=0)
        train, test = ImageTensors(x[tr], y[tr]), ImageTensors(x[te], y[te])
    if len(classes) < 2:
        raise DataMissingError(f"{root} has {len(classes)} class folder(s); unlearning needs at least 2")
    mean, std = _channel_stats(train.images)
    return DataBundle(f"imagefolder:{root.name}", train, test, list(classes), mean, std)
