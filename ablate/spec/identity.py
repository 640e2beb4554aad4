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
from functools import cache
from typing import Any

from pydantic import BaseModel

from ablate.spec.base import is_nonsemantic

#: Bumped only if the canonical form itself changes (every id would change with it).
ID_SCHEME = "ablate-run-v1"
RUN_ID_LENGTH = 12


@cache
def _nonsemantic_names(model_cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(n for n in model_cls.model_fields if is_nonsemantic(model_cls, n))


def _strip(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``dumped`` (``model``'s JSON dump) without its non-semantic fields, recursively.

    Leaves are shared, not copied: they are JSON scalars and lists of them.
    """
    skip = _nonsemantic_names(type(model))
    out: dict[str, Any] = {}
    for name, value in dumped.items():
        if name in skip:
            continue
        child = getattr(model, name, None)
        out[name] = _strip(child, value) if isinstance(child, BaseModel) else value
    return out


def semantic_dict(model: BaseModel, dumped: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields of ``model`` that define what a run computes, recursively, as JSON data.

    Args:
        model: a validated spec model.
        dumped: ``model.model_dump(mode="json")`` if the caller already has it (saves a dump).
    """
    if dumped is None:
        dumped = model.model_dump(mode="json")
    return _strip(model, dumped)


def canonical_json(data: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the exact bytes that are hashed.

    ``data`` must be JSON data as pydantic's ``mode="json"`` dump gives it: numbers were already
    normalised by their field types (``1e-3`` and ``0.001`` are one float), tuples are lists.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id_of(semantic: dict[str, Any]) -> str:
    """Short, stable hex id of a semantic spec dict."""
    digest = hashlib.sha256((ID_SCHEME + "\n" + canonical_json(semantic)).encode("ascii"))
    return digest.hexdigest()[:RUN_ID_LENGTH]
