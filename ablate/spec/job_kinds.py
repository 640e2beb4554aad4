"""Registry of job kinds, chosen in a spec by short name (``job: mmt``).

A job kind pairs the schema of its spec sections (a :class:`~ablate.spec.base.SpecModel`) with the
function that runs one spec. Registering by name keeps Python import paths out of sweep files: a
refactor must never change run ids.

Job modules are imported lazily (``_BUILTIN``) so that ``ablate status`` or ``ablate report`` never
pay for importing torch. A project adds its own kinds by naming the modules that register them in
``$ABLATE_JOB_MODULES`` (comma-separated, importable): the CLI and every worker import them the
first time a job kind is looked up.

It lives with the specs, below the jobs, because validating a spec needs a job's schema: the jobs
register themselves here (each job module calls :func:`register_job` on import) and ``_BUILTIN``
names the built-in modules as plain strings, the way an entry point would, so the spec layer never
imports the layers above it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ablate.spec.base import SpecModel
    from ablate.spec.run_spec import RunSpec

# short name -> module that registers it on import. The schema modules must not import torch.
_BUILTIN: dict[str, str] = {
    "linear-fit": "ablate.jobs.linear_fit",
    "mmt": "ablate.jobs.mmt",
}

JOB_MODULES_ENV = "ABLATE_JOB_MODULES"  # extra modules that register job kinds (comma-separated)

_JOBS: dict[str, JobKind] = {}


@dataclass(frozen=True)
class JobKind:
    """One registered job kind.

    Attributes:
        name: the short name used in specs (``job: <name>``).
        config_cls: schema of the spec's sections (everything but ``job`` and ``seed``).
        run: import path ``module:function`` of ``run(spec, ctx) -> dict[str, float]``; imported
            only inside a worker, so planning never imports the job's heavy dependencies.
        scale: optional ``scale(sections: dict, name: str) -> dict`` applied by ``--scale NAME``
            before validation (for ``mmt``: real presets -> their tiny twins).
        describe: optional ``describe(spec) -> dict[str, Any]`` of extra plan columns
            (trainable parameters, memory estimate).
        needs: optional ``needs(spec) -> list[Need]``: what a run needs from the machine (data,
            weights, a GPU), checked before a sweep dispatches (``ablate.orchestrate.preflight``).
    """

    name: str
    config_cls: type[SpecModel]
    run: str
    scale: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    describe: Callable[[RunSpec], dict[str, Any]] | None = None
    needs: Callable[[RunSpec], list[Any]] | None = None  # list[ablate.jobs.needs.Need]

    def load_runner(self) -> Callable[..., dict[str, float]]:
        """Import and return the job's run function, ``run(spec, ctx)`` (ctx: a ``JobContext``)."""
        module_name, _, func = self.run.partition(":")
        return getattr(importlib.import_module(module_name), func)


def register_job(kind: JobKind) -> JobKind:
    """Register ``kind`` under its name.

    Registering the same kind again (its module imported twice: same ``run`` path) replaces it;
    another kind under a taken name is refused, so a project's job can never silently replace a
    built-in one.

    Raises:
        ValueError: the name is taken by a different kind.
    """
    taken = _JOBS.get(kind.name)
    if taken is not None and taken.run != kind.run:
        raise ValueError(
            f"job kind {kind.name!r} is already registered (by {taken.run}); choose another name"
        )
    _JOBS[kind.name] = kind
    return kind


def import_job_modules() -> None:
    """Import the modules named in ``$ABLATE_JOB_MODULES`` so their job kinds are registered."""
    for name in os.environ.get(JOB_MODULES_ENV, "").split(","):
        if name.strip():
            importlib.import_module(name.strip())


def job_names() -> list[str]:
    """All job kinds a spec may name."""
    import_job_modules()
    return sorted(set(_BUILTIN) | set(_JOBS))


def is_job_name(name: str) -> bool:
    """Whether a spec may name ``name``; cheap for known names (expansion asks once per run)."""
    if name in _JOBS or name in _BUILTIN:
        return True
    return name in job_names()


def get_job(name: str) -> JobKind:
    """Look up a job kind by name, importing built-in ones on first use.

    Raises:
        KeyError: the name is not registered (the message lists the allowed names).
    """
    if name not in _JOBS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _JOBS:
        import_job_modules()
    if name not in _JOBS:
        raise KeyError(f"unknown job {name!r}; allowed: {', '.join(job_names())}")
    return _JOBS[name]
