"""The run store: one folder per experiment, written atomically, listed, and read back.

A run folder holds ``metrics.json`` (config, environment, results) and the checkpoints of the
unlearned models (``<method>.safetensors``); :func:`run_checkpoints` maps a run to every
checkpoint it refers to. A run is assembled in a hidden folder beside its final place
(``.<name>.incomplete-<pid>-<id>``) and renamed into place when complete; an earlier run of
the same name is first renamed aside (``.<name>.old-<pid>-<id>``) and deleted after. A kill
at any point leaves only such hidden folders, and the next write or listing in the same
folder finishes or undoes what the dead writer began (:func:`recover`): a complete new run
replaces the old one, otherwise the old one comes back. A run folder only ever replaces a run
folder: anything else at the target is an error before any work starts
(:func:`check_run_target`), so no user file is ever deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import torch.nn as nn

from .checkpoints import save_checkpoint
from .errors import UnsirError
from .files import TAG, tag, write_text, writer_gone
from .paths import first_missing

METRICS = "metrics.json"
REFERENCES = ("original", "retrained")  # the models every run measures its unlearned models against
CHECKPOINT_SUFFIX = ".safetensors"
_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.(?P<state>incomplete|old)-(?P<tag>{TAG})$")


def checkpoint_file(run_dir: str | Path, method: str) -> Path:
    """Where a run keeps the checkpoint of the model unlearned by ``method``."""
    return Path(run_dir) / f"{method}{CHECKPOINT_SUFFIX}"


def check_run_target(out: str | Path) -> Path:
    """``out`` as a Path if a run can be written there: a name that does not exist yet in a
    folder we may write, an empty folder, or an earlier run folder (only ``metrics.json`` and
    checkpoints). Anything else raises :class:`UnsirError` and nothing is touched."""
    if Path(out).name in ("", ".", ".."):  # "", "." or "dir/..": no name to put a run under
        raise UnsirError(f"--out must name the run's folder, not {str(out)!r}: e.g. runs/my-run")
    out = Path(out)
    if out.exists() or out.is_symlink():
        if out.is_symlink() or not out.is_dir():
            raise UnsirError(f"{out} is a file, not a run folder; give --out a folder name that does not exist yet")
        entries = sorted(p.name for p in out.iterdir())
        try:  # what the earlier run wrote: its metrics.json and its unlearned models' checkpoints
            ours = {METRICS} | {checkpoint_file(out, n).name for n in unlearned_models(read_run(out))}
        except UnsirError:
            ours = set()  # no run's metrics.json (or another tool's): nothing here is a run's
        foreign = [n for n in entries if n not in ours]
        if foreign and ours:
            raise UnsirError(
                f"{out} holds a run and {len(foreign)} file(s) it did not write ({foreign[0]!r}); a run replaces "
                "only what an earlier run wrote, so move them away or choose another --out"
            )
        if foreign:
            raise UnsirError(
                f"{out} exists and is not a run folder (it holds {foreign[0]!r}"
                + (f" and {len(entries) - 1} more" if len(entries) > 1 else "")
                + "); a run only replaces an earlier run. Choose another --out"
            )
    ancestor = out.parent
    if (missing := first_missing(ancestor)) is not None:
        ancestor = missing.parent
    if not ancestor.is_dir():
        raise UnsirError(f"cannot write the run {out}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UnsirError(f"cannot write the run {out}: no permission to write in {ancestor}")
    return out


def recover(folder: str | Path) -> None:
    """Finish or undo the run writes in ``folder`` whose writer was killed (see the module
    docstring); writes still in progress, here or in another process, are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    leftovers = [(p, m) for p in folder.iterdir() if (m := _LEFTOVER.match(p.name)) and writer_gone(m)]
    for path, m in sorted(leftovers, key=lambda pm: pm[1]["state"] != "old"):  # old ones first
        final = folder / m["name"]
        try:  # another session may be recovering the same leftovers: whoever renames first wins
            if not path.exists():
                continue  # already moved while handling its old run
            if m["state"] == "old":
                new = folder / f".{m['name']}.incomplete-{m['tag']}"
                if not final.exists():
                    if (new / METRICS).is_file():
                        new.rename(final)  # the new run was complete: finish the swap
                    else:
                        path.rename(final)  # put the earlier run back
                        continue
                shutil.rmtree(path, ignore_errors=True)
            elif (path / METRICS).is_file() and not final.exists():
                path.rename(final)  # complete, killed just before it was moved into place
            else:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


