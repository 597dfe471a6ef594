"""Metrics of a model against a forget/retain split. Functions return data; nothing draws.

Accuracy definitions (every figure is a fraction in [0, 1], per sample, not per batch):

- ``forget_acc``: on the TEST split, the fraction of forget-class images whose predicted
  class (argmax of the logits) equals their label. ADf in the paper; ~0 after forgetting.
- ``retain_acc``: the same over the retained classes' test images. ADr in the paper; it
  should stay close to the original model's.
- ``forget_acc_train`` / ``retain_acc_train``: the same on the TRAIN split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from .data import DataBundle, ImageTensors
from .train import ProgressFn, accuracy, predict


def split_accuracy(logits: torch.Tensor, labels: torch.Tensor, forget: Sequence[int]) -> tuple[float, float]:
    """``(forget accuracy, retain accuracy)`` of ``logits`` (N, K) against ``labels`` (N,)."""
    is_forget = torch.isin(labels, torch.as_tensor(list(forget), dtype=labels.dtype))
    return accuracy(logits[is_forget], labels[is_forget]), accuracy(logits[~is_forget], labels[~is_forget])


def accuracy_report(
    model: nn.Module, data: DataBundle, forget: Sequence[int], device: torch.device, progress: ProgressFn | None = None
) -> dict[str, float]:
    """``forget_acc``, ``retain_acc`` (test split), ``forget_acc_train``, ``retain_acc_train``.
    Evaluation reads forget-class samples: it runs after unlearning, never inside it."""
    out: dict[str, float] = {}
    for split, suffix in ((data.test, ""), (data.train, "_train")):
        logits = predict(model, split.images, data.normalize, device, progress=progress)
        out[f"forget_acc{suffix}"], out[f"retain_acc{suffix}"] = split_accuracy(logits, split.labels, forget)
    return out


def per_class_accuracy(model: nn.Module, split: ImageTensors, data: DataBundle, device: torch.device) -> list[float]:
    """Accuracy of each class on ``split`` (nan for a class with no sample), index = class id."""
    logits = predict(model, split.images, data.normalize, device)
    return [accuracy(logits[split.labels == c], split.labels[split.labels == c]) for c in range(data.num_classes)]
