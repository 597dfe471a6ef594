"""One experiment: original model, retrained gold standard, UNSIR, and their metrics.

``run_experiment(cfg)`` trains or loads (from the checkpoint cache) the original model on all
classes and the retrained model on the retained classes only, with the same recipe and seed,
then unlearns the forget classes from the original with UNSIR and measures all three.
``write_results`` puts metrics.json (and the unlearned checkpoint) into a directory
atomically, so a failed or cancelled run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn

from . import __version__
from .checkpoints import cache_key, default_cache_dir, load_into, read_metadata, save_checkpoint
from .data import DataBundle, load_dataset, resolve_classes, retained_classes
from .errors import CheckpointError
from .metrics import accuracy_report
from .models import create_model
from .train import ProgressFn, TrainConfig, default_recipe, fit, resolve_device, set_seed
from .unsir import UnlearnResult, UnsirConfig, default_unsir, unsir


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

    def recipe(self) -> TrainConfig:
        return self.train or default_recipe(self.dataset, self.model)

    def unsir_config(self) -> UnsirConfig:
        return self.unsir or default_unsir(self.dataset, self.model)


def dataset_options(dataset: str, image_size: int) -> dict:
    """Keyword options of load_dataset for ``dataset`` (only some take an image size)."""
    return {"image_size": image_size} if dataset in ("digits", "imagefolder") else {}


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
    spec = {
        "dataset": data.name,
        "num_classes": data.num_classes,
        "image_size": image_size,
        "model": model_name,
        "recipe": asdict(recipe),
        "seed": seed,
        "classes": classes,
    }
    kind = "original" if len(classes) == data.num_classes else "retrained"
    path = cache_dir / f"{data.name.replace(':', '_')}-{model_name}-{kind}-{cache_key(spec)}.safetensors"
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
    result = fit(model, train, data, recipe, device, seed=seed, held_out=held_out, progress=progress, phase=phase)
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


def run_experiment(cfg: ExperimentConfig, progress: ProgressFn | None = None) -> tuple[dict, UnlearnResult]:
    """Run ``cfg``; returns the metrics dict (the content of metrics.json) and UNSIR's result."""
    data = load_dataset(cfg.dataset, cfg.data_dir, **dataset_options(cfg.dataset, cfg.image_size))
    forget = resolve_classes(list(cfg.forget), data.classes)
    retain = retained_classes(forget, data.num_classes)
    device = resolve_device(cfg.device)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    recipe = cfg.recipe()
    common = dict(seed=cfg.seed, cache_dir=cache_dir, progress=progress)

    original, original_meta = trained_model(
        data, cfg.model, recipe, range(data.num_classes), device, phase="original", **common
    )
    models: dict[str, dict] = {}
    models["original"] = {**accuracy_report(original, data, forget, device, progress), **_train_info(original_meta)}
    if cfg.retrain:
        retrained, retrained_meta = trained_model(data, cfg.model, recipe, retain, device, phase="retrain", **common)
        models["retrained"] = {
            **accuracy_report(retrained, data, forget, device, progress),
            **_train_info(retrained_meta),
        }

    unsir_cfg = cfg.unsir_config()
    dr_sub = data.train.sample_per_class(retain, unsir_cfg.dr_sub_per_class, seed=cfg.seed)
    result = unsir(original, forget, dr_sub, data.normalize, unsir_cfg, device, seed=cfg.seed, progress=progress)
    models["unsir"] = {
        **accuracy_report(result.model, data, forget, device, progress),
        "seconds": result.seconds,
        "phases": result.phases,
        "history": result.history,
    }
    metrics = {
        "config": {
            "dataset": cfg.dataset,
            "model": cfg.model,
            "forget": list(forget),
            "seed": cfg.seed,
            "device": cfg.device,
            "device_used": str(device),
            "data_dir": cfg.data_dir,
            "cache_dir": str(cache_dir),
            "image_size": cfg.image_size,
            "train": asdict(recipe),
            "unsir": asdict(unsir_cfg),
            "retrain": cfg.retrain,
            "dr_sub_size": len(dr_sub),
        },
        "forget_classes": list(forget),
        "forget_class_names": [data.classes[c] for c in forget],
        "class_names": data.classes,
        "environment": environment(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": models,
    }
    return metrics, result


def _train_info(meta: dict) -> dict:
    return {
        "seconds": meta.get("seconds"),
        "cached": meta["cached"],
        "checkpoint": meta["checkpoint"],
        "trained_on_device": meta.get("device"),
    }


def write_results(out_dir: str | Path, metrics: dict, result: UnlearnResult | None = None) -> Path:
    """Write ``metrics.json`` (and ``unsir.safetensors``) into ``out_dir`` atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result is not None:
        cfg = metrics["config"]
        save_checkpoint(
            result.model,
            out / "unsir.safetensors",
            {
                "model": cfg["model"],
                "num_classes": len(metrics["class_names"]),
                "dataset": cfg["dataset"],
                "forget": metrics["forget_classes"],
                "seed": cfg["seed"],
            },
        )
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".metrics-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(metrics, f, indent=2, allow_nan=True)
    os.replace(tmp, out / "metrics.json")
    return out / "metrics.json"
