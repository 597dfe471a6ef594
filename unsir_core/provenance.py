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

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "unsir_core": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "git_commit": commit or None,
    }
