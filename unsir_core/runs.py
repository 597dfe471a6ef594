"""The run store: one directory per experiment, written atomically, and a listing of them.

A run directory holds ``metrics.json`` (config, environment, results) and the checkpoints of
the unlearned models (``<method>.safetensors``). It is assembled in a hidden temporary
directory beside its final place and renamed into place only when complete, so a crash or a
cancel never leaves a half-written run that :func:`list_runs` would show.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@contextmanager
def atomic_run_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary directory to fill; on success it replaces ``out_dir`` (an older run
    there is removed), on an exception it is deleted and ``out_dir`` is left as it was."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.incomplete-"))
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{tmp.name[-8:]}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, allow_nan=True))


@dataclass
class RunSummary:
    path: Path
    dataset: str
    model: str
    forget_classes: list[int]
    methods: list[str]
    seeds: list[int]
    finished_at: str
    headline: dict[str, dict[str, float]]  # model/method -> {forget_acc, retain_acc, seconds}


def read_run(path: str | Path) -> dict:
    """The metrics.json of a run directory."""
    return json.loads((Path(path) / "metrics.json").read_text())


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every complete run under ``root``, newest first. A directory whose metrics.json is
    missing or unreadable is skipped with a warning; hidden (incomplete) ones are ignored."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = read_run(path)
            cfg = m["config"]
            headline = {
                name: {k: v[k] for k in ("forget_acc", "retain_acc", "seconds") if k in v}
                for name, v in m["models"].items()
            }
            out.append(RunSummary(path, cfg["dataset"], cfg["model"], list(m["forget_classes"]),
                                  list(cfg.get("methods", ["unsir"])), list(cfg.get("seeds", [cfg.get("seed", 0)])),
                                  m.get("finished_at", ""), headline))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"skipping run {path}: unreadable metrics.json ({err})", stacklevel=2)
    return sorted(out, key=lambda r: r.finished_at, reverse=True)
