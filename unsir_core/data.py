"""A data set in memory, the forget/retain split, batching, and the zero-glance guard.

Every data set is loaded once (``datasets.py``) into uint8 tensors of shape (N, 3, H, W) with
int64 labels. Training, unlearning and evaluation then slice and normalise batches on the fly,
which is far faster on a CPU than a DataLoader that decodes PIL images one at a time, and it
gives one place where access to forget-class samples can be policed (:func:`forbid_classes`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InvalidClassesError, ZeroGlanceViolation

Normalize = Callable[[torch.Tensor], torch.Tensor]  # uint8 images (B, C, H, W) -> the model's input space

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
        return self.split_per_class(classes, per_class, seed)[0]

    def split_per_class(
        self, classes: Sequence[int], per_class: int | Callable[[int], int], seed: int
    ) -> tuple[ImageTensors, ImageTensors]:
        """``(picked, rest)``: up to ``per_class`` samples of each class in ``classes`` drawn
        with ``seed`` (the same draw as :meth:`sample_per_class`), and the classes' other
        samples. ``per_class`` may be a function of the class's sample count."""
        gen = torch.Generator().manual_seed(seed)
        picked, rest = [], []
        for c in classes:
            idx = (self.labels == c).nonzero().squeeze(1)
            take = per_class(len(idx)) if callable(per_class) else per_class
            order = idx[torch.randperm(len(idx), generator=gen)]
            picked.append(order[:take])
            rest.append(order[take:])
        return self.subset(torch.cat(picked).sort().values), self.subset(torch.cat(rest).sort().values)


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
    for idx in batch_indices(labels.shape[0], batch_size, shuffle=shuffle, generator=generator):
        x = images[idx]
        yield (transform(x) if transform else x), labels[idx]


def num_batches(n: int, batch_size: int) -> int:
    """How many mini-batches :func:`batch_indices` makes of ``n`` samples."""
    count = -(-n // batch_size)
    return count - 1 if count > 1 and n - (count - 1) * batch_size == 1 else count


def batch_indices(
    n: int, batch_size: int, *, shuffle: bool = False, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """The sample indices of each mini-batch of :func:`batches` (the same order, the same rule
    for a last single sample)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    for i, start in enumerate(starts):
        yield order[start : starts[i + 1] if i + 1 < len(starts) else n]


def paired_batches(
    forget: ImageTensors, retain: ImageTensors, per_side: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One shuffled pass over ``forget`` in batches of ``per_side``, each joined by as many
    retained samples (a fresh random order of ``retain``, cycled): ``(xf, yf, xr, yr)``.
    Serves the baselines that train on forget data and the relearn-time metric."""
    r_order = torch.randperm(len(retain), generator=generator)
    for i, (xf, yf) in enumerate(batches(forget.images, forget.labels, per_side, shuffle=True, generator=generator)):
        ridx = r_order[(i * per_side) % len(r_order) :][:per_side]
        yield xf, yf, retain.images[ridx], retain.labels[ridx]
