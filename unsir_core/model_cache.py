"""The cache of trained models: each original and retrained model is trained once, then reused.

A trained model is stored as a checkpoint (``checkpoints.py``) under a key made of everything
that determines it (data set, model, recipe, seed and the classes trained on), in the cache
folder (:func:`~unsir_core.paths.default_cache_dir`), so a second experiment, a benchmark or
the dashboard reuses it. :func:`checkpoint_model` builds a registered model from any
checkpoint file (an upload, a run's unlearned model) with the same checks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from . import distributed
from .checkpoints import load_into, read_metadata, save_checkpoint
from .data import DataBundle
from .errors import CheckpointError
from .files import file_sha256
from .models import create_model
from .recipes import TrainConfig, recipe_key
from .runtime import ProgressFn, set_seed
from .train import fit


def cache_key(spec: dict) -> str:
    """A short stable hash of a JSON-able spec."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _kind(data: DataBundle, classes: Sequence[int]) -> str:
    return "original" if len(classes) == data.num_classes else "retrained"


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
        "recipe": recipe_key(recipe),
        "seed": seed,
        "classes": classes,
    }
    name = f"{data.name.replace(':', '_')}-{model_name}-{_kind(data, classes)}-{cache_key(spec)}.safetensors"
    return Path(cache_dir) / name, spec


def checkpoint_model(
    path: str | Path, model_name: str, data: DataBundle, device: torch.device
) -> tuple[nn.Module, dict]:
    """A ``model_name`` model for ``data`` with the weights of the checkpoint at ``path``
    (safetensors, or a ``.pt`` state_dict read with ``weights_only=True``); a checkpoint of
    another architecture or class count, or with non-finite weights, fails with a
    CheckpointError that says why."""
    model = create_model(model_name, data.num_classes, image_size=data.image_shape[-1])
    load_into(model, path, expect={"model": model_name, "num_classes": data.num_classes})
    meta = {"seconds": None, "cached": True, "checkpoint": str(path), "device": None, "sha256": file_sha256(path)}
    return model.to(device).eval(), meta


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
    ``seconds`` is the training time measured when it was trained. Under torchrun every
    process trains (``train.fit``) and rank 0 alone writes the checkpoint."""
    classes = sorted(classes)
    path, spec = model_cache_path(data, model_name, recipe, classes, seed=seed, cache_dir=cache_dir)
    expect = {"model": model_name, "num_classes": data.num_classes}
    if path.exists():
        model = create_model(model_name, data.num_classes, image_size=data.image_shape[-1])
        try:
            load_into(model, path, expect=expect)
            meta = read_metadata(path)
        except CheckpointError as err:
            raise CheckpointError(f"the cached model is unusable: {err}. Delete {path} to train it again.") from err
        return model.to(device).eval(), {**meta, "cached": True, "checkpoint": str(path)}

    set_seed(seed)
    model = create_model(model_name, data.num_classes, image_size=data.image_shape[-1], pretrained=recipe.pretrained)
    retrained = _kind(data, classes) == "retrained"
    train = data.train.select(classes) if retrained else data.train
    held_out = data.test.select(classes) if retrained else data.test
    result = fit(
        model, train, data.normalize, recipe, device, seed=seed, held_out=held_out, progress=progress, phase=phase
    )
    meta = {**spec, **expect, "seconds": result.seconds, "device": str(device), "history": result.history}
    if result.world_size > 1:  # trained by several processes (torchrun): the same model, the same key
        meta |= {"world_size": result.world_size, "shards": result.shards}
    if distributed.is_main():
        save_checkpoint(model, path, meta)  # once, atomically
    distributed.barrier()  # the others go on when it is there
    return model.eval(), {**meta, "cached": False, "checkpoint": str(path)}
