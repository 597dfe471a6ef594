"""Unlearning methods behind one registry and one signature.

Every method is ``run(task: UnlearningTask, cfg) -> UnlearnResult`` with a dataclass config of
documented defaults, and declares whether it reads forget-class samples. :func:`unlearn`
builds the task: a method that does not read them gets ``task.forget = None`` and runs inside
:func:`~unsir_core.data.forbid_classes`, so only zero-glance methods can be shown as such.

A method may declare presets, named ways of choosing its config for a data set and model
(``"tuned"``, the default, and e.g. ``"official"`` for the paper's values), and whether it is
the gold standard every other method is compared with (retraining) rather than an unlearning
method; nothing elsewhere special-cases a method by its name.

Adding a method is one decorated function in a module imported by the package (see
``baselines.py``, ``unsir.py``)::

    @register_method("mine", MineConfig, reads_forget=False, summary="...")
    def mine(task: UnlearningTask, cfg: MineConfig) -> UnlearnResult: ...
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .config import knobs, typed_value
from .data import DataBundle, ImageTensors, Normalize, forbid_classes, retained_classes
from .errors import InvalidConfigError, UnknownNameError
from .registry import Registry
from .runtime import ProgressFn

Preset = Callable[[str, str, str], Any]  # (data set, model, recipe set of the model) -> config
TUNED = "tuned"  # the preset a method uses unless told otherwise


@dataclass
class UnlearnResult:
    model: nn.Module  # the unlearned copy; the caller's model is unchanged
    seconds: float  # wall time of the whole unlearning
    phases: dict[str, float]  # seconds per phase (UNSIR: noise, impair, repair)
    history: list[dict] = field(default_factory=list)  # per epoch / step of the method (loss, accuracy, choices)


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

    def model_copy(self) -> nn.Module:
        """A copy of the original model on the task's device, for a method to change."""
        return copy.deepcopy(self.model).to(self.device)


@dataclass(frozen=True)
class Method:
    name: str
    run: Callable[[UnlearningTask, Any], UnlearnResult]
    config: type  # a dataclass whose defaults are the method's documented defaults
    reads_forget: bool  # True: needs forget-class samples, so it is not zero-glance
    summary: str
    presets: Mapping[str, Preset] = field(default_factory=dict)  # by name; none: "tuned" = config()
    gold_standard: bool = False  # the reference the others are compared with, not an unlearning method
    variant_of: str | None = None  # another method whose config this one takes, with ``changes``
    changes: Mapping[str, Any] = field(default_factory=dict)
    # (config, model name, device) -> None, raising for what can be known wrong before any work
    # (e.g. a precision the device cannot run); called when an experiment is configured
    check: Callable[[Any, str, torch.device], None] | None = None
    # the preset for a model whose training recipe is unknown (an upload, --original), for which
    # defaults tuned per recipe set do not hold; None: the tuned one
    unknown_model_preset: str | None = None
    # The method the tool is named for (UNSIR), one at most: the default method, its config fields
    # get top-level flags on the command line (renamed by ``flag_names`` where they would clash),
    # ``--preset`` chooses its preset (``preset_help`` says what each is), and its config stays at the
    # top of metrics.json's config, as runs have always had it.
    headline: bool = False
    flag_names: Mapping[str, str] = field(default_factory=dict)
    preset_help: str = ""

    def variants(self) -> list[str]:
        """The registered variants of this method (its ablations), in registration order."""
        return [m.name for m in _METHODS.values() if m.variant_of == self.name]

    def default_preset(self, recipe_known: bool = True) -> str:
        """The preset used unless one is chosen: ``tuned``, or, for a model whose training
        recipe is unknown, the method's ``unknown_model_preset`` when it declares one."""
        return self.unknown_model_preset if not recipe_known and self.unknown_model_preset else TUNED

    def preset_names(self) -> list[str]:
        """The presets a user can choose from, ``tuned`` (the default) first."""
        source = get_method(self.variant_of) if self.variant_of is not None else self
        return [TUNED, *(name for name in source.presets if name != TUNED)]

    def preset(self, preset: str, dataset: str, model: str, recipes: str = "official") -> Any:
        """The config of ``preset`` for ``dataset``/``model``, a model trained with the recipe
        set ``recipes`` (see unsir_core.recipes: a method tuned on one set's models may need
        other settings on another's)."""
        if self.variant_of is not None:
            return replace(get_method(self.variant_of).preset(preset, dataset, model, recipes), **self.changes)
        presets = {TUNED: lambda d, m, r: self.config(), **self.presets}
        if preset not in presets:
            raise UnknownNameError(f"{self.name} has no preset {preset!r}; presets: {', '.join(presets)}")
        return presets[preset](dataset, model, recipes)


