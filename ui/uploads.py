"""An uploaded checkpoint: checked against the chosen model and data set, then stored.

The upload is written under a temporary name in the checkpoint cache, loaded with every check
a checkpoint gets (architecture, class count, finite weights; pickled objects are never
unpickled) and only then renamed to its content hash, so a file that does not fit leaves
nothing behind and never overwrites another. Error messages name the file as the user
uploaded it, not where the server keeps it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from unsir_core.data import DataBundle
from unsir_core.errors import CheckpointError
from unsir_core.files import atomic_file
from unsir_core.model_cache import checkpoint_model
from unsir_core.paths import default_cache_dir

from .loaders import CPU
from .state import Settings


def uploads_dir() -> Path:
    return default_cache_dir() / "uploads"


def save_upload(name: str, payload: bytes, s: Settings, data: DataBundle) -> Path:
    """Store the uploaded checkpoint ``payload`` (file name ``name``) if it fits the settings'
    model and ``data``; a CheckpointError says why it does not."""
    suffix = ".safetensors" if name.endswith(".safetensors") else ".pt"  # the suffix tells the loader the format
    path = uploads_dir() / f"{hashlib.sha256(payload).hexdigest()[:16]}{suffix}"
    with atomic_file(path) as tmp:
        tmp.write_bytes(payload)
        try:
            checkpoint_model(tmp, s.model, data, CPU)
        except CheckpointError as err:
            raise CheckpointError(str(err).replace(str(tmp), repr(name))) from None
    return path
