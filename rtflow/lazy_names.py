"""Public names of a package resolved on first use (PEP 562), so importing the package loads nothing heavy.

    __getattr__, __dir__ = lazy_names(__name__, globals(), {"SimServer": "rtflow.sim.server", ...})

A name maps to the module that defines it, or to (module, attribute) when the public name differs. Each is
imported once, on first use, then kept in the package's globals: later lookups are plain attribute reads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, namespace: dict[str, Any], names: Mapping[str, str | tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a package whose public `names` resolve on first use."""

    def __getattr__(name: str) -> Any:
        try:
            target = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module, attribute = target if isinstance(target, tuple) else (target, name)
        value = getattr(import_module(module), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names})

    return __getattr__, __dir__
