"""Provenance: what every result records about where it was made (versions, machine, commit)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import torch

from . import __version__


def environment() -> dict:
    """Library versions, machine and git commit, recorded with every result."""
    import torchvision

    commit = git_commit(Path(__file__).parent)
    return {
        "unsir_core": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": commit,
        "git_dirty": git_dirty(Path(__file__).parent),
    }


def git_commit(folder: Path) -> str | None:
    """The commit checked out in the git work tree holding ``folder``; None outside git."""
    return _git(folder, "rev-parse", "HEAD") or None


def git_dirty(folder: Path) -> bool | None:
    """Whether that work tree has uncommitted changes to tracked files (so that a result
    measured on it is not quite its commit's); None outside git."""
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def _git(folder: Path, *args: str) -> str | None:
    """``git ARGS`` run in ``folder``: its output, or None when git fails (e.g. not a work tree)."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
