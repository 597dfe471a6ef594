"""One experiment: original model, retrained gold standard, the unlearning methods, their metrics.

``run_experiment(cfg)`` trains or loads (from the model cache) the original model on all
classes and the retrained model on the retained classes only, with the same recipe and seed,
then unlearns the forget classes from the original with every method and measures all of them
(``evaluation.py``). With several seeds it runs every method for every seed (each seed trains
or loads its own original and retrained models, unless ``model_seed`` fixes one pair for all
seeds, so that the spread is that of the unlearning alone) and reports means and standard
deviations. The result is the content of metrics.json; ``runs.write_run`` stores it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .checkpoints import weights_sha256
from .data import DataBundle, resolve_classes, retained_classes
from .datasets import check_image_size, load_dataset
from .errors import InvalidConfigError, UnsirError
from .evaluation import EvalContext, EvalSplits, add_scores, check_metrics, evaluate_model, unaveraged_keys
from .methods import get_method, headline_method, list_methods, method_config, unlearn
from .model_cache import checkpoint_model, trained_model
from .paths import default_cache_dir
from .provenance import environment
from .recipes import RECIPE_SETS, TrainConfig, default_recipe
from .runtime import ProgressFn, check_precision, check_seed, resolve_device
from .train import accuracy, predict
from .unsir import UnsirConfig


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines an experiment's numbers. Checked when made: a bad seed,
    name or hyper-parameter fails here, before any data is read or model trained."""

    dataset: str  # a name from list_datasets()
    model: str  # a name from list_models()
    forget: tuple[int | str, ...]  # forget classes, by id or name
    seed: int = 0  # seeds model init, batch order, Dr_sub and noise
    device: str = "auto"  # auto (CUDA, then MPS, then CPU), cpu, cuda, mps
    data_dir: str | None = None  # None: $UNSIR_DATA_DIR or the per-user cache
    cache_dir: str | None = None  # None: $UNSIR_CACHE_DIR or the per-user cache
    image_size: int = 32  # side of the square input images (digits, imagefolder)
    recipes: str = "official"  # the recipe set of the original and retrained models (unsir_core.recipes)
    train: TrainConfig | None = None  # None: default_recipe(dataset, model, recipes)
    retrain: bool = True  # also train (or load) the retrained gold standard
    methods: tuple[str, ...] = ("unsir",)  # unlearning methods to run and compare
    method_configs: Mapping[str, Any] = field(default_factory=dict)  # whole configs replacing a method's defaults
    method_overrides: tuple[tuple[str, str, Any], ...] = ()  # (method, field, value) changes on top
    presets: Mapping[str, str] = field(default_factory=dict)  # a method's preset, if not its default one
    seeds: tuple[int, ...] | None = None  # None: (seed,); several: mean and std over seeds
    original_checkpoint: str | None = None  # use this checkpoint as the original instead of training one
    retrained_checkpoint: str | None = None  # use this checkpoint as the retrained gold standard
    model_seed: int | None = None  # seed of the original and retrained models; None: each seed trains its own
    metrics: tuple[str, ...] = ("relearn", "distance", "predictions", "mia", "output_distance")  # beyond accuracy
    relearn_fraction: float = 0.9  # relearn threshold, as a fraction of the original's forget accuracy

    def __post_init__(self) -> None:
        for seed in self.seed_list():
            check_seed(seed)
        if self.model_seed is not None:
            check_seed(self.model_seed, "model seed")
        check_image_size(self.image_size)
        if not 0 < self.relearn_fraction <= 1:
            raise InvalidConfigError(f"relearn fraction must be in (0, 1], got {self.relearn_fraction}")
        check_metrics(self.metrics)
        if self.recipes not in RECIPE_SETS:  # it chooses the methods' defaults even when train is given
            raise InvalidConfigError(f"unknown recipe set {self.recipes!r}; choose one of: {', '.join(RECIPE_SETS)}")
        device = resolve_device(self.device)  # an absent device fails now
        check_precision(self.recipe().precision, device)
        if not self.methods:  # both reference models would train for a run with nothing to compare
            raise InvalidConfigError(f"no unlearning method given; name one or more of: {', '.join(list_methods())}")
        for name in self.methods:
            config = self.method_config(name)  # an unknown method, field or out-of-range value fails now
            check = get_method(name).check
            if check is not None:
                check(config, self.model, device)  # e.g. fp16 on a CPU, too many frozen stages

    def recipe(self) -> TrainConfig:
        return self.train or default_recipe(self.dataset, self.model, self.recipes)

    def method_config(self, name: str) -> Any:
        """The config ``name`` runs with: given whole in ``method_configs``, else its defaults
        (a variant: the config of the method it varies, with its changes), then the overrides."""
        method = get_method(name)
        if name in self.method_configs:
            base = self.method_configs[name]
        elif method.variant_of is not None:
            base = replace(self.method_config(method.variant_of), **method.changes)
        else:
            base = method_config(name, self.dataset, self.model, preset=self.preset(name), recipes=self.recipes)
        return replace(base, **{f: v for m, f, v in self.method_overrides if m == name})

    def preset(self, name: str) -> str:
        """The preset method ``name`` starts from: the one chosen in ``presets``, else its
        default, which for a model of unknown recipe (``original_checkpoint``) may differ."""
        method = get_method(name)
        if method.variant_of is not None and name not in self.presets:  # it runs its method's config
            return self.preset(method.variant_of)
        return self.presets.get(name) or method.default_preset(recipe_known=self.recipe_known())

    def recipe_known(self) -> bool:
        """Whether the original was trained here with ``recipes`` (not a checkpoint brought in)."""
        return self.original_checkpoint is None

    def unlearning_configs(self) -> dict[str, Any]:
        """The config of every method to run, by name (what metrics.json records)."""
        return {name: self.method_config(name) for name in self.unlearning_methods()}

    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)

    def unlearning_methods(self) -> list[str]:
        """The methods to run (the gold standard, if named, is the retrained model itself)."""
        return [m for m in self.methods if not get_method(m).gold_standard]

    def wants_retrained(self) -> bool:
        return self.retrain or any(get_method(m).gold_standard for m in self.methods)


