"""One experiment: original model, retrained gold standard, UNSIR, and their metrics.

``run_experiment(cfg)`` trains or loads (from the checkpoint cache) the original model on all
classes and the retrained model on the retained classes only, with the same recipe and seed,
then unlearns the forget classes from the original with UNSIR and measures all three.
With several methods and seeds it runs every method for every seed (each seed trains or
loads its own original and retrained models, unless ``model_seed`` fixes one pair for all
seeds, so that the spread is that of the unlearning alone) and reports means and standard
deviations.
``write_results`` puts metrics.json and the unlearned checkpoints into a run directory
atomically (see ``runs.py``), so a failed or cancelled run leaves nothing half-written.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from . import __version__
from .checkpoints import cache_key, default_cache_dir, load_into, read_metadata, save_checkpoint
from .data import DataBundle, ImageTensors, load_dataset, resolve_classes, retained_classes
from .errors import CheckpointError, UnsirError
from .methods import get_method, method_config, unlearn
from .metrics import (
    accuracy_report,
    layer_distances,
    membership_inference,
    output_distance,
    prediction_distribution,
    relearn_time,
)  # fmt: skip
from .models import create_model
from .runs import atomic_run_dir, write_json
from .train import ProgressFn, TrainConfig, accuracy, default_recipe, fit, predict, resolve_device, set_seed
from .unsir import UnsirConfig, default_unsir


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that determines an experiment's numbers."""

    dataset: str  # a name from list_datasets()
    model: str  # a name from list_models()
    forget: tuple[int | str, ...]  # forget classes, by id or name
    seed: int = 0  # seeds model init, batch order, Dr_sub and noise
    device: str = "auto"  # auto (CUDA, then MPS, then CPU), cpu, cuda, mps
    data_dir: str | None = None  # None: $UNSIR_DATA_DIR or the per-user cache
    cache_dir: str | None = None  # None: $UNSIR_CACHE_DIR or the per-user cache
    image_size: int = 32  # side of the square input images (digits, imagefolder)
    train: TrainConfig | None = None  # None: default_recipe(dataset, model)
    unsir: UnsirConfig | None = None  # None: default_unsir(dataset, model)
    retrain: bool = True  # also train (or load) the retrained gold standard
    methods: tuple[str, ...] = ("unsir",)  # unlearning methods to run and compare
    method_overrides: tuple[tuple[str, str, Any], ...] = ()  # (method, field, value) changes to defaults
    seeds: tuple[int, ...] | None = None  # None: (seed,); several: mean and std over seeds
    original_checkpoint: str | None = None  # use this checkpoint as the original instead of training one
    model_seed: int | None = None  # seed of the original and retrained models; None: each seed trains its own
    metrics: tuple[str, ...] = ("relearn", "distance", "predictions", "mia", "output_distance")  # beyond accuracy
    relearn_fraction: float = 0.9  # relearn threshold, as a fraction of the original's forget accuracy

    def recipe(self) -> TrainConfig:
        return self.train or default_recipe(self.dataset, self.model)

    def unsir_config(self) -> UnsirConfig:
        return self.unsir or default_unsir(self.dataset, self.model)

    def method_config(self, name: str) -> Any:
        if name == "unsir" and self.unsir is not None:
            base = self.unsir
        else:
            base = method_config(name, self.dataset, self.model)
        changes = {f: v for m, f, v in self.method_overrides if m == name}
        return replace(base, **changes)

    def seed_list(self) -> tuple[int, ...]:
        return self.seeds or (self.seed,)


def dataset_options(dataset: str, image_size: int) -> dict:
    """Keyword options of load_dataset for ``dataset`` (only some take an image size)."""
    return {"image_size": image_size} if dataset in ("digits", "imagefolder") else {}


