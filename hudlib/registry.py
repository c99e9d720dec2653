"""The one registry shape the project's registries share (scenes, metrics, stages): a dict from name to a frozen
object, filled by ``add`` (type and duplicate checked), emptied by ``remove``, read by ``lookup`` with one clear line
for an unknown name."""
from __future__ import annotations

from .errors import DataError

__all__ = ["Registry"]


class Registry(dict):
    """``{name: entry}`` of one ``kind`` of entries of type ``cls`` (each has a ``name``), in registration order."""

    def __init__(self, kind: str, cls: type, hint: str = ""):
        super().__init__()
        self.kind, self.cls, self.hint = kind, cls, hint

    def add(self, entry):
        """Register ``entry``; another type or a name registered already is refused."""
        if not isinstance(entry, self.cls):
            raise DataError(f"register_{self.kind}: expected a {self.cls.__name__}, got {type(entry).__name__}")
        if entry.name in self:
            raise DataError(f"register_{self.kind}: {self.kind} {entry.name!r} is registered already")
        self[entry.name] = entry
        return entry

    def lookup(self, name: str):
        if name not in self:
            raise DataError(f"unknown {self.kind} {name!r}: expected one of {', '.join(self)}{self.hint}")
        return self[name]

    def remove(self, name: str) -> None:
        self.lookup(name)
        del self[name]
