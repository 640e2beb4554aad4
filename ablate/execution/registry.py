"""Executors by name (``executor: local`` in a runner profile), like job kinds and adapters.

Each backend module registers the function that builds its executor from a runner profile with
:func:`register_executor`. Built-in backends are imported on first lookup (``_BUILTIN``), so
``ablate status`` never imports submitit and a local sweep never needs it. Registering a name
twice, or asking for a name nobody registered, is an error that lists the registered names.

The built-in runner profiles (``--runner local``) live here too, as plain data, so the CLI can
list every runner in its help without importing the profile schema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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

DEFAULT_PROFILE = "local"
PROFILE_DIR = Path("runners")

#: Runner profiles that need no file (``runners/NAME.yaml`` of the same name wins).
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "local": {
        "executor": "local",
        "description": "This machine: one job per GPU, or CPU slots when there is no GPU.",
    },
    "inline": {
        "executor": "inline",
        "description": "In the orchestrator's process, one run at a time (debugging).",
    },
    "cpu": {
        "executor": "local",
        "description": "This machine's CPUs only, two jobs at once, GPUs hidden.",
        "gpus": "none",
        "cpu_slots": 2,
    },
    "slurm": {
        "executor": "slurm",
        "description": "SLURM job arrays (submitit): one GPU per run, requeued on preemption.",
        "gpus": 1,
        "cpus": 8,
        "mem_gb": 64,
        "time_min": 240,
        "array_parallelism": 16,
        "signal_delay_s": 120,
        "grace_s": 90,
    },
}


def runner_profile_names(search_dir: Path = PROFILE_DIR) -> list[str]:
    """Every name ``--runner`` accepts: the built-in profiles and ``search_dir/*.yaml``."""
    found = (
        {p.stem for p in Path(search_dir).glob("*.yaml")} if Path(search_dir).is_dir() else set()
    )
    return sorted(found | set(BUILTIN_PROFILES))


def runner_help() -> str:
    """The ``--runner`` help text, listing the profiles there are (for the CLI)."""
    names = ", ".join(runner_profile_names())
    return f"Runner profile: a name ({names}; runners/NAME.yaml) or a YAML path."


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
    from ablate.tracking.config import remember_secrets

    remember_secrets(profile.env)  # masked in the logs and artifacts this process uploads
    return executor_factory(profile.executor)(profile, store, max_parallel=max_parallel)
