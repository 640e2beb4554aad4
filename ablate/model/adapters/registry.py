"""Registry of adapter methods by short name: each method registers itself from its own package.

An adapter is one folder, :mod:`ablate.model.adapters.<name>`: its ``__init__`` declares the
config, the citation and the name with :func:`register_method` (torch-free), its ``layers`` module
the torch modules and ``block_adapter(config, width, tower, routing_state)`` (plus
``adapt_llm(config, llm)`` for a method that changes the LLM another way, as LoRA does). Adding a
method is adding a folder: the packages are found by listing this one, nothing else is edited. A
name registered twice by different methods is refused; an unknown name is refused with the list of
allowed ones.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

    from ablate.model.adapters.base import Adapter, RoutingState
    from ablate.model.adapters.configs import AdapterConfig

_METHODS: dict[str, AdapterMethod] = {}


@dataclass(frozen=True)
class AdapterMethod:
    """One adapter method.

    Attributes:
        name: registry short name (the config's ``name``).
        config_cls: the schema of its ``adapter:`` section.
        citation: the paper (and equation) the method follows.
        layers: the module with its torch implementation, imported only to build a model.
    """

    name: str
    config_cls: type[AdapterConfig]
    citation: str
    layers: str

    @property
    def block_adapter(self) -> Callable[[Any, int, str, RoutingState | None], Adapter]:
        """``(config, width, tower, routing_state) -> Adapter`` for one block input.

        ``tower`` is ``"llm"`` or ``"vision"`` (a method may use different modules per tower).
        """
        return importlib.import_module(self.layers).block_adapter

    @property
    def adapt_llm(self) -> Callable[[Any, nn.Module], list[nn.Parameter]] | None:
        """``(config, llm) -> list[Parameter]``, for a method that changes the LLM another way.

        LoRA (through peft) does; when set, no block adapters go into the LLM.
        """
        return getattr(importlib.import_module(self.layers), "adapt_llm", None)


def register_method(method: AdapterMethod) -> AdapterMethod:
    """Register ``method`` under its name.

    Raises:
        ValueError: the name is taken by another method (its ``layers`` module differs), or the
            config's ``name`` default is not the registered name.
    """
    taken = _METHODS.get(method.name)
    if taken is not None and taken.layers != method.layers:
        raise ValueError(
            f"adapter {method.name!r} is already registered (by {taken.layers}); "
            "choose another name"
        )
    if method.config_cls.model_fields["name"].default != method.name:
        raise ValueError(
            f"adapter {method.name!r}: its config's name defaults to "
            f"{method.config_cls.model_fields['name'].default!r}"
        )
    _METHODS[method.name] = method
    return method


@cache
def _discover() -> None:
    """Import every method package of :mod:`ablate.model.adapters` (each registers itself)."""
    import ablate.model.adapters as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            importlib.import_module(f"{package.__name__}.{info.name}")


def method_names() -> list[str]:
    """Short names of all registered adapter methods, sorted."""
    _discover()
    return sorted(_METHODS)


def get_method(config: AdapterConfig | str | Any) -> AdapterMethod:
    """The method of an adapter config (or short name).

    Raises:
        ValueError: unknown name; the message lists the allowed names.
    """
    name = getattr(config, "name", config)
    _discover()
    if not isinstance(name, str) or name not in _METHODS:
        raise ValueError(f"unknown adapter {name!r}; allowed: {', '.join(method_names())}")
    return _METHODS[name]