def model_cache_path(
    data: DataBundle, model_name: str, recipe: TrainConfig, classes: Sequence[int], *, seed: int, cache_dir: Path
) -> tuple[Path, dict]:
    """Where the cache keeps the ``model_name`` model trained with ``recipe`` and ``seed`` on
    ``classes`` of ``data``, and the spec that keys it (stored in the checkpoint's metadata)."""
    classes = sorted(classes)
    spec = {
        "dataset": data.name,
        "num_classes": data.num_classes,
        "image_size": data.image_shape[-1],
        "model": model_name,
        "recipe": asdict(recipe),
        "seed": seed,
        "classes": classes,
    }
    kind = "original" if len(classes) == data.num_classes else "retrained"
    return Path(cache_dir) / f"{data.name.replace(':', '_')}-{model_name}-{kind}-{cache_key(spec)}.safetensors", spec


def trained_model(
    data: DataBundle,
    model_name: str,
    recipe: TrainConfig,
    classes: Sequence[int],
    device: torch.device,
    *,
    seed: int,
    cache_dir: Path,
    progress: ProgressFn | None = None,
    phase: str = "train",
) -> tuple[nn.Module, dict]:
    """A model trained with ``recipe`` on the training samples of ``classes``, from the cache
    when it holds one. Returns the model (on ``device``, eval mode) and its metadata, whose
    ``seconds`` is the training time measured when it was trained."""
    classes = sorted(classes)
    image_size = data.image_shape[-1]
    path, spec = model_cache_path(data, model_name, recipe, classes, seed=seed, cache_dir=cache_dir)
    kind = "original" if len(classes) == data.num_classes else "retrained"
    expect = {"model": model_name, "num_classes": data.num_classes}
    if path.exists():
        model = create_model(model_name, data.num_classes, image_size=image_size)
        try:
            load_into(model, path, expect=expect)
            meta = read_metadata(path)
        except CheckpointError as err:
            raise CheckpointError(f"the cached model is unusable: {err}. Delete {path} to train it again.") from err
        return model.to(device).eval(), {**meta, "cached": True, "checkpoint": str(path)}

    set_seed(seed)
    model = create_model(model_name, data.num_classes, image_size=image_size, pretrained=recipe.pretrained)
    train = data.train.select(classes) if kind == "retrained" else data.train
    held_out = data.test.select(classes) if kind == "retrained" else data.test
    result = fit(
        model, train, data.normalize, recipe, device, seed=seed, held_out=held_out, progress=progress, phase=phase
    )
    meta = {**spec, **expect, "seconds": result.seconds, "device": str(device), "history": result.history}
    save_checkpoint(model, path, meta)
    return model.eval(), {**meta, "cached": False, "checkpoint": str(path)}


def environment() -> dict:
    """Library versions, machine and git commit, recorded with every result."""
    import torchvision

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "unsir_core": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": commit,
    }


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
        return cls(data.train.select(forget), data.test.select(forget), data.train.select(retain),
                   data.test.select(retain))  # fmt: skip


def evaluate_model(
    model: nn.Module,
    data: DataBundle,
    forget: Sequence[int],
    device: torch.device,
    *,
    splits: EvalSplits,
    original: nn.Module,
    retrained: nn.Module | None,
    which: Sequence[str],
    relearn_threshold: float,
    seed: int,
    progress: ProgressFn | None = None,
) -> dict:
    """Every metric of ``model`` (see metrics.py); ``which`` picks the costly ones."""
    out: dict[str, Any] = accuracy_report(model, data, forget, device, progress)
    return out | extra_metrics(
        model, data, forget, device, splits=splits, original=original, retrained=retrained, which=which,
        relearn_threshold=relearn_threshold, seed=seed,
    )  # fmt: skip


