"""RunSpec: one fully specified run, validated by its job kind's schema, with a stable id.

A RunSpec is what a worker receives (as ``spec.json``) and all it reads. It holds the job kind,
the seed and the job's typed sections (for ``mmt``: model, adapter, data, train, eval). Validation
errors from pydantic are turned into one :class:`~ablate.errors.SpecError` that names the file,
line, dotted key, bad value and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ablate.errors import SpecError, did_you_mean
from ablate.jobs.registry import get_job, is_job_name, job_names
from ablate.spec.base import SpecModel
from ablate.spec.dotted import copy_tree, flatten, get_dotted
from ablate.spec.identity import run_id_of, semantic_dict

#: Locates a dotted key in its source: ``locate("adapter.dim") -> (file, line)``.
Locator = Callable[[str], tuple[str | None, int | None]]

TOP_LEVEL_KEYS = ("job", "seed")


@dataclass(frozen=True)
class RunSpec:
    """One run: job kind, seed and the job's validated sections.

    Attributes:
        job: registered job kind (``mmt``, ``linear-fit``).
        seed: the run's seed (a first-class sweep axis).
        config: the job's sections, an instance of the job kind's ``config_cls``.
    """

    job: str
    seed: int
    config: SpecModel

    @cached_property
    def _dump(self) -> dict[str, Any]:
        return {"job": self.job, "seed": self.seed, **self.config.model_dump(mode="json")}

    @cached_property
    def run_id(self) -> str:
        """12 hex chars hashing the canonical semantic spec (paths and locations excluded)."""
        sections = {k: v for k, v in self._dump.items() if k not in TOP_LEVEL_KEYS}
        semantic = semantic_dict(self.config, sections)
        return run_id_of({"job": self.job, "seed": self.seed, **semantic})

    def to_dict(self) -> dict[str, Any]:
        """Full nested spec, non-semantic fields included (what ``spec.json`` holds); a copy."""
        return copy_tree(self._dump)

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted key (``"adapter.dim"``), as JSON data, without copying."""
        return get_dotted(self._dump, dotted, default)

    def to_json(self) -> str:
        """Canonical pretty JSON of :meth:`to_dict` with the run id beside it for humans."""
        return json.dumps({"run_id": self.run_id, **self.to_dict()}, indent=2, sort_keys=True)

    def flat(self) -> dict[str, Any]:
        """Dotted keys -> values (``{"adapter.dim": 16, ...}``), for params and tables."""
        return flatten(self._dump)


def _annotation_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _annotation_model(arg)
        if found is not None:
            return found
    return None


def _fields_at(model_cls: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the model reached by following ``loc`` from ``model_cls``."""
    for part in loc:
        if model_cls is None or part not in model_cls.model_fields:
            return None
        model_cls = _annotation_model(model_cls.model_fields[part].annotation)
    return list(model_cls.model_fields) if model_cls is not None else None


def _error_from_validation(
    err: ValidationError, config_cls: type[BaseModel], locate: Locator, default_file: str | None
) -> SpecError:
    first = err.errors()[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    dotted = ".".join(str(p) for p in loc)
    file, line = locate(dotted)
    file = file or default_file
    more = len(err.errors()) - 1
    suffix = f" ({more} more error{'s' if more > 1 else ''} after fixing this one)" if more else ""
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(config_cls, loc[:-1])
        hint = did_you_mean(str(loc[-1]), allowed or [])
        return SpecError(
            f"unknown key {loc[-1]!r}{hint}{suffix}",
            file=file,
            line=line,
            key=dotted,
            allowed=allowed,
            show_value=False,
        )
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    if isinstance(value, dict):
        value = None  # a whole section: the message says what is wrong with it
    return SpecError(message + suffix, file=file, line=line, key=dotted or None, value=value)


def build_run_spec(
    data: dict[str, Any], *, file: str | Path | None = None, locate: Locator | None = None
) -> RunSpec:
    """Validate a nested spec dict (``job``, ``seed`` and the job's sections) into a RunSpec.

    Args:
        data: the merged spec (base + sweep point).
        file: the file the spec came from, named in errors.
        locate: maps a dotted key to the file and line it was written on (sweep expansion knows).

    Raises:
        SpecError: unknown job, bad seed, or any schema violation of the job's sections.
    """
    default_file = str(file) if file is not None else None

    def _locate(dotted: str) -> tuple[str | None, int | None]:
        return locate(dotted) if locate is not None else (default_file, None)

    if not isinstance(data, dict):
        raise SpecError("a run spec must be a mapping", file=default_file, value=data)
    job = data.get("job")
    if job is None:
        f, line = _locate("job")
        raise SpecError(
            "missing key 'job'", file=f or default_file, line=line, key="job", allowed=job_names()
        )
    if not isinstance(job, str) or not is_job_name(job):
        f, line = _locate("job")
        raise SpecError(
            f"unknown job{did_you_mean(str(job), job_names())}",
            file=f or default_file,
            line=line,
            key="job",
            value=job,
            allowed=job_names(),
        )
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        f, line = _locate("seed")
        raise SpecError(
            "seed must be a non-negative integer",
            file=f or default_file,
            line=line,
            key="seed",
            value=seed,
        )
    kind = get_job(job)
    sections = {k: v for k, v in data.items() if k not in TOP_LEVEL_KEYS}
    try:
        config = kind.config_cls.model_validate(sections)
    except ValidationError as err:
        raise _error_from_validation(err, kind.config_cls, _locate, default_file) from None
    return RunSpec(job=job, seed=seed, config=config)


def load_run_spec(path: str | Path) -> RunSpec:
    """Read and validate a ``spec.json`` written by the orchestrator.

    Raises:
        SpecError: the file is missing, is not JSON, or no longer validates.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError("spec file not found", file=path) from None
    except (OSError, ValueError) as err:
        raise SpecError(f"spec file is not valid JSON: {err}", file=path) from None
    if not isinstance(data, dict):
        raise SpecError("spec file must hold a JSON object", file=path)
    recorded_id = data.pop("run_id", None)
    spec = build_run_spec(data, file=path)
    if recorded_id is not None and recorded_id != spec.run_id:
        raise SpecError(
            f"spec hashes to {spec.run_id} but records run_id {recorded_id}: edited by hand, or "
            "written by another version of ablate",
            file=path,
        )
    return spec
