"""Unlearning methods behind one registry and one signature.

Every method is ``run(task: UnlearningTask, cfg) -> UnlearnResult`` with a dataclass config of
documented defaults, and declares whether it reads forget-class samples. :func:`unlearn`
builds the task: a method that does not read them gets ``task.forget = None`` and runs inside
:func:`~unsir_core.data.forbid_classes`, so only zero-glance methods can be shown as such.

Adding a method is one decorated function (see ``baselines.py``)::

    @register_method("mine", MineConfig, reads_forget=False, summary="...")
    def mine(task: UnlearningTask, cfg: MineConfig) -> UnlearnResult: ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .config import knobs
from .data import DataBundle, ImageTensors, forbid_classes, retained_classes
from .errors import UnknownNameError
from .train import ProgressFn
from .unsir import UnlearnResult, UnsirConfig, default_unsir, unsir

Normalize = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class UnlearningTask:
    """Everything a method may use. ``forget`` is None for zero-glance methods."""

    model: nn.Module  # the original model; methods work on a copy and never change it
    model_name: str  # registry name of the architecture
    forget_classes: tuple[int, ...]
    num_classes: int
    retain: ImageTensors  # the retained classes' training samples
    forget: ImageTensors | None  # the forget classes' training samples, or None (zero-glance)
    normalize: Normalize
    device: torch.device
    seed: int = 0
    progress: ProgressFn | None = None


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[UnlearningTask, Any], UnlearnResult]
    config: type  # a dataclass whose defaults are the method's documented defaults
    reads_forget: bool  # True: needs forget-class samples, so it is not zero-glance
    summary: str


_METHODS: dict[str, Method] = {}


def register_method(name: str, config: type, *, reads_forget: bool, summary: str):
    def wrap(fn: Callable[[UnlearningTask, Any], UnlearnResult]):
        _METHODS[name] = Method(name, fn, config, reads_forget, summary)
        return fn

    return wrap


def list_methods() -> list[str]:
    _load_builtin()
    return list(_METHODS)


def get_method(name: str) -> Method:
    _load_builtin()
    if name not in _METHODS:
        raise UnknownNameError(f"unknown method {name!r}; choose one of: {', '.join(list_methods())}")
    return _METHODS[name]


def method_config(name: str, dataset: str, model: str, overrides: dict | None = None) -> Any:
    """The default config of method ``name`` for ``dataset``/``model``, with ``overrides``."""
    method = get_method(name)
    base = default_unsir(dataset, model) if name == "unsir" else method.config()
    return replace(base, **(overrides or {}))


def method_knobs(name: str) -> list[tuple[str, Any, str]]:
    """``(field, default, help)`` of a method's config, for the CLI and the dashboard."""
    return knobs(get_method(name).config)


def unlearn(
    name: str,
    model: nn.Module,
    model_name: str,
    data: DataBundle,
    forget_classes: tuple[int, ...],
    device: torch.device,
    cfg: Any = None,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> UnlearnResult:
    """Run method ``name`` on a copy of ``model``. Forget-class samples are handed over only
    to a method that declares ``reads_forget``; any other runs under the zero-glance guard."""
    method = get_method(name)
    cfg = cfg if cfg is not None else method_config(name, data.name, model_name)
    retain = data.train.select(retained_classes(forget_classes, data.num_classes))
    task = UnlearningTask(
        model=model, model_name=model_name, forget_classes=tuple(forget_classes), num_classes=data.num_classes,
        retain=retain, forget=data.train.select(forget_classes) if method.reads_forget else None,
        normalize=data.normalize, device=device, seed=seed, progress=progress,
    )  # fmt: skip
    start = time.perf_counter()
    if method.reads_forget:
        result = method.run(task, cfg)
    else:
        with forbid_classes(forget_classes):
            result = method.run(task, cfg)
    result.seconds = result.seconds or time.perf_counter() - start
    return result


@register_method(
    "unsir", UnsirConfig, reads_forget=False, summary="error-maximising noise, one impair and one repair epoch"
)
def _unsir(task: UnlearningTask, cfg: UnsirConfig) -> UnlearnResult:
    dr_sub = task.retain.sample_per_class(
        retained_classes(task.forget_classes, task.num_classes), cfg.dr_sub_per_class, seed=task.seed
    )
    return unsir(task.model, task.forget_classes, dr_sub, task.normalize, cfg, task.device, seed=task.seed,
                 progress=task.progress)  # fmt: skip


def _load_builtin() -> None:
    from . import baselines  # noqa: F401  (registers the baselines)
