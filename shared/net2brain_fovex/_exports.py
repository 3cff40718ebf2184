"""Package faces that import their modules on first use.

A subpackage's `__init__` lists its public names and the module each lives in; the
module is imported when a name is first asked for (PEP 562). So `import
net2brain_fovex.brain.registry` stays free of torch (the command line's start-up), and
`from net2brain_fovex.brain import rsa_to_file` still works.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose name `n` lives in its module
    `exports[n]` (a dotted path below the package)."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