def extra_metrics(
    model: nn.Module,
    data: DataBundle,
    forget: Sequence[int],
    device: torch.device,
    *,
    splits: EvalSplits,
    original: nn.Module | None,
    retrained: nn.Module | None,
    which: Sequence[str],
    relearn_threshold: float,
    seed: int,
) -> dict:
    """The metrics beyond accuracy named in ``which`` (predictions, distance, mia,
    output_distance, relearn); distance needs ``original``, output_distance ``retrained``."""
    out: dict[str, Any] = {}
    retain = retained_classes(forget, data.num_classes)
    forget_test, forget_train = splits.forget_test, splits.forget_train
    if "predictions" in which:
        logits = predict(model, forget_test.images, data.normalize, device)
        out["prediction_distribution"] = prediction_distribution(logits, data.num_classes)
    if "distance" in which and original is not None:
        out["layer_distance"] = layer_distances(model, original)
    if "mia" in which:
        out["mia"] = membership_inference(
            model, splits.retain_train, splits.retain_test, forget_train, data.normalize, device, seed=seed
        )
    if "output_distance" in which and retrained is not None:
        out["output_distance"] = output_distance(model, retrained, forget_test.images, data.normalize, device)
    if "relearn" in which:
        dr = data.train.sample_per_class(retain, 100, seed=seed)
        out["relearn"] = relearn_time(
            model, forget_train, dr, forget_test, data.normalize, device, threshold=relearn_threshold, seed=seed
        )
    return out


def checkpoint_model(
    path: str | Path, model_name: str, data: DataBundle, device: torch.device
) -> tuple[nn.Module, dict]:
    """A ``model_name`` model for ``data`` with the weights of the checkpoint at ``path``
    (safetensors, or a ``.pt`` state_dict read with ``weights_only=True``); a checkpoint of
    another architecture or class count fails with a CheckpointError that says which."""
    model = create_model(model_name, data.num_classes, image_size=data.image_shape[-1])
    load_into(model, path, expect={"model": model_name, "num_classes": data.num_classes})
    return model.to(device).eval(), {"seconds": None, "cached": True, "checkpoint": str(path), "device": None}


def run_experiment(cfg: ExperimentConfig, progress: ProgressFn | None = None) -> tuple[dict, dict[str, nn.Module]]:
    """Run ``cfg``. Returns the metrics dict (the content of metrics.json) and the unlearned
    models of the first seed by method name (to be saved with the run).

    A method that fails (e.g. out of memory, NaN loss) is reported under ``errors`` and the
    others go on; if every method fails, the first error is raised.
    """
    data = load_dataset(cfg.dataset, cfg.data_dir, **dataset_options(cfg.dataset, cfg.image_size))
    forget = resolve_classes(list(cfg.forget), data.classes)
    retain = retained_classes(forget, data.num_classes)
    methods = [m for m in cfg.methods if m != "retrain"]  # the retrained model is the gold standard itself
    for name in cfg.methods:
        get_method(name)  # unknown names fail before any training
    configs = {name: cfg.method_config(name) for name in methods}
    device = resolve_device(cfg.device)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    recipe = cfg.recipe()
    want_retrained = cfg.retrain or "retrain" in cfg.methods

    splits = EvalSplits.of(data, forget)
    per_seed, errors, first_models = [], {}, {}
    first_error: BaseException | None = None
    for seed in cfg.seed_list():
        model_seed = seed if cfg.model_seed is None else cfg.model_seed
        common = {"seed": model_seed, "cache_dir": cache_dir, "progress": progress}
        if cfg.original_checkpoint:
            original, original_meta = checkpoint_model(cfg.original_checkpoint, cfg.model, data, device)
        else:
            original, original_meta = trained_model(
                data, cfg.model, recipe, range(data.num_classes), device, phase="original", **common
            )
        retrained, retrained_meta = None, None
        if want_retrained:
            retrained, retrained_meta = trained_model(
                data, cfg.model, recipe, retain, device, phase="retrain", **common
            )
        forget_test = splits.forget_test
        original_forget_acc = accuracy(
            predict(original, forget_test.images, data.normalize, device), forget_test.labels
        )
        threshold = cfg.relearn_fraction * original_forget_acc
        evaluate = partial(
            evaluate_model, data=data, forget=forget, device=device, splits=splits, original=original,
            retrained=retrained, which=cfg.metrics, relearn_threshold=threshold, seed=seed, progress=progress,
        )  # fmt: skip

        models: dict[str, dict] = {"original": {**evaluate(original), **_train_info(original_meta)}}
        if retrained is not None:
            models["retrained"] = {**evaluate(retrained), **_train_info(retrained_meta)}
        for name in methods:
            try:
                result = unlearn(name, original, cfg.model, data, forget, device, configs[name], seed=seed,
                                 progress=progress)  # fmt: skip
            except (UnsirError, torch.OutOfMemoryError, MemoryError) as err:
                errors.setdefault(name, f"{type(err).__name__}: {err}")
                first_error = first_error or err
                continue
            models[name] = {**evaluate(result.model), "seconds": result.seconds, "phases": result.phases,
                            "history": result.history, "zero_glance": not get_method(name).reads_forget}  # fmt: skip
            if seed == cfg.seed_list()[0]:
                first_models[name] = result.model
        per_seed.append({"seed": seed, "models": models})

    if methods and all(name in errors for name in methods):
        if len(methods) == 1 and isinstance(first_error, UnsirError):
            raise first_error
        raise UnsirError(f"every method failed: {'; '.join(f'{k}: {v}' for k, v in errors.items())}")
    metrics = {
        "config": {
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
            "train": asdict(recipe),
            "original_checkpoint": cfg.original_checkpoint,
            "retrain": want_retrained,
            "unsir": asdict(configs["unsir"]) if "unsir" in configs else None,
            "method_configs": {name: asdict(c) for name, c in configs.items()},
            "dr_sub_size": _dr_sub_size(data, retain, configs.get("unsir")),
            "metrics": list(cfg.metrics),
            "relearn_fraction": cfg.relearn_fraction,
        },  # fmt: skip
        "forget_classes": list(forget),
        "forget_class_names": [data.classes[c] for c in forget],
        "class_names": data.classes,
        "environment": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": aggregate_seeds([s["models"] for s in per_seed]),
        "per_seed": per_seed,
        "errors": errors,
    }
    return metrics, first_models


