"""Layer selections: `all`, `top` (where a default selection exists) or NAME,NAME.

One parser for every place that takes a selection of layers (or RDMs): extraction
resolves it against the layers a model executes, `rdms_to_file`, `rsa_to_file` and
`searchlight_to_file` against the datasets of an input file.
"""
from __future__ import annotations

from collections.abc import Sequence

from .errors import UnknownNameError, unknown_name

__all__ = ["ALL", "TOP", "parse_selection", "select"]

ALL, TOP = "all", "top"


def parse_selection(spec: str | Sequence[str]) -> str | list[str]:
    """`all`, `top`, or the names of a comma-separated string or a sequence (in the
    given order, each once).

    Raises `UnknownNameError` when no name is given.
    """
    if isinstance(spec, str):
        if spec.strip() in (ALL, TOP):
            return spec.strip()
        spec = spec.split(",")
    names = list(dict.fromkeys(str(part).strip() for part in spec if str(part).strip()))
    if not names:
        raise UnknownNameError(f"no layer named; give `layers` as {ALL}, {TOP} or NAME,NAME")
    return names


def select(
    spec: str | Sequence[str],
    available: Sequence[str],
    *,
    top: Sequence[str] | None = None,
    kind: str = "layer",
    hint: str = "",
    order: str = "available",
) -> list[str]:
    """Resolve a selection against the `available` names.

    Parameters
    ----------
    spec : str or sequence of str
        `all`, `top` or names (see `parse_selection`).
    available : sequence of str
        The names there are, in their order.
    top : sequence of str, optional
        The default selection; without it `top` is not a valid selection.
    kind, hint : str
        For the error of an unknown name: what a name is, and where the valid ones are listed.
    order : {"available", "given"}
        Names come back in the order of `available`, or in the order given.

    Raises
    ------
    UnknownNameError
        An unknown name (with the closest valid ones), or `top` where there is none.
    """
    chosen = parse_selection(spec)
    if chosen == ALL:
        return list(available)
    if chosen == TOP:
        if top is None:
            raise UnknownNameError(f"there is no default ({TOP}) selection here; give `layers` as {ALL} or NAME,NAME")
        chosen = list(top)
    known = set(available)
    for name in chosen:
        if name not in known:
            raise unknown_name(kind, name, available, hint=hint)
    if order == "given":
        return list(chosen)
    wanted = set(chosen)
    return [name for name in available if name in wanted]
