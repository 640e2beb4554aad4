"""The schema of one sweep file: the type of every top-level section, checked before expansion.

:class:`SweepDocument` validates each file of an ``extends`` chain as written, so that a wrong
section type (``grid: 5``, ``scales: [1, a]``, ``report: [1, 2]``, a number as a grid key) is one
:class:`~ablate.errors.SpecError` naming the file, the line, the key and what is allowed, never a
traceback from the expansion code that would otherwise trust it. The contents of ``base`` and of
every point are run specs, validated later by the job kind's schema; ``search`` is validated by
``ablate tune`` (:class:`~ablate.tune.search_spec.SearchSpec`).

Numbers have sane bounds here too: seeds fit every generator a run seeds (:data:`MAX_SEED`), and
no number written in a run spec's sections (``base``, points, ``scales``) exceeds
:data:`MAX_SPEC_NUMBER` (``steps: 1.0e35`` is refused naming its line). The check runs once per
file, not once per point.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, field_validator, model_validator

from ablate.spec.base import SpecModel, invalid_at

#: A sweep name names a folder under ``runs/``: checked with ``fullmatch`` (``$`` would accept a
#: trailing newline).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
#: Seeds pass through Python's, NumPy's and torch's generators, and the recipe derives
#: ``seed * 1_000_003 + epoch`` from them: 32 bits keep every derived seed inside int64.
MAX_SEED = 2**32 - 1
#: No count, size, rate or seed of a run needs more than 32 bits.
MAX_SPEC_NUMBER = 2**32 - 1
#: The sections that hold run-spec values.
SPEC_SECTIONS = ("base", "runs", "grid", "zip", "exclude", "include", "scales")


def _mapping_or_none(what: str) -> Any:
    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"must be a mapping ({what})")
        return value

    return BeforeValidator(check)


def _non_empty_list(value: Any) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError("axis values must be a non-empty list")
    return value


def _point(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise ValueError("each entry must be a non-empty mapping of (dotted) key -> value")
    return value


AxisValues = Annotated[Any, AfterValidator(_non_empty_list)]
"""The values one axis takes: a non-empty list."""
Point = Annotated[dict[str, Any], BeforeValidator(_point)]
"""One point (``runs``, ``include``, ``exclude`` entry): dotted key -> value."""
ScaleOverrides = Annotated[dict[str, Any] | None, _mapping_or_none("dotted key -> value")]
"""One ``scales`` entry: the overrides ``--scale NAME`` applies."""
ZipGroup = Annotated[dict[str, AxisValues], BeforeValidator(_point)]


def too_big(tree: Any) -> tuple[tuple[Any, ...], Any] | None:
    """The first number in ``tree`` beyond :data:`MAX_SPEC_NUMBER` or not finite: (path, value)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        for key, value in node.items() if type(node) is dict else enumerate(node):
            kind = type(value)
            if kind is int or kind is float:
                if not -MAX_SPEC_NUMBER <= value <= MAX_SPEC_NUMBER:
                    return (*path, key), value
            elif kind is dict or kind is list:
                stack.append(((*path, key), value))
    return None


def is_seed(value: Any) -> bool:
    """Whether ``value`` is an integer seed in ``[0, MAX_SEED]`` (booleans are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED


class ReportLink(SpecModel):
    """The ``report:`` section: which report spec ``ablate report SWEEP`` renders."""

    spec: str
    """The report spec file, relative to the sweep file (``../reports/table3.yaml``)."""


class SweepDocument(SpecModel):
    """One sweep YAML file as written (see :mod:`ablate.spec.sweep` for what each key means)."""

    name: str | None = None
    """Names the folder under ``runs/``; default: the file name without ``.yaml``."""
    description: str = ""
    """Free text."""
    extends: list[str] = []
    """Files whose sections this one extends (a path or a list; relative to this file)."""
    base: Annotated[dict[str, Any] | None, _mapping_or_none("a run spec")] = None
    """The run spec every point is merged onto."""
    runs: list[Point] | None = None
    """Explicit points (rows), each merged onto ``base``."""
    grid: dict[str, AxisValues] | None = None
    """Dotted key -> values; every combination is a point."""
    zip: list[ZipGroup] | None = None
    """Groups of keys whose value lists vary together (a mapping, or a list of them)."""
    exclude: list[Point] | None = None
    """Points to drop (every key matches)."""
    include: list[Point] | None = None
    """Extra points, added after ``exclude``."""
    seeds: list[int] | None = None
    """Repeat every point once per seed."""
    scales: Annotated[
        dict[str, ScaleOverrides] | None, _mapping_or_none("scale name -> overrides")
    ] = None
    """Named overrides applied by ``--scale NAME`` (``tiny: {train.epochs: 2}``)."""
    report: Annotated[
        ReportLink | None, _mapping_or_none("read by ablate report, e.g. {spec: ...}")
    ] = None
    """Read by ``ablate report``."""
    search: Annotated[
        dict[str, Any] | None, _mapping_or_none("read by ablate tune: space, objective, ...")
    ] = None
    """Read by ``ablate tune`` (the Optuna space)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "sweep name must be 1-100 letters, digits, '_', '.', '-' (it names a "
                "folder under runs/)"
            )
        return value

    @field_validator("extends", mode="before")
    @classmethod
    def _extends(cls, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise ValueError("extends must be a file path or a list of them")
        return value

    @field_validator("runs", "include", "exclude", mode="before")
    @classmethod
    def _point_list(cls, value: Any, info: Any) -> Any:
        if value is not None and not isinstance(value, list):
            raise ValueError(f"{info.field_name} must be a list of mappings")
        return value

    @field_validator("grid", mode="before")
    @classmethod
    def _grid(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, dict) or not value):
            raise ValueError("grid must be a mapping of dotted key -> list of values")
        return value

    @field_validator("zip", mode="before")
    @classmethod
    def _zip(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return [value]
        if value is not None and not isinstance(value, list):
            raise ValueError("zip must be a mapping (or list of mappings) of key -> list")
        return value

    @field_validator("zip")
    @classmethod
    def _zip_lengths(cls, groups: list[dict[str, list[Any]]] | None) -> Any:
        for group in groups or []:
            lengths = {k: len(v) for k, v in group.items()}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"zip lists must have equal lengths, got {lengths}")
        return groups

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list) or not value or not all(is_seed(s) for s in value):
            raise ValueError(f"seeds must be a non-empty list of integers from 0 to {MAX_SEED}")
        if len(set(value)) != len(value):
            raise ValueError("seeds must not repeat")
        return value

    @model_validator(mode="after")
    def _numbers_in_range(self) -> SweepDocument:
        for section in SPEC_SECTIONS:
            value = getattr(self, section)
            found = too_big(value) if isinstance(value, (dict, list)) else None
            if found is not None:
                message = (
                    f"beyond the largest number a spec accepts ({MAX_SPEC_NUMBER}): no "
                    "count, size, rate or seed of a run needs more"
                )
                if not math.isfinite(found[1]):
                    message = "must be a finite number"
                raise invalid_at(self, (section, *found[0]), message, found[1])
        return self
