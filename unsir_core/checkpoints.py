"""Checkpoints in safetensors, and the cache of trained models.

A checkpoint is a safetensors file of the model's state_dict whose header carries the
metadata needed to rebuild and check it (architecture, class count, image size, what it was
trained on and how). Plain PyTorch state_dicts (.pt / .pth) are read with
``torch.load(weights_only=True)``: never arbitrary pickle.

Trained models are cached under a key made of everything that determines them (data set,
model, recipe, seed and the classes trained on), so a second experiment reuses them.
Writes go to a temporary file that is renamed into place: a crash never leaves a partial
checkpoint under a cache key.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .errors import CheckpointError


def default_cache_dir() -> Path:
    """``$UNSIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/unsir/checkpoints`` (``~/.cache/...``)."""
    if os.environ.get("UNSIR_CACHE_DIR"):
        return Path(os.environ["UNSIR_CACHE_DIR"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return cache / "unsir" / "checkpoints"


def cache_key(spec: dict) -> str:
    """A short stable hash of a JSON-able spec."""
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict) -> Path:
    """Write ``model``'s state_dict and ``metadata`` (JSON-able) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"unsir": json.dumps(metadata, default=str)})
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a checkpoint is as readable as any file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata stored with a safetensors checkpoint ({} for other files or none)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return json.loads(meta.get("unsir", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {err}") from err


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .safetensors file, or a .pt/.pth file loaded with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as err:
        raise CheckpointError(f"{path} is corrupt or not a checkpoint: {err}") from err
    except Exception as err:  # weights_only refuses pickled objects with UnpicklingError
        raise CheckpointError(f"{path} is not a plain state_dict (refused to unpickle it): {err}") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a common wrapping
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return state


def load_into(model: nn.Module, path: str | Path, expect: dict | None = None) -> nn.Module:
    """Load the checkpoint at ``path`` into ``model`` (strictly) and return it.

    ``expect`` (e.g. ``{"model": "resnet18", "num_classes": 10}``) is compared with the stored
    metadata first, for a clear message when the checkpoint is of another kind.
    """
    meta = read_metadata(path)
    for key, want in (expect or {}).items():
        if key in meta and meta[key] != want:
            raise CheckpointError(f"checkpoint {path} has {key}={meta[key]!r}, but {want!r} is needed")
    state = load_state(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} tensor(s) of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__} with {expect or 'this'} configuration: "
            + "; ".join(parts)
        )
    model.load_state_dict(state)
    return model
