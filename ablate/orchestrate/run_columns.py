"""Which fields of a sweep's runs a table shows: dotted leaves, only the ones that differ.

A Table 3 row replaces the whole ``adapter`` section, so the sweep's axis is ``adapter`` and its
value a nested dict; printed whole that is a Python repr of 5-7 lines a row. Every table of runs
(the plan, the live display, ``ablate compare``) flattens such values to dotted fields
(``adapter.name``, ``adapter.dim``) and keeps the fields whose values differ between the runs
shown: the ones a reader compares. On screen the varying fields of one axis share its column
(:class:`AxisColumn`: ``name=router dim=8 groups=2``), so eleven adapter kinds make one column,
not sixteen mostly blank ones; one varying field is its own column (``train.lr``).
Machine-readable forms (CSV, JSON) keep one column per dotted field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ablate.spec.dotted import flatten

#: The accuracy columns of a comparison, in order (ScienceQA's headline is the test average).
ACCURACY_KEYS = ("val/Avg", "test/Avg")
#: Metrics a run's one-number summary comes from, first present wins.
HEADLINE_KEYS = ("test/Avg", "val/Avg", "eval/r2", "eval/mse")


def cell_text(value: Any) -> str:
    """Table text for a value: blank when missing (None, NaN), ``yes`` / blank for a bool."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, (list, tuple)):
        return ",".join(cell_text(v) for v in value)
    return str(value)


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def flat_axes(axes: Mapping[str, Any]) -> dict[str, Any]:
    """A run's axes with nested values as dotted leaves: ``{"adapter.dim": 8, "seed": 0}``."""
    if not any(isinstance(value, dict) and value for value in axes.values()):
        return dict(axes)  # already flat (a grid of dotted keys): a plan has 10,000s of them
    return flatten(dict(axes))


def _comparable(value: Any) -> Any:
    """A hashable stand-in for a leaf (lists become tuples) to tell values apart."""
    if isinstance(value, list):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _comparable(v)) for k, v in value.items()))
    return value


def varying_keys(rows: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> list[str]:
    """The ``keys`` (in their order) whose values are not the same in every row.

    A key missing from some rows but present in others varies (a Table 3 row without
    ``adapter.groups`` differs from one with it).
    """
    rows = list(rows)
    return [key for key in keys if _varies(rows, key)]


def _varies(rows: list[Mapping[str, Any]], key: str) -> bool:
    """Whether ``key`` takes two values in ``rows``: stops at the first row that differs."""
    if not rows:
        return False
    first = _comparable(rows[0].get(key))
    for row in rows:
        value = _comparable(row.get(key))
        if value is not first and value != first:  # as a set tells values apart
            return True
    return False


def axis_keys_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every dotted key of the flattened rows, in first-seen order."""
    return list(dict.fromkeys(key for row in rows for key in row))


@dataclass(frozen=True)
class AxisColumn:
    """One on-screen column of a sweep axis and the dotted fields it shows.

    Attributes:
        name: the column header: the axis (``adapter``), or the one field shown
            (``adapter.dim``, ``train.lr``).
        fields: the axis's dotted fields that vary, in order.
    """

    name: str
    fields: tuple[str, ...]

    def cell(self, flat: Mapping[str, Any]) -> str:
        """The column's text for one run's flattened axes (``name=router dim=8``)."""
        if self.fields == (self.name,):
            return cell_text(flat.get(self.name))
        cut = len(self.name) + 1
        shown = [(f[cut:], flat[f]) for f in self.fields if flat.get(f) is not None]
        return " ".join(
            f"{key}={('yes' if value else 'no') if isinstance(value, bool) else cell_text(value)}"
            for key, value in shown
        )


def axis_columns(flats: Sequence[Mapping[str, Any]], axis_keys: Iterable[str]) -> list[AxisColumn]:
    """The columns that show the axes of ``flats`` (runs' flattened axes): varying fields only.

    Args:
        flats: each run's :func:`flat_axes`.
        axis_keys: the sweep's axes in order (``model.llm``, ``adapter``, ``seed``).
    """
    every = axis_keys_of(flats)
    out = []
    for key in axis_keys:
        fields = [f for f in every if f == key or f.startswith(key + ".")]
        varying = varying_keys(flats, fields)
        if len(varying) == 1:
            out.append(AxisColumn(varying[0], (varying[0],)))
        elif varying:
            out.append(AxisColumn(key, tuple(varying)))
    return out


def headline(metrics: Mapping[str, Any] | None) -> tuple[str, float] | None:
    """A run's one-number result, ``("test/Avg", 88.4)``, or None when it has none."""
    for key in HEADLINE_KEYS:
        value = (metrics or {}).get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and math.isfinite(value):
            return key, float(value)
    return None


def headline_text(metrics: Mapping[str, Any] | None) -> str:
    """``test/Avg 88.35``, or blank when the run has no result."""
    found = headline(metrics)
    if found is None:
        return ""
    key, value = found
    return f"{key} {value:.2f}" if key in ACCURACY_KEYS else f"{key} {value:.4g}"
