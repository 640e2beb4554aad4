"""Run identity: ``run_id`` is a short hash of the canonical *semantic* spec.

Two specs that compute the same thing get the same id on any machine and in any Python process:
keys are sorted, numbers normalised (``1e-3`` and ``0.001`` are one value once validated into a
float field), and fields declared :func:`~ablate.spec.base.nonsemantic` (paths to weights or data,
output locations) are left out, as are the tracking URI, runner and GPU, which never live in a spec.
Defaults are included: a run under a changed default is a different run, never mistaken for done.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel

from ablate.spec.base import is_nonsemantic

#: Bumped only if the canonical form itself changes (every id would change with it).
ID_SCHEME = "ablate-run-v1"
RUN_ID_LENGTH = 12
#: A run's own top-level keys, besides its config's sections (in sorted order).
RUN_KEYS = ("job", "seed")
#: What ``json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` builds for
#: each call, built once (expansion encodes tens of thousands of small dicts).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@cache
def _strip_plan(model_cls: type[BaseModel]) -> tuple[frozenset[str], frozenset[str]] | None:
    """For a model class: (fields to leave out, fields that may hold a nested model).

    ``None`` when there are neither: the class's JSON dump is already its semantic dict, so
    expansion hashes 10,000 runs without copying their plain sections.
    """
    skip = frozenset(n for n in model_cls.model_fields if is_nonsemantic(model_cls, n))
    nested = frozenset(
        n for n, info in model_cls.model_fields.items() if _may_hold_model(info.annotation)
    )
    return (skip, nested) if skip or nested else None


def _may_hold_model(annotation: Any) -> bool:
    """Whether a field with this annotation may hold a model (unknown constructs: yes)."""
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    origin = get_origin(annotation)
    if origin is Literal:
        return False
    if origin is Annotated:
        return _may_hold_model(get_args(annotation)[0])
    args = get_args(annotation)
    return not args or any(_may_hold_model(arg) for arg in args)


def _strip(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """``dumped`` (``model``'s JSON dump) without its non-semantic fields, recursively.

    Parts with nothing to leave out are shared, not copied: the result is for hashing.
    """
    plan = _strip_plan(type(model))
    if plan is None:
        return dumped
    skip, nested = plan
    out: dict[str, Any] = {}
    for name, value in dumped.items():
        if name in skip:
            continue
        if name in nested:
            child = getattr(model, name, None)
            if isinstance(child, BaseModel):
                value = _strip(child, value)
        out[name] = value
    return out


def semantic_dict(model: BaseModel, dumped: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of ``model`` that define what a run computes, recursively, as JSON data.

    Shares the parts of ``dumped`` that have no non-semantic field: read it, never change it.

    Args:
        model: a validated spec model.
        dumped: ``model.model_dump(mode="json")`` if the caller already has it (saves a dump).
    """
    if dumped is None:
        dumped = model.model_dump(mode="json")
    return _strip(model, dumped)


@dataclass(frozen=True)
class ConfigIdentity:
    """A validated config's JSON dump and its canonical JSON, around a run's ``job`` and ``seed``.

    Computed once per config and shared by the runs that hold it: a sweep's seeds differ only in
    ``seed``, so their dumps and ids reuse this instead of dumping and encoding the config again.
    The canonical JSON of a run (:func:`canonical_json` of ``{"job", "seed", **semantic}``) is
    its members in key order: the config's members before ``job``, between ``job`` and ``seed``
    and after ``seed`` are joined here once.

    Attributes:
        dumped: ``config.model_dump(mode="json")``; shared, never changed.
        around: the config's members before ``"job"``, between it and ``"seed"``, and after,
            each with the commas that join it to the run's own members.
    """

    dumped: dict[str, Any]
    around: tuple[str, str, str]

    @classmethod
    def of(cls, config: BaseModel) -> ConfigIdentity:
        """Dump ``config`` and encode its semantic sections."""
        dumped = config.model_dump(mode="json")
        semantic = semantic_dict(config, dumped)
        groups: list[list[str]] = [[], [], []]  # before "job", between, after "seed"
        for key in sorted(semantic):
            if key not in RUN_KEYS:
                group = 0 if key < "job" else 1 if key < "seed" else 2
                groups[group].append(_member(key, semantic[key]))
        before, between, after = (",".join(group) for group in groups)
        return cls(
            dumped,
            (
                before + "," if before else "",
                "," + between + "," if between else ",",
                "," + after if after else "",
            ),
        )

    def run_id(self, job: str, seed: int) -> str:
        """:func:`run_id_of` ``{"job": job, "seed": seed, **semantic}``: the same id, cheaper."""
        before, between, after = self.around
        job_member, seed_member = _own_member("job", job), _own_member("seed", seed)
        return _digest("{" + before + job_member + between + seed_member + after + "}")


def canonical_json(data: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the exact bytes that are hashed.

    ``data`` must be JSON data as pydantic's ``mode="json"`` dump gives it: numbers were already
    normalised by their field types (``1e-3`` and ``0.001`` are one float), tuples are lists.
    """
    return _CANONICAL.encode(data)


def _member(key: str, value: Any) -> str:
    """``'"key":value'``: one member of a dict's canonical JSON (the dict is its members)."""
    return canonical_json({key: value})[1:-1]


@lru_cache(maxsize=4096, typed=True)
def _own_member(key: str, value: str | int) -> str:
    """:func:`_member` of a run's ``job`` or ``seed``, remembered (typed: ``1`` is not ``True``)."""
    return _member(key, value)


def run_id_of(semantic: dict[str, Any]) -> str:
    """Short, stable hex id of a semantic spec dict."""
    return _digest(canonical_json(semantic))


def _digest(canonical: str) -> str:
    digest = hashlib.sha256((ID_SCHEME + "\n" + canonical).encode("ascii"))
    return digest.hexdigest()[:RUN_ID_LENGTH]