def aggregate_seeds(runs: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean over seeds of every number (recursively, lists element-wise), with the standard
    deviation of each top-level number under ``std``; other values are taken from the first."""
    out: dict[str, dict] = {}
    for name in runs[0]:
        entries = [r[name] for r in runs if name in r]
        merged = _mean(entries)
        merged["std"] = {
            k: statistics.pstdev(e[k] for e in entries)
            for k, v in entries[0].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
        }
        out[name] = merged
    return out


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
    return first


def _dr_sub_size(data: DataBundle, retain: Sequence[int], cfg: UnsirConfig | None) -> int | None:
    """How many retained samples UNSIR reads (all of a class when it has fewer than asked)."""
    if cfg is None:
        return None
    counts = torch.bincount(data.train.labels, minlength=data.num_classes)
    return sum(min(int(counts[c]), cfg.dr_sub_per_class) for c in retain)


def _train_info(meta: dict) -> dict:
    return {"seconds": meta.get("seconds"), "cached": meta["cached"], "checkpoint": meta["checkpoint"],
            "trained_on_device": meta.get("device")}  # fmt: skip


def write_results(out_dir: str | Path, metrics: dict, models: dict[str, nn.Module] | None = None) -> Path:
    """Write ``metrics.json`` and ``<method>.safetensors`` (first seed) into the run directory
    ``out_dir``, atomically: the directory appears complete or not at all."""
    cfg = metrics["config"]
    with atomic_run_dir(out_dir) as tmp:
        for name, model in (models or {}).items():
            save_checkpoint(model, tmp / f"{name}.safetensors", {
                "model": cfg["model"], "num_classes": len(metrics["class_names"]), "dataset": cfg["dataset"],
                "forget": metrics["forget_classes"], "seed": cfg["seed"], "method": name,
            })  # fmt: skip
        write_json(tmp / "metrics.json", metrics)
    return Path(out_dir) / "metrics.json"
