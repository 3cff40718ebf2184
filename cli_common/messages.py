"""The core's error messages in command-line words.

The core names what a user controls in Python terms, in backticks (see
`net2brain_fovex.errors`): a parameter (`` `radius` ``), a parameter with a value
(`` `overwrite=True` ``, `` `target=pred` ``) or a core function (`` `extract_to_file` ``).
Here each becomes what a shell user types: `--radius`, `--overwrite`, `--target pred`,
`` `net2brain extract` ``. A parameter is shown as the flag of the running command
that sets it, or, for a parameter of another command (`resume` of the command that
wrote an input), as that flag's usual spelling. Anything else in backticks is left as
it is.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

# core functions -> the command that runs them
COMMANDS = {
    "list_models": "net2brain models",
    "list_layers": "net2brain layers MODEL",
    "extract_to_file": "net2brain extract",
    "rdms_to_file": "net2brain rdm",
    "rsa_to_file": "net2brain rsa",
    "cka_to_file": "net2brain cka",
    "encode_to_file": "net2brain encode",
    "searchlight_to_file": "net2brain searchlight",
    "merge_activations": "net2brain merge",
    "merge_searchlight": "net2brain merge",
    "merge_attributions": "fovex merge",
    "explain_to_file": "fovex explain",
    "evaluate_to_file": "fovex evaluate",
}
_TOKEN = re.compile(r"`([^`]+)`")
_PARAMETER = re.compile(r"[a-z][a-z0-9_]*")


def command_line_message(message: str, flags: Mapping[str, tuple[str, str | None]]) -> str:
    """`message` with its backticked Python names turned into flags and commands.

    Parameters
    ----------
    message : str
        A core error message.
    flags : mapping
        The running command's options: Python name -> (flag, negative flag or None),
        e.g. {"squared": ("--squared", "--no-squared"), "out": ("--out", None)}.
    """

    def render(match: re.Match) -> str:
        token = match[1]
        name, equals, value = token.partition("=")
        if not _PARAMETER.fullmatch(name):
            return match[0]
        if not equals:
            if name in COMMANDS:
                return f"`{COMMANDS[name]}`"
            return flag_of(name, flags)[0]
        flag, negative = flag_of(name, flags)
        if value == "True":
            return flag
        if value == "False":
            return negative or f"--no-{flag[2:]}"
        return f"{flag} {value}"

    return _TOKEN.sub(render, message)


def parameters_named(message: str) -> list[str]:
    """The Python parameters a core message names (in backticks), in order."""
    return [match[1].partition("=")[0] for match in _TOKEN.finditer(message)
            if _PARAMETER.fullmatch(match[1].partition("=")[0]) and match[1] not in COMMANDS]


def flag_of(name: str, flags: Mapping[str, tuple[str, str | None]]) -> tuple[str, str | None]:
    """The (flag, negative flag) of a Python parameter: the command's own, or the
    usual spelling `--name-with-dashes`."""
    return flags.get(name) or (f"--{name.replace('_', '-')}", None)


def command_flags(params: Iterable) -> dict[str, tuple[str, str | None]]:
    """Python name -> (long flag, negative flag) of a click command's options."""
    flags = {}
    for param in params:
        longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        if not longs:
            continue
        negatives = [o for o in getattr(param, "secondary_opts", []) if o.startswith("--")]
        flags[param.name] = (longs[0], negatives[0] if negatives else None)
    return flags
