"""Atomic writes, and the clean-up of what a killed writer left behind.

A file is written under a hidden temporary name beside its final place and renamed into
place when complete, so a reader sees the old file or the new one, never half of one. The
temporary name ends in a tag, ``<host>-<pid>-<random>`` (:func:`tag`), that says whose write it
is: a kill leaves only such names, and :func:`writer_gone` tells them apart from a write still
in progress in another thread or process, so that the next write can remove them safely.
A write from another machine (a cache on a shared disk) is never taken for a dead one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]  # this machine, in a tag
TAG = r"(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})"  # a tag, as a regex group
_TEMPORARY = re.compile(rf"^\.tmp-{TAG}(\.[^.]+)?$")


def tag() -> str:
    """``<host>-<pid>-<random>``: unique among concurrent writers, and tells whose write it is."""
    return f"{HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def writer_gone(match: re.Match) -> bool:
    """True when the writer named by a match of :data:`TAG` has died: it ran on this machine
    and its process no longer exists (a thread of this process, or a process of another
    machine or user, counts as alive)."""
    pid = int(match["pid"])
    if match["host"] != HOST or pid == os.getpid():
        return False
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
        match = _TEMPORARY.match(path.name)
        if match and writer_gone(match) and path.is_file():
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


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's content: what identifies a checkpoint brought from elsewhere."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
