"""RunSpec: one fully specified run, validated by its job kind's schema, with a stable id.

A RunSpec is what a worker receives (as ``spec.json``) and all it reads. It holds the job kind,
the seed and the job's typed sections (for ``mmt``: model, adapter, data, train, eval). Validation
errors from pydantic are turned into one :class:`~ablate.errors.SpecError` that names the file,
line, dotted key, bad value and what is allowed (:func:`ablate.spec.validation.spec_error`).

Numbers are bounded at plan time, so a typo never burns the retry budget at run time: the seed fits
every generator it seeds (:data:`~ablate.spec.sweep_document.MAX_SEED`) and floats are finite (a
sweep file's numbers are bounded too: :class:`~ablate.spec.sweep_document.SweepDocument`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ablate.errors import SpecError, did_you_mean
from ablate.json_input import parse_json
from ablate.spec.base import SpecModel
from ablate.spec.dotted import copy_tree, flatten, get_dotted
from ablate.spec.identity import RUN_KEYS, ConfigIdentity
from ablate.spec.job_kinds import get_job, is_job_name, job_names
from ablate.spec.sweep_document import MAX_SEED, is_seed
from ablate.spec.validation import validate

#: Locates a dotted key in its source: ``locate("adapter.dim") -> (file, line)``.
Locator = Callable[[str], tuple[str | None, int | None]]

TOP_LEVEL_KEYS = RUN_KEYS


@dataclass(frozen=True)
class RunSpec:
    """One run: job kind, seed and the job's validated sections.

    Attributes:
        job: registered job kind (``mmt``, ``linear-fit``).
        seed: the run's seed (a first-class sweep axis).
        config: the job's sections, an instance of the job kind's ``config_cls``.
        identity: ``config``'s dump and encoding: given when the caller has them (a sweep's
            seeds share one config: :meth:`with_seed`), computed at construction otherwise.
        run_id: 12 hex chars hashing the canonical semantic spec (paths and locations
            excluded).
    """

    job: str
    seed: int
    config: SpecModel
    identity: ConfigIdentity | None = field(default=None, compare=False, repr=False)
    run_id: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # set once here (frozen): a cached property takes a lock at its first read, a cost
        # that a 10,000-run expansion, reading every run id, would pay 10,000 times
        identity = self.identity if self.identity is not None else ConfigIdentity.of(self.config)
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "run_id", identity.run_id(self.job, self.seed))

    @cached_property
    def _dump(self) -> dict[str, Any]:
        assert self.identity is not None  # set by __post_init__
        return {"job": self.job, "seed": self.seed, **self.identity.dumped}

    def with_seed(self, seed: int) -> RunSpec:
        """This run under another seed, already checked: the config and its encoding shared.

        A sweep's seeds of one point differ in nothing else, so its config is validated, dumped
        and encoded once, not once per seed.
        """
        return RunSpec(job=self.job, seed=seed, config=self.config, identity=self.identity)

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
    if not is_seed(seed):
        f, line = _locate("seed")
        raise SpecError(
            f"seed must be an integer from 0 to {MAX_SEED}",
            file=f or default_file,
            line=line,
            key="seed",
            value=seed,
        )
    kind = get_job(job)
    sections = {k: v for k, v in data.items() if k not in TOP_LEVEL_KEYS}
    config = validate(
        kind.config_cls,
        sections,
        file=default_file,
        locate=lambda loc: _locate(".".join(str(p) for p in loc)),
    )
    return RunSpec(job=job, seed=seed, config=config)


def load_run_spec(path: str | Path) -> RunSpec:
    """Read and validate a ``spec.json`` written by the orchestrator.

    Raises:
        SpecError: the file is missing, is not JSON, or no longer validates.
    """
    path = Path(path)
    try:
        data = parse_json(path.read_bytes(), where=str(path), what="a run spec")
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