_METHODS: Registry[Method] = Registry("method")


def register_method(
    name: str,
    config: type,
    *,
    reads_forget: bool,
    summary: str,
    presets: Mapping[str, Preset] | None = None,
    gold_standard: bool = False,
    check: Callable[[Any, str, torch.device], None] | None = None,
    unknown_model_preset: str | None = None,
    headline: bool = False,
    flag_names: Mapping[str, str] | None = None,
    preset_help: str = "",
):
    def wrap(fn: Callable[[UnlearningTask, Any], UnlearnResult]):
        if headline and any(m.headline for m in _METHODS.values() if m.name != name):
            raise ValueError(f"{name}: there is a headline method already ({headline_method().name})")
        _METHODS[name] = Method(
            name,
            fn,
            config,
            reads_forget,
            summary,
            dict(presets or {}),
            gold_standard,
            check=check,
            unknown_model_preset=unknown_model_preset,
            headline=headline,
            flag_names=dict(flag_names or {}),
            preset_help=preset_help,
        )
        return fn

    return wrap


def register_variant(name: str, *, of: str, changes: Mapping[str, Any], summary: str) -> None:
    """Register ``name``: method ``of`` run with its config changed by ``changes`` (an ablation,
    e.g. UNSIR without noise), so that both can run side by side in one experiment."""
    base = get_method(of)
    _METHODS[name] = replace(
        base,
        name=name,
        summary=summary,
        presets={},
        variant_of=of,
        changes=dict(changes),
        unknown_model_preset=None,
        headline=False,
    )


def headline_method() -> Method:
    """The method the tool is named for (declared ``headline=True`` at its registration)."""
    found = [m for m in _METHODS.values() if m.headline]
    if len(found) != 1:
        raise LookupError(f"expected one headline method, found {len(found)}")
    return found[0]


def list_methods(*, gold_standard: bool | None = None) -> list[str]:
    """Every registered method, or only those that are (or are not) the gold standard."""
    return [n for n, m in _METHODS.items() if gold_standard is None or m.gold_standard == gold_standard]


def unlearning_methods() -> list[str]:
    """The methods a user can unlearn with (every method but the gold standard)."""
    return list_methods(gold_standard=False)


def get_method(name: str) -> Method:
    return _METHODS.lookup(name)


def method_config(
    name: str,
    dataset: str,
    model: str,
    overrides: dict | None = None,
    preset: str = TUNED,
    recipes: str = "official",
) -> Any:
    """The config of method ``name`` for ``dataset``/``model`` trained with the recipe set
    ``recipes`` (its ``preset``), with ``overrides``."""
    return replace(get_method(name).preset(preset, dataset, model, recipes), **(overrides or {}))


def parse_method_overrides(items: list[str]) -> tuple[tuple[str, str, Any], ...]:
    """``METHOD.FIELD=VALUE`` items (``--set``) -> (method, field, value typed as the field)."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot:
            raise InvalidConfigError(f"--set {item!r}: expected METHOD.FIELD=VALUE, e.g. neggrad.lr=0.005")
        try:
            value = typed_value(get_method(method).config, name, raw)
        except InvalidConfigError as err:
            raise InvalidConfigError(f"--set {item!r}: {method} {err}") from None
        out.append((method, name, value))
    return tuple(out)


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
        model=model,
        model_name=model_name,
        forget_classes=tuple(forget_classes),
        num_classes=data.num_classes,
        retain=retain,
        forget=data.train.select(forget_classes) if method.reads_forget else None,
        normalize=data.normalize,
        device=device,
        seed=seed,
        progress=progress,
    )
    start = time.perf_counter()
    # torch's global generator (dropout, a method's own draws) starts from the seed for every
    # method, whatever ran before, and is left as it was
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        if method.reads_forget:
            result = method.run(task, cfg)
        else:
            with forbid_classes(forget_classes):
                result = method.run(task, cfg)
    result.seconds = result.seconds or time.perf_counter() - start
    return result
