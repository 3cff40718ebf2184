"""Registries: the one table of each choice users make by name.

Model sources, RDM metrics, RDM comparisons, explanation methods and evaluation metrics
are each a `Registry` of entries with a `name` and a one-line `summary`. Validation,
listings and the command-line choices and help texts all read the same table, so a new
entry is one `register` call (the pattern of timm's `_registry.py`).

Registry modules import nothing heavy (no torch): the command-line tools read them at
start-up to build their options.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from .errors import unknown_name

__all__ = ["Registry", "Choice"]


class _Named(Protocol):
    name: str
    summary: str


Entry = TypeVar("Entry", bound=_Named)


@dataclass(frozen=True)
class Choice:
    """A plain named choice (a dtype, a correction): its name and what it means."""

    name: str
    summary: str


class Registry(Mapping[str, Entry], Generic[Entry]):
    """Entries by name, in the order they were registered.

    Parameters
    ----------
    kind : str
        What an entry is (`metric`, `method`): the start of the error for an unknown name.
    entries : iterable, optional
        Entries to register now; each has a unique `name` and a `summary`.
    hint : str, optional
        Where the valid names are listed, for the error of an unknown name.
    default : str, optional
        The name used when none is given (default: the first entry's).

    Looking up an unknown name raises `UnknownNameError` with the closest names.
    """

    def __init__(self, kind: str, entries: Iterable[Entry] = (), hint: str = "", default: str | None = None) -> None:
        self.kind, self.hint = kind, hint
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            self.register(entry)
        self._default = default

    @property
    def default(self) -> str:
        """The name used when none is given."""
        return self._default if self._default is not None else next(iter(self._entries))

    def register(self, entry: Entry) -> Entry:
        """Add an entry (its name must be new) and return it."""
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice")
        self._entries[entry.name] = entry
        return entry

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown_name(self.kind, str(name), self._entries, hint=self.hint) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str, default: Entry | None = None) -> Entry | None:
        return self._entries.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def check(self, name: str) -> str:
        """`name` if it is registered, else `UnknownNameError`."""
        return self[name].name

    @property
    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        return tuple(self._entries)

    def summaries(self) -> str:
        """`name: summary; name: summary` for help texts."""
        return "; ".join(f"{entry.name}: {entry.summary}" for entry in self._entries.values())
