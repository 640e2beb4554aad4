"""Optuna plumbing: a study's storage, sampler, pruner and space; the trial attributes ablate sets.

Storage, from ``--storage`` or ``search.storage``:

- default ``sqlite:///<runs root>/optuna.db``: one orchestrator per study writes it (ask/tell only;
  workers never touch Optuna), guarded by the sweep lock like ``ablate sweep``;
- ``journal:PATH`` (or a path ending ``.journal``/``.log``): a :class:`JournalStorage` file that
  several orchestrators on one host share safely;
- any other URL (``postgresql://...``, ``mysql://...``) is passed to Optuna as is (several hosts).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.spec.dotted import copy_tree, set_dotted
from ablate.tune.search_spec import CategoricalParam, FloatParam, IntParam, SearchSpec

if TYPE_CHECKING:
    import optuna

DEFAULT_DB = "optuna.db"
JOURNAL_PREFIX = "journal:"

# user attributes ablate sets on trials (and ENQUEUED_ATTR on the study)
OWNER_ATTR = "ablate.owner"
RUN_ID_ATTR = "ablate.run_id"
RETRY_ATTR = "ablate.retry"
RETRY_OF_ATTR = "ablate.retry_of"
REUSED_ATTR = "ablate.reused"
ERROR_ATTR = "ablate.error"
ENQUEUED_ATTR = "ablate.enqueued"


def resolve_storage(storage: str | None, runs_root: Path) -> str:
    """The storage string to use: the given one, or SQLite in the runs root."""
    if storage:
        return storage
    root = Path(runs_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / DEFAULT_DB}"


def storage_kind(storage: str) -> str:
    """``sqlite``, ``journal`` or ``url`` (a server several hosts can share)."""
    if storage.startswith(JOURNAL_PREFIX) or storage.endswith((".journal", ".log")):
        return "journal"
    if storage.startswith("sqlite:"):
        return "sqlite"
    return "url"


def open_storage(storage: str) -> Any:
    """The Optuna storage object (journal files are opened with their file lock)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage_kind(storage) == "journal":
        path = Path(storage.removeprefix(JOURNAL_PREFIX))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if storage_kind(storage) == "sqlite":
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(storage) if "://" in storage else storage


def make_sampler(search: SearchSpec, *, shared: bool = False) -> optuna.samplers.BaseSampler:
    """TPE (default) or random; grid search enqueues every point and samples nothing itself.

    Args:
        search: the search section.
        shared: several tuners drive the study (journal or server storage): the seed is mixed
            with this process id, else every tuner would propose the same points.
    """
    import optuna

    cfg = search.sampler
    seed = cfg.seed
    if shared and seed is not None:
        seed = (seed * 1_000_003 + os.getpid()) % 2**32
    if cfg.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(search: SearchSpec) -> optuna.pruners.BasePruner:
    """Median, Hyperband, or none (also none when there is no intermediate metric)."""
    import optuna

    cfg = search.pruner
    if cfg.name == "none" or search.intermediate is None:
        return optuna.pruners.NopPruner()
    if cfg.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.n_startup_trials, n_warmup_steps=cfg.n_warmup_steps
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=cfg.min_resource,
        max_resource=cfg.max_resource,
        reduction_factor=cfg.reduction_factor,
    )


def open_study(search: SearchSpec, name: str, storage: str) -> optuna.Study:
    """Create the study or load it (same name in the same storage: the study continues)."""
    import optuna

    return optuna.create_study(
        study_name=name,
        storage=open_storage(storage),
        sampler=make_sampler(search, shared=storage_kind(storage) != "sqlite"),
        pruner=make_pruner(search),
        direction=search.objective.direction,
        load_if_exists=True,
    )


def suggest(trial: optuna.Trial, search: SearchSpec) -> dict[str, Any]:
    """Draw every parameter of the space for ``trial`` (enqueued values are taken as fixed)."""
    params: dict[str, Any] = {}
    for key, param in search.space.items():
        if isinstance(param, FloatParam):
            params[key] = trial.suggest_float(
                key, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            params[key] = trial.suggest_int(
                key, param.low, param.high, step=param.step, log=param.log
            )
        else:
            assert isinstance(param, CategoricalParam)
            params[key] = trial.suggest_categorical(key, param.choices)
    return params


def apply_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The base spec with each dotted key of ``params`` set (a copy)."""
    spec = copy_tree(base)
    for key, value in params.items():
        set_dotted(spec, key, value)
    return spec


def settled_and_running(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """Trials that count toward ``n_trials`` (finished and not re-asked) and running ones."""
    import optuna

    superseded = {t.user_attrs.get(RETRY_OF_ATTR) for t in trials} - {None}
    running = sum(t.state is optuna.trial.TrialState.RUNNING for t in trials)
    settled = sum(t.state.is_finished() and t.number not in superseded for t in trials)
    return settled, running


def enqueue_initial(study: optuna.Study, search: SearchSpec) -> int:
    """Enqueue the ``enqueue:`` points (and every grid point) once per study; how many."""
    if study.user_attrs.get(ENQUEUED_ATTR):
        return 0
    points = list(search.enqueue)
    if search.sampler.name == "grid":
        points += search.grid_points()
    for point in points:
        study.enqueue_trial(point, skip_if_exists=True)
    study.set_user_attr(ENQUEUED_ATTR, True)
    return len(points)
