"""Evaluating a model of an experiment: accuracies, then the metrics beyond accuracy by name.

Each metric beyond accuracy is registered under the name users pick it by (``--metrics``, the
dashboard) with the key it is stored under in metrics.json, and computed from an
:class:`EvalContext`, what every model of one experiment is measured against: the data, the
forget classes, the reference models (original and retrained) and the relearn threshold.
The definitions are in ``metrics.py`` and README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .data import DataBundle, ImageTensors, retained_classes
from .metrics import (
    accuracy_report,
    layer_distances,
    membership_inference,
    output_distance,
    prediction_distribution,
    relearn_time,
)
from .registry import Registry
from .runtime import ProgressFn
from .train import predict


@dataclass(frozen=True)
class EvalSplits:
    """The forget / retained parts of both splits, selected once per experiment (CIFAR's
    retained training set alone is 135 MB: copying it for every model evaluated is waste)."""

    forget_train: ImageTensors
    forget_test: ImageTensors
    retain_train: ImageTensors
    retain_test: ImageTensors

    @classmethod
    def of(cls, data: DataBundle, forget: Sequence[int]) -> EvalSplits:
        retain = retained_classes(forget, data.num_classes)
        return cls(
            data.train.select(forget), data.test.select(forget), data.train.select(retain), data.test.select(retain)
        )


@dataclass(frozen=True)
class EvalContext:
    """What every model of one experiment is measured against."""

    data: DataBundle
    forget: tuple[int, ...]
    device: torch.device
    splits: EvalSplits
    original: nn.Module | None  # the reference of the weight distance
    retrained: nn.Module | None  # the reference of the output distance
    relearn_threshold: float  # forget accuracy (test) at which relearning counts as done
    seed: int


@dataclass(frozen=True)
class Metric:
    name: str  # as users pick it
    key: str  # where metrics.json stores it
    fn: Callable[[nn.Module, EvalContext], Any]
    needs: str | None  # "original" or "retrained": skipped when the context has no such model


_METRICS: Registry[Metric] = Registry("metric")


def register_metric(name: str, key: str, *, needs: str | None = None):
    def wrap(fn: Callable[[nn.Module, EvalContext], Any]):
        _METRICS[name] = Metric(name, key, fn, needs)
        return fn

    return wrap


def list_metrics() -> list[str]:
    """The metrics beyond accuracy, in the order they are computed and stored."""
    return _METRICS.names()


def check_metrics(names: Sequence[str]) -> None:
    for name in names:
        _METRICS.lookup(name)


@register_metric("predictions", "prediction_distribution")
def _predictions(model: nn.Module, ctx: EvalContext) -> list[int]:
    logits = predict(model, ctx.splits.forget_test.images, ctx.data.normalize, ctx.device)
    return prediction_distribution(logits, ctx.data.num_classes)


@register_metric("distance", "layer_distance", needs="original")
def _distance(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    return layer_distances(model, ctx.original)


@register_metric("mia", "mia")
def _mia(model: nn.Module, ctx: EvalContext) -> dict:
    s = ctx.splits
    return membership_inference(
        model, s.retain_train, s.retain_test, s.forget_train, ctx.data.normalize, ctx.device, seed=ctx.seed
    )


@register_metric("output_distance", "output_distance", needs="retrained")
def _output_distance(model: nn.Module, ctx: EvalContext) -> dict[str, float]:
    return output_distance(model, ctx.retrained, ctx.splits.forget_test.images, ctx.data.normalize, ctx.device)


@register_metric("relearn", "relearn")
def _relearn(model: nn.Module, ctx: EvalContext) -> dict:
    retain = retained_classes(ctx.forget, ctx.data.num_classes)
    dr = ctx.data.train.sample_per_class(retain, 100, seed=ctx.seed)
    s = ctx.splits
    return relearn_time(
        model,
        s.forget_train,
        dr,
        s.forget_test,
        ctx.data.normalize,
        ctx.device,
        threshold=ctx.relearn_threshold,
        seed=ctx.seed,
    )


def extra_metrics(model: nn.Module, ctx: EvalContext, which: Sequence[str]) -> dict:
    """The metrics beyond accuracy named in ``which``, under their metrics.json keys, in
    registration order; one that needs a reference model the context lacks is left out."""
    check_metrics(which)
    out: dict[str, Any] = {}
    for metric in _METRICS.values():
        if metric.name in which and (metric.needs is None or getattr(ctx, metric.needs) is not None):
            out[metric.key] = metric.fn(model, ctx)
    return out


def evaluate_model(
    model: nn.Module, ctx: EvalContext, which: Sequence[str], progress: ProgressFn | None = None
) -> dict:
    """Every metric of ``model``: the accuracies (metrics.py), then those named in ``which``."""
    return accuracy_report(model, ctx.data, ctx.forget, ctx.device, progress) | extra_metrics(model, ctx, which)