@contextmanager
def atomic_run_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it replaces ``out_dir`` (see
    :func:`check_run_target` for what it may replace), on an exception it is deleted and
    ``out_dir`` is left as it was."""
    out = check_run_target(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out.parent)
    me = tag()
    tmp = out.parent / f".{out.name}.incomplete-{me}"
    tmp.mkdir()
    try:
        yield tmp
        try:
            check_run_target(out)  # nothing else appeared there meanwhile
            _move_into_place(tmp, out, me)
        except (UnsirError, OSError) as err:  # e.g. another writer, a mount point: keep the finished run
            kept = out.parent / f"{out.name}-{me}"
            tmp.rename(kept)
            why = err if isinstance(err, UnsirError) else err.strerror or err
            raise UnsirError(f"could not put the run into {out} ({why}); the finished run is in {kept}") from err
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, out: Path, me: str) -> None:
    """Rename the finished run ``tmp`` to ``out``, the earlier run there (if any) renamed
    aside first and deleted after. An OSError (another writer got there first) leaves ``tmp``."""
    if not out.exists():
        tmp.rename(out)  # a folder another writer renamed into place meanwhile fails: ENOTEMPTY
        return
    old = out.parent / f".{out.name}.old-{me}"
    out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if not out.exists():
            old.rename(out)  # put the earlier run back
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, allow_nan=True))


def write_run(out_dir: str | Path, metrics: dict, models: dict[str, nn.Module] | None = None) -> Path:
    """Write ``metrics.json`` and ``<method>.safetensors`` (first seed) into the run folder
    ``out_dir``, atomically: the folder appears complete or not at all."""
    cfg = metrics["config"]
    with atomic_run_dir(out_dir) as tmp:
        for name, model in (models or {}).items():
            meta = {
                "model": cfg["model"],
                "num_classes": len(metrics["class_names"]),
                "dataset": cfg["dataset"],
                "forget": metrics["forget_classes"],
                "seed": cfg["seed"],
                "method": name,
            }
            save_checkpoint(model, checkpoint_file(tmp, name), meta)
        write_json(tmp / METRICS, metrics)
    return Path(out_dir) / METRICS


# --- reading --------------------------------------------------------------------------------

HEADLINE = ("forget_acc", "retain_acc", "seconds")


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


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_run(m) -> dict:
    """``m`` (a parsed metrics.json) if it has what listing and inspecting a run read, with
    the types they expect; otherwise a ValueError that says which field is wrong."""
    try:
        return _validate(m)
    except (TypeError, AttributeError, KeyError) as err:  # a field of a type the checks did not expect
        raise ValueError(f"malformed ({type(err).__name__}: {err})") from None


def _validate(m) -> dict:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(what)

    need(isinstance(m, dict), "not a JSON object")
    cfg = m.get("config")
    need(isinstance(cfg, dict), "no config")
    for key in ("dataset", "model"):
        need(isinstance(cfg.get(key), str), f"config.{key} is not a name")
    methods, seeds = cfg.get("methods", []), cfg.get("seeds", [cfg.get("seed", 0)])
    need(isinstance(methods, list) and all(isinstance(x, str) for x in methods), "config.methods are not names")
    need(isinstance(seeds, list) and all(_is_int(x) for x in seeds), "config.seeds are not integers")
    forget = m.get("forget_classes")
    need(isinstance(forget, list) and forget and all(_is_int(c) and c >= 0 for c in forget), "bad forget_classes")
    names = m.get("class_names", [])
    need(isinstance(names, list) and all(isinstance(n, str) for n in names), "class_names are not names")
    need(not names or max(forget) < len(names), "a forget class is not among class_names")
    need(isinstance(m.get("finished_at"), str), "finished_at is not a time stamp")
    models = m.get("models")
    need(isinstance(models, dict) and all(isinstance(v, dict) for v in models.values()), "models is not a mapping")
    for name, entry in models.items():
        for key in HEADLINE:
            value = entry.get(key)
            need(
                value is None or (isinstance(value, Real) and not isinstance(value, bool)),
                f"{name}.{key} is not a number",
            )
    return m


def read_run(path: str | Path) -> dict:
    """The metrics.json of a run folder, checked by :func:`validate_run`; a missing or
    malformed one raises :class:`UnsirError` naming the run and the field."""
    path = Path(path)
    try:
        return validate_run(json.loads((path / METRICS).read_text()))
    except OSError as err:  # its strerror alone: the message must not show the server's paths
        why = f"it holds no {METRICS}" if isinstance(err, FileNotFoundError) else f"{METRICS}: {err.strerror}"
        raise UnsirError(f"run {path.name} is unreadable: {why}") from err
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise UnsirError(f"run {path.name} is unreadable: {err}") from err


def class_names(metrics: dict) -> list[str]:
    """The run's class names (ids as names for a run that did not record them)."""
    if metrics.get("class_names"):
        return list(metrics["class_names"])
    n = max(
        [max(metrics["forget_classes"]) + 1]
        + [len(m.get("prediction_distribution") or []) for m in metrics["models"].values()]
    )
    return [str(c) for c in range(n)]


def run_checkpoints(path: str | Path, metrics: dict) -> dict[str, Path | None]:
    """Every model of a run and its checkpoint (None when the run has none): the original
    and retrained models in the checkpoint cache they came from, the unlearned ones in the
    run folder."""
    out: dict[str, Path | None] = {}
    for name, entry in metrics["models"].items():
        if name in REFERENCES:  # recorded where the cache (or the user) keeps it
            out[name] = Path(entry["checkpoint"]) if isinstance(entry.get("checkpoint"), str) else None
        else:
            out[name] = checkpoint_file(path, name)
    return out


def unlearned_models(metrics: dict) -> list[str]:
    """The run's unlearned models (by method), in the order they ran."""
    return [name for name in metrics["models"] if name not in REFERENCES]


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every complete run under ``root``, newest first. A folder whose metrics.json is
    missing or malformed is skipped with a warning; the leftovers of killed writes are
    finished or removed first (:func:`recover`)."""
    root = Path(root)
    if not root.is_dir():
        return []
    recover(root)
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            m = read_run(path)
        except UnsirError as err:
            warnings.warn(f"skipping {err}", stacklevel=2)
            continue
        cfg = m["config"]
        headline = {name: {k: v[k] for k in HEADLINE if k in v} for name, v in m["models"].items()}
        out.append(
            RunSummary(
                path,
                cfg["dataset"],
                cfg["model"],
                list(m["forget_classes"]),
                list(cfg.get("methods", ["unsir"])),
                list(cfg.get("seeds", [cfg.get("seed", 0)])),
                m["finished_at"],
                headline,
            )
        )
    return sorted(out, key=lambda r: r.finished_at, reverse=True)
