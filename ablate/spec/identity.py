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
import math
from typing import Any

from pydantic import BaseModel

from ablate.spec.base import is_nonsemantic

#: Bumped only if the canonical form itself changes (every id would change with it).
ID_SCHEME = "ablate-run-v1"
RUN_ID_LENGTH = 12


def _normalise(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return semantic_dict(value)
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return repr(value)
        return float(repr(value))
    return str(value)


def semantic_dict(model: BaseModel) -> dict[str, Any]:
    """The fields of ``model`` that define what a run computes, recursively, as plain data."""
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        if is_nonsemantic(type(model), name):
            continue
        out[name] = _normalise(getattr(model, name))
    return out


def canonical_json(data: dict[str, Any]) -> str:
    """Compact JSON with sorted keys: the exact bytes that are hashed."""
    return json.dumps(_normalise(data), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id_of(semantic: dict[str, Any]) -> str:
    """Short, stable hex id of a semantic spec dict."""
    digest = hashlib.sha256((ID_SCHEME + "\n" + canonical_json(semantic)).encode("ascii"))
    return digest.hexdigest()[:RUN_ID_LENGTH]
