"""Find the provider class for an id by its `kind:api` prefix.

Built-ins (`openai:realtime`, `openai:chat`) are registered as lazy factories so importing the registry costs
nothing. Other packages add providers through the `rtflow.providers` entry-point group (the entry point's
name is the `kind:api` prefix, its value a `Provider` subclass or a factory taking a `ProviderInfo`); the group
is read once, the first time an unknown prefix is asked for or the kinds are listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from rtflow.errors import CompileError, did_you_mean
from rtflow.providers.base import Provider, ProviderInfo

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderFactory",
    "UnknownProviderKind",
    "create_provider",
    "kind_of",
    "known_kinds",
    "register",
]

ENTRY_POINT_GROUP = "rtflow.providers"

ProviderFactory = Callable[[ProviderInfo], Provider]

_BUILTINS: dict[str, str] = {
    "openai:realtime": "rtflow.providers.openai_realtime:RealtimeProvider",
    "openai:chat": "rtflow.providers.openai_chat:ChatProvider",
    "openai:tts": "rtflow.providers.openai_tts:TtsProvider",
}

_factories: dict[str, ProviderFactory] = {}


class UnknownProviderKind(CompileError):
    """No built-in, registered or plug-in provider serves an id's `kind:api` prefix."""


_entry_points_loaded = False


def _lazy(target: str) -> ProviderFactory:
    module_name, _, attribute = target.partition(":")

    def build(info: ProviderInfo) -> Provider:
        factory: ProviderFactory = getattr(importlib.import_module(module_name), attribute)
        return factory(info)

    return build


for _kind, _target in _BUILTINS.items():
    _factories[_kind] = _lazy(_target)


def register(kind: str, factory: ProviderFactory) -> None:
    """Serve ids starting with `kind` (`vendor:api`) with `factory`; replaces an earlier registration."""
    if kind.count(":") != 1 or not all(kind.split(":")):
        raise ValueError(f"a provider kind has the form vendor:api, got {kind!r}")
    _factories[kind] = factory


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in _factories:
            continue  # an explicit registration or a built-in wins over a plug-in of the same name
        _factories[entry_point.name] = _entry_point_factory(entry_point.name, entry_point.value)


def _entry_point_factory(name: str, value: str) -> ProviderFactory:
    def build(info: ProviderInfo) -> Provider:
        module_name, _, attribute = value.partition(":")
        try:
            target: object = importlib.import_module(module_name)
            for part in attribute.split(".") if attribute else []:
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise CompileError(f"provider plug-in {name!r} ({value}) cannot be loaded: {exc}") from exc
        if not callable(target):
            raise CompileError(f"provider plug-in {name!r} ({value}) is not a class or factory")
        provider = target(info)
        if not isinstance(provider, Provider):
            raise CompileError(f"provider plug-in {name!r} ({value}) did not build a Provider")
        return provider

    return build


def kind_of(provider_id: str) -> str:
    """The `kind:api` prefix of an id like `openai:realtime:gpt-realtime`."""
    return ":".join(provider_id.split(":", 2)[:2])


def known_kinds() -> list[str]:
    """Every `kind:api` prefix that can be built, sorted."""
    _load_entry_points()
    return sorted(_factories)


def create_provider(info: ProviderInfo) -> Provider:
    """The provider `info.id` names; CompileError for an unknown kind, FlowError for bad config."""
    kind = kind_of(info.id)
    if kind not in _factories:
        _load_entry_points()
    factory = _factories.get(kind)
    if factory is None:
        raise UnknownProviderKind(
            f"unknown provider kind {kind!r} in {info.id!r}; {did_you_mean(kind, known_kinds())} "
            "(more can be added through the `rtflow.providers` entry-point group)"
        )
    return factory(info)
