"""The one registry type behind data sets, models, methods and metrics: a name -> entry
mapping whose failed lookup is a user error that lists the names there are."""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Entries by name, in registration order. ``kind`` names them in messages ("model")."""

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        super().__init__()
        self.kind = kind
        self.sort = sort  # list the names sorted, rather than in registration order

    def names(self) -> list[str]:
        return sorted(self) if self.sort else list(self)

    def lookup(self, name: str) -> T:
        """The entry ``name``, or an :class:`UnknownNameError` that lists the choices."""
        if name not in self:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self[name]
