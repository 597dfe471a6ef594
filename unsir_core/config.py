"""Config fields that carry their own help text.

``knob(default, help)`` declares a dataclass field whose help text the CLI (``--help``) and
the dashboard (widget tooltips) both show, so every hyper-parameter is documented once.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any


def knob(default: Any, help: str) -> Any:
    """A dataclass field with a default and a one-line help text (unit / why)."""
    return field(default=default, metadata={"help": help})


def knobs(cls) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for every field of the dataclass ``cls``."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        out.append((f.name, default, f.metadata.get("help", "")))
    return out


def lookup(table: dict[tuple[str, str], Any], dataset: str, model: str) -> Any:
    """The entry of ``table`` for (dataset, model); ``"*"`` matches anything and the most
    specific key wins. ``dataset`` may carry a suffix (``imagefolder:faces``)."""
    base = dataset.split(":")[0]
    for key in ((base, model), (base, "*"), ("*", model), ("*", "*")):
        if key in table:
            return table[key]
    raise KeyError(f"no entry for ({dataset}, {model}) and no ('*', '*') default")
