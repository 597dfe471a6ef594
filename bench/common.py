"""What the benchmark scripts share: the import path, the common arguments, typed overrides."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/<script>.py` from anywhere


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the arguments every benchmark takes: data set, model, device, data dir."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="cifar10", help="data set (default cifar10)")
    p.add_argument("--model", default="resnet18", help="architecture (default resnet18)")
    p.add_argument("--device", default="auto", help="auto: CUDA, then MPS, then CPU")
    p.add_argument("--data-dir", help="data directory (default: $UNSIR_DATA_DIR or the per-user cache)")
    return p


def typed_values(config: Any, name: str, values: list[str]) -> list[Any]:
    """``values`` (strings) cast to the type of field ``name`` of dataclass ``config``."""
    fields = {f: type(v) for f, v in asdict(config).items()}
    if name not in fields:
        raise SystemExit(f"unknown field {name!r}; fields: {', '.join(fields)}")
    if fields[name] is bool:
        return [v.lower() in ("1", "true", "yes") for v in values]
    return [fields[name](v) for v in values]


def with_overrides(config: Any, items: list[str]) -> Any:
    """``config`` with ``FIELD=VALUE`` items applied (typed as the fields)."""
    changes = {}
    for item in items:
        name, _, value = item.partition("=")
        changes[name] = typed_values(config, name, [value])[0]
    return replace(config, **changes)
