"""The ``search:`` section of a tune YAML: space, objective, sampler, pruner, budget, storage.

A tune file is a sweep file (``extends:``/``base:``/``scales:``) plus ``search:``::

    search:
      study: tune_ba                  # default: the sweep name (+ "@<scale>")
      n_trials: 30
      objective: {metric: val/Avg, direction: maximize}
      intermediate: val/epoch_Avg     # per-epoch metric the pruner sees (metrics.jsonl)
      sampler: {name: tpe, seed: 0}   # tpe | random | grid (grid: every point enqueued)
      pruner: {name: median}          # median | hyperband | none
      storage: null                   # default sqlite:///<runs>/optuna.db; journal:PATH; URL
      space:
        train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        adapter.dim: {type: int, low: 4, high: 32, step: 4}
        adapter.groups: {type: categorical, choices: [1, 2, 4]}
      enqueue: [{train.lr: 1.0e-3}]   # points tried first (partial points allowed)

Validation uses :class:`SearchSpec` (a :class:`SpecModel`); errors name the file, key, value and
what is allowed, like every other spec error.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ablate.errors import SpecError
from ablate.spec.base import SpecModel
from ablate.spec.validation import validate

Scalar = int | float | str | bool | None


class FloatParam(SpecModel):
    """A float drawn from ``[low, high]`` (log scale or in steps of ``step``)."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined (Optuna refuses it)")
        return self


class IntParam(SpecModel):
    """An integer drawn from ``[low, high]`` in steps of ``step`` (or on a log scale)."""

    type: Literal["int"] = "int"
    low: int
    high: int
    step: int = Field(1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log-scale int range needs low > 0 and step 1")
        return self

    def values(self) -> list[int]:
        """Every value of the range (for grid search)."""
        return list(range(self.low, self.high + 1, self.step))


class CategoricalParam(SpecModel):
    """One of ``choices`` (numbers, strings, booleans)."""

    type: Literal["categorical"] = "categorical"
    choices: list[Scalar] = Field(min_length=1)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(SpecModel):
    """The final metric of a run (from its success record) that the study optimises."""

    metric: str
    direction: Literal["maximize", "minimize"] = "maximize"


class SamplerSpec(SpecModel):
    """Which Optuna sampler proposes points."""

    name: Literal["tpe", "random", "grid"] = "tpe"
    seed: int | None = None
    n_startup_trials: int = Field(10, ge=0)
    """TPE only: random trials before the model kicks in."""


class PrunerSpec(SpecModel):
    """Which pruner stops unpromising trials from their intermediate metric."""

    name: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(5, ge=0)
    """median: trials completed before anything is pruned."""
    n_warmup_steps: int = Field(0, ge=0)
    """median: reports a trial makes before it may be pruned."""
    min_resource: int = Field(1, ge=1)
    """hyperband: the smallest number of reports a trial gets."""
    max_resource: int | Literal["auto"] = "auto"
    """hyperband: reports of a full trial (e.g. the epochs)."""
    reduction_factor: int = Field(3, ge=2)
    """hyperband: keep 1 in this many trials per rung."""


class SearchSpec(SpecModel):
    """The whole ``search:`` section."""

    space: dict[str, Param] = Field(min_length=1)
    """Dotted spec key -> how to draw it (float, int, categorical)."""
    objective: Objective
    intermediate: str | None = None
    """Per-step metric (``metrics.jsonl``) reported to the pruner; ``None``: no pruning."""
    n_trials: int = Field(20, ge=1)
    study: str | None = None
    """Study name (default: the sweep name, plus ``@<scale>`` at a scale)."""
    storage: str | None = None
    """``sqlite:///PATH``, ``journal:PATH``, ``postgresql://...``; default the runs root's
    ``optuna.db``."""
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    retries: int = Field(1, ge=0)
    """Times a trial lost with its orchestrator (or failed) is asked again with the same point."""
    enqueue: list[dict[str, Scalar]] = Field(default_factory=list)
    """Points tried first (every key must be in ``space``)."""

    @model_validator(mode="after")
    def _check(self) -> SearchSpec:
        for index, point in enumerate(self.enqueue):
            unknown = [k for k in point if k not in self.space]
            if unknown:
                raise ValueError(
                    f"enqueue[{index}] sets {unknown[0]!r}, not a key of space "
                    f"(allowed: {', '.join(self.space)})"
                )
        if self.sampler.name == "grid":
            for key, param in self.space.items():
                if isinstance(param, FloatParam):
                    raise ValueError(
                        f"grid search needs finite values: space.{key} is a float range "
                        "(use categorical choices or an int range)"
                    )
        return self

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of a finite space (grid sampler: each is enqueued as a trial)."""
        keys = list(self.space)
        lists = [
            p.choices if isinstance(p, CategoricalParam) else p.values()  # type: ignore[union-attr]
            for p in self.space.values()
        ]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


def parse_search(raw: dict[str, Any], *, file: str | Path) -> SearchSpec:
    """Validate a sweep's ``search:`` mapping.

    Raises:
        SpecError: missing section or a bad value, naming the file, the ``search.<key>`` and what
            is allowed.
    """
    if not raw:
        raise SpecError(
            "a tune file needs a search: section (space, objective, ...)",
            file=file,
            key="search",
            allowed=list(SearchSpec.model_fields),
        )
    return validate(SearchSpec, raw, file=file, prefix=("search",))
