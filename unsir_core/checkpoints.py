"""Checkpoint files: safetensors written atomically, read back and checked before use.

A checkpoint is a safetensors file of the model's state_dict whose header carries the
metadata needed to rebuild and check it (architecture, class count, image size, what it was
trained on and how). Plain PyTorch state_dicts (.pt / .pth) are read with
``torch.load(weights_only=True)``: never arbitrary pickle. A checkpoint is used only when it
fits the model exactly and every weight is finite. Writes go to a temporary file that is
renamed into place (``files.atomic_file``): a crash never leaves a partial checkpoint.
The cache of trained models built on these files is ``model_cache.py``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from .errors import CheckpointError
from .files import atomic_file


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict) -> Path:
    """Write ``model``'s state_dict and ``metadata`` (JSON-able) atomically to ``path``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp), metadata={"unsir": json.dumps(metadata, default=str)})
    return Path(path)


def weights_sha256(model: nn.Module) -> str:
    """The SHA-256 of a model's state (each entry's name, dtype, shape and bytes, in order): what
    identifies a trained model whatever file or metadata it came with, where its figures may not
    (an evaluation on CUDA can differ by an image between two runs of the same weights)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def read_metadata(path: str | Path) -> dict:
    """The metadata stored with a safetensors checkpoint ({} for other files or none)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        found = json.loads(meta.get("unsir", "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if not isinstance(found, dict):
        raise CheckpointError(
            f"{path.name}: its 'unsir' metadata is a JSON {type(found).__name__}, not an object of named fields"
        )
    return found


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
        raise CheckpointError(f"{path} is corrupt or not a checkpoint: {_first_sentence(err)}") from err
    except Exception as err:  # weights_only refuses pickled objects with UnpicklingError
        raise CheckpointError(
            f"{path} is not a plain state_dict of tensors: it holds Python objects{_refused_global(err)}, "
            "which are never unpickled. Save the model with torch.save(model.state_dict(), ...) or as safetensors"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a common wrapping
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state_dict of tensors")
    return state


def _refused_global(err: Exception) -> str:
    """The object torch's weights-only unpickler refused, without its advice to unpickle
    anyway (which would run whatever code the file holds)."""
    found = re.search(r"Unsupported (?:global: GLOBAL [\w.]+|operand \d+)", str(err))
    return f" ({found[0].lower()})" if found else ""


def _first_sentence(err: Exception) -> str:
    """The reason in an error from torch.load, without its advice to load with
    ``weights_only=False`` (which would run whatever code the file holds)."""
    text = str(err).strip()
    if "weights_only" in text:
        if "TorchScript" in text:
            return "it is a TorchScript archive, not a state_dict (save model.state_dict() instead)"
        return "it is not a plain state_dict of tensors"
    return text.split(". ")[0].rstrip(".")


def check_finite(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse a state_dict with a NaN or infinite weight: every later step would fail on it
    with a message about something else (a loss, a learning rate)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        count = sum(int((~torch.isfinite(state[k])).sum()) for k in bad)
        raise CheckpointError(
            f"checkpoint {path} holds {count} NaN or infinite value(s) in {len(bad)} tensor(s) (e.g. {bad[0]}): "
            "the model it was saved from had diverged; it cannot be used"
        )


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
    check_finite(state, path)
    model.load_state_dict(state)
    return model