def _reference_models(
    cfg: ExperimentConfig,
    data: DataBundle,
    forget: Sequence[int],
    device: torch.device,
    cache_dir: Path,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[nn.Module, dict, nn.Module | None, dict | None]:
    """The original model (trained, from the cache, or the given checkpoint) and, when wanted,
    the retrained one, with their metadata."""
    common = {"seed": seed, "cache_dir": cache_dir, "progress": progress}
    if cfg.original_checkpoint:
        original, original_meta = checkpoint_model(cfg.original_checkpoint, cfg.model, data, device)
    else:
        original, original_meta = trained_model(
            data, cfg.model, cfg.recipe(), range(data.num_classes), device, phase="original", **common
        )
    if not cfg.wants_retrained():
        return original, original_meta, None, None
    if cfg.retrained_checkpoint:
        retrained, retrained_meta = checkpoint_model(cfg.retrained_checkpoint, cfg.model, data, device)
        return original, original_meta, retrained, retrained_meta
    retain = retained_classes(forget, data.num_classes)
    retrained, retrained_meta = trained_model(data, cfg.model, cfg.recipe(), retain, device, phase="retrain", **common)
    return original, original_meta, retrained, retrained_meta


def train_reference_models(cfg: ExperimentConfig, progress: ProgressFn | None = None) -> None:
    """Train (or find in the cache) the original and retrained models that ``cfg`` uses, and
    nothing else: under torchrun every process takes part in their training, then one
    process runs the experiment, which finds them in the cache."""
    data = load_dataset(cfg.dataset, cfg.data_dir, image_size=cfg.image_size)
    forget = resolve_classes(list(cfg.forget), data.classes)
    device = resolve_device(cfg.device)
    if device.type == "cuda":  # each process on its own GPU (distributed.setup chose it)
        device = torch.device("cuda", torch.cuda.current_device())
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    model_seeds = dict.fromkeys(s if cfg.model_seed is None else cfg.model_seed for s in cfg.seed_list())
    for seed in model_seeds:
        _reference_models(cfg, data, forget, device, cache_dir, seed, progress)


def _one_seed(
    cfg: ExperimentConfig,
    data: DataBundle,
    forget: tuple[int, ...],
    configs: dict[str, Any],
    device: torch.device,
    cache_dir: Path,
    splits: EvalSplits,
    seed: int,
    progress: ProgressFn | None,
) -> tuple[dict[str, dict], dict[str, nn.Module], dict[str, BaseException]]:
    """Every model's metrics for one seed (original, retrained, each method), the unlearned
    models by method, and the methods that failed with their errors."""
    model_seed = seed if cfg.model_seed is None else cfg.model_seed
    original, original_meta, retrained, retrained_meta = _reference_models(
        cfg, data, forget, device, cache_dir, model_seed, progress
    )
    forget_test = splits.forget_test
    original_forget_acc = accuracy(predict(original, forget_test.images, data.normalize, device), forget_test.labels)
    threshold = cfg.relearn_fraction * original_forget_acc
    ctx = EvalContext(data, forget, device, splits, original, retrained, threshold, seed, model_name=cfg.model)

    models = {
        "original": {**evaluate_model(original, ctx, cfg.metrics, progress), **_train_info(original, original_meta)}
    }
    if retrained is not None:
        models["retrained"] = {
            **evaluate_model(retrained, ctx, cfg.metrics, progress),
            **_train_info(retrained, retrained_meta),
        }
    unlearned, failed = {}, {}
    for name, method_cfg in configs.items():
        try:
            result = unlearn(name, original, cfg.model, data, forget, device, method_cfg, seed=seed, progress=progress)
        except (UnsirError, torch.OutOfMemoryError, MemoryError) as err:
            failed[name] = err
            continue
        models[name] = {
            **evaluate_model(result.model, ctx, cfg.metrics, progress),
            "seconds": result.seconds,
            "phases": result.phases,
            "history": result.history,
            "zero_glance": not get_method(name).reads_forget,
        }
        unlearned[name] = result.model
    add_scores(models, ctx, cfg.metrics)
    return models, unlearned, failed


def run_experiment(cfg: ExperimentConfig, progress: ProgressFn | None = None) -> tuple[dict, dict[str, nn.Module]]:
    """Run ``cfg``. Returns the metrics dict (the content of metrics.json) and the unlearned
    models of the first seed by method name (to be saved with the run).

    A method that fails (e.g. out of memory, NaN loss) is reported under ``errors`` and the
    others go on; if every method fails, the first error is raised.
    """
    data = load_dataset(cfg.dataset, cfg.data_dir, image_size=cfg.image_size)
    forget = resolve_classes(list(cfg.forget), data.classes)
    configs = cfg.unlearning_configs()
    device = resolve_device(cfg.device)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    splits = EvalSplits.of(data, forget)

    per_seed, first_models, errors, first_error = [], {}, {}, None
    for seed in cfg.seed_list():
        models, unlearned, failed = _one_seed(cfg, data, forget, configs, device, cache_dir, splits, seed, progress)
        for name, err in failed.items():
            errors.setdefault(name, f"{type(err).__name__}: {err}")
            first_error = first_error or err
        if seed == cfg.seed_list()[0]:
            first_models = unlearned
        per_seed.append({"seed": seed, "models": models})

    if configs and all(name in errors for name in configs):
        if len(configs) == 1 and isinstance(first_error, UnsirError):
            raise first_error
        raise UnsirError(f"every method failed: {'; '.join(f'{k}: {v}' for k, v in errors.items())}")
    metrics = {
        "config": _config_record(cfg, data, forget, device, cache_dir, configs),
        "forget_classes": list(forget),
        "forget_class_names": [data.classes[c] for c in forget],
        "class_names": data.classes,
        "environment": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": aggregate_seeds([s["models"] for s in per_seed], first_only=unaveraged_keys()),
        "per_seed": per_seed,
        "errors": errors,
    }
    return metrics, first_models


def _config_record(
    cfg: ExperimentConfig,
    data: DataBundle,
    forget: Sequence[int],
    device: torch.device,
    cache_dir: Path,
    configs: dict[str, Any],
) -> dict:
    """The ``config`` of metrics.json: everything that made the numbers."""
    # the headline method's (UNSIR's) config and Dr_sub size stay at the top level, as runs have always had them
    unsir = configs.get(headline_method().name)
    return {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "forget": list(forget),
        "seed": cfg.seed_list()[0],
        "seeds": list(cfg.seed_list()),
        "model_seed": cfg.model_seed,
        "methods": list(cfg.methods),
        "device": cfg.device,
        "device_used": str(device),
        "data_dir": cfg.data_dir,
        "cache_dir": str(cache_dir),
        "image_size": cfg.image_size,
        "recipes": cfg.recipes,
        "train": asdict(cfg.recipe()),
        "original_checkpoint": cfg.original_checkpoint,
        "retrained_checkpoint": cfg.retrained_checkpoint,
        "recipe_known": cfg.recipe_known(),
        "presets": {name: cfg.preset(name) for name in configs if name not in cfg.method_configs},
        "retrain": cfg.wants_retrained(),
        "unsir": asdict(unsir) if unsir is not None else None,
        "method_configs": {name: asdict(c) for name, c in configs.items()},
        "dr_sub_size": _dr_sub_size(data, retained_classes(forget, data.num_classes), unsir),
        "metrics": list(cfg.metrics),
        "relearn_fraction": cfg.relearn_fraction,
    }


def aggregate_seeds(runs: list[dict[str, dict]], first_only: Sequence[str] = ()) -> dict[str, dict]:
    """Mean over seeds of every number (recursively, lists element-wise), with the standard
    deviation of each top-level number under ``std``; other values, and the keys in
    ``first_only`` (figures a mean would make meaningless, such as a 2-D map's coordinates),
    are taken from the first seed."""
    out: dict[str, dict] = {}
    for name in runs[0]:
        entries = [r[name] for r in runs if name in r]
        merged = _mean(entries)
        merged.update({k: entries[0][k] for k in first_only if k in entries[0]})
        merged["std"] = {
            k: _std([e.get(k) for e in entries])
            for k, v in entries[0].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        out[name] = merged
    return out


def _std(values: list) -> float | None:
    """The population standard deviation of the finite numbers among ``values`` (None if none:
    e.g. an accuracy over no test image is NaN)."""
    nums = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return statistics.pstdev(nums) if nums else None


def _mean(values: list):
    first = values[0]
    if isinstance(first, bool) or first is None or isinstance(first, str):
        return first
    if isinstance(first, (int, float)):
        nums = [v for v in values if v is not None]
        return sum(nums) / len(nums) if nums else None
    if isinstance(first, dict):
        return {k: _mean([v[k] for v in values if isinstance(v, dict) and k in v]) for k in first}
    if isinstance(first, list) and all(isinstance(v, list) and len(v) == len(first) for v in values):
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in first):
            return [sum(col) / len(col) for col in zip(*values, strict=True)]
        if all(isinstance(x, list) for x in first):  # a matrix (confusion): element-wise, row by row
            return [_mean(list(rows)) for rows in zip(*values, strict=True)]
    return first


def _dr_sub_size(data: DataBundle, retain: Sequence[int], cfg: UnsirConfig | None) -> int | None:
    """How many retained samples UNSIR reads (all of a class when it has fewer than asked)."""
    if cfg is None:
        return None
    counts = torch.bincount(data.train.labels, minlength=data.num_classes)
    return sum(min(int(counts[c]), cfg.dr_sub_per_class) for c in retain)


def _train_info(model: nn.Module, meta: dict) -> dict:
    return {
        "weights_sha256": weights_sha256(model),
        "seconds": meta.get("seconds"),
        "cached": meta["cached"],
        "checkpoint": meta["checkpoint"],
        "checkpoint_sha256": meta.get("sha256"),
        "trained_on_device": meta.get("device"),
    }
