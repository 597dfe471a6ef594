"""Metrics of unlearning. Functions return data (floats, dicts, lists); nothing draws.

Definitions (also in docs/metrics.md). Accuracies are per sample, fractions in [0, 1]:

- ``forget_acc`` (ADf): on the TEST split, the fraction of forget-class images whose
  predicted class (argmax of the logits) equals their label. ~0 after forgetting.
- ``retain_acc`` (ADr): the same over the retained classes' test images; it should stay close
  to the original model's.
- ``forget_acc_train`` / ``retain_acc_train``: the same on the TRAIN split.
- relearn time (:func:`relearn_time`): optimiser steps of fine-tuning on forget-class training
  data (mixed half and half with retained data, fixed lr and batch) until the forget accuracy
  on the test split reaches a threshold; 0 if it already does. A model that truly forgot
  relearns about as slowly as the retrained one.
- layer distance (:func:`layer_distances`): for each module that owns parameters, the L2 norm
  of the difference of all its parameters from the reference (original) model.
- prediction distribution (:func:`prediction_distribution`): counts of predicted classes over
  the forget-class test images.
- membership inference: ``privacy.py``.
- output distance (:func:`output_distance`): over forget-class test images, the mean
  Jensen-Shannon divergence (natural log, in [0, ln 2]) and the mean L2 distance between the
  softmax outputs of a model and of the retrained model.
- confusion matrix (:func:`confusion_matrix`): counts of (true class, predicted class) pairs
  over the test split, rows the true class.
- ToW (:func:`tug_of_war`, Zhao et al. 2024): the product over the forget set (forget-class
  TRAIN samples), the retain set (retained-class TRAIN samples) and the test set (the whole
  TEST split) of ``1 - |accuracy of the model - accuracy of the retrained model|``; 1 when the
  model matches the retrained one on all three, 1 for the retrained model itself.
- ZRF (:func:`zrf`, Chundawat et al. 2023): ``1 - mean JS(model, random)`` over forget-class
  test images, where JS is the Jensen-Shannon divergence in bits (log base 2, so in [0, 1])
  between the softmax outputs of the model and of a randomly initialised model of the same
  architecture; 1 means the model answers like a model that never learned anything. The
  retrained model's ZRF is the reference (the SSD repository's code computes a KL divergence
  with mean reduction instead; this is the paper's definition).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import DataBundle, ImageTensors, Normalize, paired_batches
from .runtime import ProgressFn, new_optimizer
from .train import accuracy, predict, train_one_epoch


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


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Fraction of each class's samples predicted as that class, index = class id (NaN for a
    class without samples)."""
    hits = torch.bincount(labels[logits.argmax(1) == labels], minlength=num_classes).float()
    counts = torch.bincount(labels, minlength=num_classes).float()
    return (hits / counts).tolist()


def prediction_distribution(logits: torch.Tensor, num_classes: int) -> list[int]:
    """Counts of predicted classes (argmax) over the rows of ``logits``, index = class id."""
    return torch.bincount(logits.argmax(1), minlength=num_classes).tolist()


def layer_distances(model: nn.Module, reference: nn.Module) -> dict[str, float]:
    """L2 distance to ``reference`` per module that owns parameters (named as in
    ``named_modules``; buffers such as BatchNorm statistics are not weights and are left out):
    ``sqrt(sum over the module's parameters of ||w - w_ref||^2)``."""
    ref = dict(reference.named_parameters())
    out: dict[str, float] = {}
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False))
        if not own:
            continue
        sq = 0.0
        for pname, p in own:
            full = f"{name}.{pname}" if name else pname
            if full not in ref or ref[full].shape != p.shape:
                raise ValueError(f"models differ at {full}: cannot compare their weights")
            sq += (p.detach().float().cpu() - ref[full].detach().float().cpu()).pow(2).sum().item()
        out[name or "(root)"] = math.sqrt(sq)
    return out


