"""Atomic writes, and the clean-up of what a killed writer left behind.

A file is written under a hidden temporary name beside its final place and renamed into
place when complete, so a reader sees the old file or the new one, never half of one. The
temporary name carries the writer's process id (``.tmp-<pid>-<random><suffix>``): a kill
leaves only such names, and :func:`writer_gone` tells them apart from a write still in
progress in another thread or process, so that the next write can remove them safely.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

_TAGGED = re.compile(r"-(?P<pid>\d+)-[0-9a-f]+")


def tag() -> str:
    """``<pid>-<random>``: unique among concurrent writers, and tells whose write it is."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def writer_gone(name: str) -> bool:
    """True when the process whose :func:`tag` is in ``name`` no longer runs (a name
    without a tag is never taken for a leftover)."""
    match = _TAGGED.search(name)
    if match is None:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False  # a thread of this process may be writing it right now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the ``.tmp-*`` files in ``folder`` whose writer was killed; returns them."""
    removed = []
    for path in folder.glob(".tmp-*"):
        if path.is_file() and writer_gone(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path (same folder and suffix as ``path``) to write; it replaces
    ``path`` when the block ends without an exception, and is deleted otherwise. Leftovers of
    killed writers in the same folder are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = path.parent / f".tmp-{tag()}{path.suffix}"
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))  # claim the name (umask applies)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)
