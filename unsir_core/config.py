"""Config fields that carry their own help text and bounds, and typed ``FIELD=VALUE`` changes.

``knob(default, help, min=...)`` declares a dataclass field whose help text the CLI
(``--help``) and the dashboard (widget tooltips) both show, so every hyper-parameter is
documented once. A config class that derives from :class:`Knobs` checks every bound when it is
made, also by ``dataclasses.replace``, so a bad value is refused before any work starts.
:func:`parse_value` and :func:`with_overrides` are the one parser of values typed by users
(``--set neggrad.lr=0.005``, ``--freeze-bn false``, ``--grid impair_lr=0.01,0.02``).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from .errors import InvalidConfigError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def knob(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A dataclass field with a default, a one-line help text (unit / why) and optional
    bounds: ``min`` / ``max`` (value >= min, <= max), ``above`` (value > above) or ``choices``
    (one of them)."""
    return field(default=default, metadata={"help": help, "min": min, "max": max, "above": above, "choices": choices})


def field_choices(cls, name: str) -> tuple[str, ...] | None:
    """The allowed values of field ``name`` of the dataclass ``cls`` (None: any of its type)."""
    return next((f.metadata.get("choices") for f in fields(cls) if f.name == name), None)


def knobs(cls) -> list[tuple[str, Any, str]]:
    """``(name, default, help)`` for every field of the dataclass ``cls``."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        out.append((f.name, default, f.metadata.get("help", "")))
    return out


@dataclass(frozen=True)
class Knobs:
    """Base of the config dataclasses: checks each field's bounds when an instance is made."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value, low, above = getattr(self, f.name), f.metadata.get("min"), f.metadata.get("above")
            allowed = f.metadata.get("choices")
            if allowed is not None and value not in allowed:
                raise InvalidConfigError(
                    f"{type(self).__name__}.{f.name} must be one of {', '.join(allowed)}, got {value!r}"
                )
            if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                raise InvalidConfigError(f"{type(self).__name__}.{f.name} must be a finite number, got {value}")
            high = f.metadata.get("max")
            if (low is not None and value < low) or (above is not None and value <= above):
                bound = f">= {low}" if low is not None else f"> {above}"
                raise InvalidConfigError(f"{type(self).__name__}.{f.name} must be {bound}, got {value}")
            if high is not None and value > high:
                raise InvalidConfigError(f"{type(self).__name__}.{f.name} must be <= {high}, got {value}")


def lookup(table: dict[tuple[str, str], Any], dataset: str, model: str) -> Any:
    """The entry of ``table`` for (dataset, model); ``"*"`` matches anything and the most
    specific key wins. ``dataset`` may carry a suffix (``imagefolder:faces``)."""
    base = dataset.split(":")[0]
    for key in ((base, model), (base, "*"), ("*", model), ("*", "*")):
        if key in table:
            return table[key]
    raise KeyError(f"no entry for ({dataset}, {model}) and no ('*', '*') default")


def parse_bool(text: str) -> bool:
    """true/false, yes/no, on/off or 1/0 (any case); anything else is an error."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_value(kind: type, text: str) -> Any:
    """``text`` as a value of type ``kind`` (bool, int, float or str)."""
    if kind is bool:
        return parse_bool(text)
    if kind is int:
        return int(text)
    return kind(text)


def field_kinds(config: Any) -> dict[str, type]:
    """The value type of each field of a config dataclass (or instance), from its default
    (a field whose default is None takes floats)."""
    return {name: float if default is None else type(default) for name, default, _ in knobs(config)}


def typed_value(config: Any, name: str, text: str) -> Any:
    """``text`` cast to the type of field ``name`` of ``config``; an unknown field or a value
    of the wrong type raises :class:`InvalidConfigError` that says which."""
    kinds = field_kinds(config)
    if name not in kinds:
        raise InvalidConfigError(f"{_name(config)} has no field {name!r}; fields: {', '.join(kinds)}")
    try:
        return parse_value(kinds[name], text)
    except ValueError as err:
        raise InvalidConfigError(f"{_name(config)}.{name}={text}: {err}") from None


def with_overrides(config: Any, items: list[str]) -> Any:
    """``config`` with each ``FIELD=VALUE`` of ``items`` applied, typed as the fields."""
    changes = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise InvalidConfigError(f"{item!r}: expected FIELD=VALUE, e.g. impair_lr=0.01")
        changes[name.strip()] = typed_value(config, name.strip(), text.strip())
    return replace(config, **changes)


def _name(config: Any) -> str:
    return (config if isinstance(config, type) else type(config)).__name__
