"""Where the project keeps things on disk, and user-given names kept inside their folder.

Data sets and trained checkpoints live in per-user folders (``$UNSIR_DATA_DIR`` and
``$UNSIR_CACHE_DIR``, else under ``$XDG_CACHE_HOME/unsir`` or ``~/.cache/unsir``).
:func:`inside` turns a name a user typed (say, an image folder in the dashboard) into a path
that cannot leave its folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UnsirError


def user_dir(env_var: str, name: str) -> Path:
    """``$env_var`` when set, else ``$XDG_CACHE_HOME/unsir/<name>`` (``~/.cache/unsir/<name>``)."""
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "unsir" / name


def default_data_dir() -> Path:
    """Data sets: ``$UNSIR_DATA_DIR``, else ``~/.cache/unsir/data``."""
    return user_dir("UNSIR_DATA_DIR", "data")


def default_cache_dir() -> Path:
    """Trained checkpoints: ``$UNSIR_CACHE_DIR``, else ``~/.cache/unsir/checkpoints``."""
    return user_dir("UNSIR_CACHE_DIR", "checkpoints")


def inside(root: str | Path, name: str, what: str = "folder", where: str = "the data directory") -> Path:
    """``root / name`` resolved, when it lies strictly inside ``root`` (a ``..`` or a link
    leading out is refused); otherwise an :class:`UnsirError` that does not tell where
    ``root`` is on the server."""
    name = str(name).strip()
    if not name:
        raise UnsirError(f"no {what} name given")
    root = Path(root).expanduser().resolve()
    try:
        path = (root / name).resolve()
    except (OSError, ValueError):  # a NUL byte, a name too long for the file system
        raise UnsirError(f"{what} {name[:60]!r} is not a valid folder name") from None
    if root not in path.parents:
        raise UnsirError(f"{what} {name!r} is not inside {where}: give the name of a folder there")
    return path


def first_missing(path: str | Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (None if ``path`` exists):
    what creating ``path`` would create."""
    path, missing = Path(path), None
    while not path.exists():
        missing, path = path, path.parent
    return missing