def output_distance(
    model: nn.Module, reference: nn.Module, images: torch.Tensor, normalize: Normalize, device: torch.device
) -> dict[str, float]:
    """Mean Jensen-Shannon divergence and mean L2 distance between the softmax outputs of
    ``model`` and ``reference`` over ``images`` (uint8)."""
    p = F.softmax(predict(model, images, normalize, device), dim=1)
    q = F.softmax(predict(reference, images, normalize, device), dim=1)
    return {
        "js_divergence": js_divergence(p, q).mean().item(),
        "activation_distance": (p - q).norm(dim=1).mean().item(),
    }


def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) of each row pair of the
    probability matrices ``p`` and ``q`` (N, K)."""
    m = 0.5 * (p + q)

    def kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * (a.clamp_min(1e-12).log() - b.clamp_min(1e-12).log())).sum(1)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Counts (K, K): row = true class, column = predicted class (argmax of ``logits``)."""
    pairs = labels * num_classes + logits.argmax(1)
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes).tolist()


TOW_TERMS = ("forget_acc_train", "retain_acc_train", "test_acc")  # forget set, retain set, test set


def tug_of_war(accuracies: dict[str, float], reference: dict[str, float]) -> float:
    """ToW of a model with ``accuracies`` against the retrained model's ``reference`` (both
    with the keys of :data:`TOW_TERMS`): ``prod(1 - |a - a_ref|)``."""
    out = 1.0
    for key in TOW_TERMS:
        out *= 1.0 - abs(accuracies[key] - reference[key])
    return out


def zrf(
    model: nn.Module, random_model: nn.Module, images: torch.Tensor, normalize: Normalize, device: torch.device
) -> float:
    """Zero retrain forgetting score: ``1 - mean JS`` in bits between the softmax outputs of
    ``model`` and of ``random_model`` (randomly initialised) over ``images``; in [0, 1]."""
    p = F.softmax(predict(model, images, normalize, device), dim=1)
    q = F.softmax(predict(random_model, images, normalize, device), dim=1)
    return 1.0 - (js_divergence(p, q) / math.log(2)).mean().item()


def relearn_time(
    model: nn.Module,
    forget_train: ImageTensors,
    retain_train: ImageTensors,
    forget_test: ImageTensors,
    normalize: Normalize,
    device: torch.device,
    *,
    threshold: float,
    lr: float = 1e-3,
    batch_size: int = 64,
    max_steps: int = 500,
    eval_every: int = 5,
    seed: int = 0,
) -> dict[str, float | int | bool]:
    """Steps (and epochs of the forget data) of Adam fine-tuning a copy of ``model`` until its
    accuracy on ``forget_test`` reaches ``threshold``; 0 when it already does.

    Each batch holds ``batch_size // 2`` forget-class and as many retained training samples,
    so the model cannot just predict the forget class everywhere. Accuracy is checked every
    ``eval_every`` steps; ``reached`` is False when ``max_steps`` pass first.
    """
    work = copy.deepcopy(model).to(device)
    gen = torch.Generator().manual_seed(seed)
    half = max(1, batch_size // 2)
    per_epoch = math.ceil(len(forget_train) / half)

    def forget_acc() -> float:
        return accuracy(predict(work, forget_test.images, normalize, device), forget_test.labels)

    def mixed_epoch():  # one pass over the forget data, each batch topped up with retained samples
        for xf, yf, xr, yr in paired_batches(forget_train, retain_train, half, gen):
            yield normalize(torch.cat([xf, xr])), torch.cat([yf, yr])

    state = {"steps": 0, "reached": forget_acc() >= threshold}

    def on_step() -> bool:
        state["steps"] += 1
        if state["steps"] % eval_every == 0 and forget_acc() >= threshold:
            state["reached"] = True
        return state["reached"] or state["steps"] >= max_steps

    optimizer = new_optimizer(torch.optim.Adam, work.parameters(), lr=lr)
    while not state["reached"] and state["steps"] < max_steps:
        train_one_epoch(work, mixed_epoch(), optimizer, device, on_step=on_step, phase="relearn")
    return {
        "steps": state["steps"],
        "epochs": state["steps"] / per_epoch,
        "reached": state["reached"],
        "threshold": threshold,
    }
