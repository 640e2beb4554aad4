"""Executors by name (``executor: local`` in a runner profile), like job kinds and adapters.

Each backend module registers the function that builds its executor from a runner profile with
:func:`register_executor`. Built-in backends are imported on first lookup (``_BUILTIN``), so
``ablate status`` never imports submitit and a local sweep never needs it. Registering a name
twice, or asking for a name nobody registered, is an error that lists the registered names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ablate.execution.base import Executor
    from ablate.execution.runner_profile import RunnerProfile
    from ablate.store.results_store import ResultsStore

    ExecutorFactory = Callable[..., Executor]

# name -> module that registers it on import
_BUILTIN: dict[str, str] = {
    "inline": "ablate.execution.inline",
    "local": "ablate.execution.local",
    "slurm": "ablate.execution.slurm.executor",
}

_FACTORIES: dict[str, Callable[..., Executor]] = {}

F = TypeVar("F", bound="Callable[..., Executor]")


def register_executor(name: str) -> Callable[[F], F]:
    """Register the decorated ``build(profile, store, *, max_parallel) -> Executor`` as ``name``.

    Raises:
        ValueError: ``name`` is registered already (the message lists the registered names).
    """

    def register(factory: F) -> F:
        if name in _FACTORIES:
            registered = ", ".join(sorted(_FACTORIES))
            raise ValueError(f"executor {name!r} is registered already; registered: {registered}")
        _FACTORIES[name] = factory
        return factory

    return register


def executor_names() -> list[str]:
    """Every executor a runner profile may name."""
    return sorted(set(_BUILTIN) | set(_FACTORIES))


def executor_factory(name: str) -> Callable[..., Executor]:
    """The build function registered as ``name``, importing a built-in backend on first use.

    Raises:
        KeyError: nobody registered ``name`` (the message lists the executors there are).
    """
    if name not in _FACTORIES and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _FACTORIES:
        raise KeyError(f"unknown executor {name!r}; allowed: {', '.join(executor_names())}")
    return _FACTORIES[name]


def make_executor(
    profile: RunnerProfile, store: ResultsStore, *, max_parallel: int | None = None
) -> Executor:
    """Build the executor a runner profile names.

    Args:
        profile: the runner profile.
        store: the results store (its root is the runs root).
        max_parallel: caps how many attempts run at once (``--max-parallel``).
    """
    return executor_factory(profile.executor)(profile, store, max_parallel=max_parallel)
