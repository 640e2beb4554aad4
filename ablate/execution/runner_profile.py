"""Runner profiles (``runners/*.yaml``): WHERE runs execute, never what they compute.

A profile picks an executor and its resources (GPUs, CPU slots, threads, timeouts). Profiles are
validated like specs (frozen pydantic models, unknown keys are errors with a "did you mean"): a
profile is one of three models, chosen by its ``executor``, so SLURM's sbatch options live on the
SLURM profile only (a ``local`` profile with ``partition:`` is an unknown key).
``--runner NAME`` looks for ``runners/NAME.yaml``; ``--runner path/to/file.yaml`` reads that file;
``local``, ``inline`` and ``cpu`` have built-in defaults, identical to the files shipped in
``runners/``, so an installed ``ablate`` works outside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ablate.errors import SpecError, did_you_mean
from ablate.execution.registry import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    PROFILE_DIR,
    runner_profile_names,
)
from ablate.execution.slots import discover_gpus
from ablate.spec.base import SpecModel
from ablate.spec.validation import Locator, source_locator, validate
from ablate.spec.yaml_source import load_yaml


class ProfileBase(SpecModel):
    """Fields every executor reads: how long an attempt may run, how it stops, its environment."""

    description: str = ""
    """One line for humans."""
    max_parallel: int | None = Field(None, ge=1)
    """Upper bound on jobs at once (``--max-parallel`` overrides)."""
    timeout_s: float | None = Field(None, gt=0)
    """Wall time after which an attempt is stopped and recorded failed (timeout)."""
    grace_s: float = Field(30.0, ge=0)
    """Seconds a stopped job gets to checkpoint before it is killed."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for every job."""
    name: str = ""
    """The profile's name (filled in from the file name)."""


class InlineProfile(ProfileBase):
    """Runs in the orchestrator's process, one at a time (breakpoints and profilers work)."""

    executor: Literal["inline"]
    """``inline``: in-process, for debugging."""


class LocalProfile(ProfileBase):
    """This machine: a worker subprocess per run, one per GPU or per CPU slot."""

    executor: Literal["local"]
    """``local``: a worker subprocess per run."""
    gpus: Literal["auto", "none"] | list[str] | int = "auto"
    """GPUs to lease, one per job: ``auto`` (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi``),
    ``none``, a list of ids, or a count (the first N)."""
    cpu_slots: int | Literal["auto"] = Field("auto")
    """Parallel jobs when there is no GPU; ``auto`` = one per core, between 1 and 4."""
    threads_per_job: int | Literal["auto"] | None = "auto"
    """CPU threads per job in a CPU slot; ``auto`` = cores / slots; ``null`` = inherit."""

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value

    @field_validator("cpu_slots", "threads_per_job")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be >= 1 (or 'auto')")
        return value

    def gpu_ids(self) -> list[str]:
        """The GPU ids this profile leases (discovered for ``auto``)."""
        if self.gpus == "none":
            return []
        if self.gpus == "auto":
            return discover_gpus()
        if isinstance(self.gpus, int):
            return discover_gpus()[: self.gpus]
        return list(self.gpus)

    def resolved_cpu_slots(self) -> int:
        """Number of CPU slots (``auto`` resolved against this machine's cores)."""
        if self.cpu_slots == "auto":
            # one job per core, at most 4: CPU jobs (tiny twins) run one thread each
            return max(1, min(4, os.cpu_count() or 1))
        return int(self.cpu_slots)

    def resolved_threads(self, slots: int) -> int | None:
        """Threads per CPU job (``auto``: cores shared evenly by the slots)."""
        if self.threads_per_job is None:
            return None
        if self.threads_per_job == "auto":
            return max(1, (os.cpu_count() or 1) // max(1, slots))
        return int(self.threads_per_job)


class SlurmResources(SpecModel):
    """What each SLURM task asks for: the sbatch options of a ``slurm`` profile, declared once."""

    gpus: int = Field(0, ge=0)
    """GPUs per task (``--gpus-per-node``)."""
    partition: str | None = None
    """SLURM partition (default: the cluster's default partition)."""
    cpus: int = Field(1, ge=1)
    """CPUs per task (``--cpus-per-task``; SLURM's own default, 1)."""
    mem_gb: float | None = Field(None, gt=0)
    """Memory per task in GB (``--mem``); default: the partition's."""
    time_min: int = Field(60, ge=1)
    """Time limit per task in minutes; a task that reaches it checkpoints and is requeued."""
    qos: str | None = None
    """SLURM quality of service (``--qos``)."""
    account: str | None = None
    """SLURM account (``--account``)."""
    setup: list[str] = Field(default_factory=list)
    """Shell lines run in each task before the worker (``module load``, ``source venv``)."""
    array_parallelism: int = Field(64, ge=1)
    """Tasks of one job array running at once (the array's ``%N``)."""
    array_chunk: int = Field(1000, ge=1)
    """Runs per job array (keep under the cluster's ``MaxArraySize``)."""
    signal_delay_s: int = Field(120, ge=10)
    """Seconds before the time limit at which SLURM signals the task to checkpoint."""
    max_requeues: int = Field(3, ge=0)
    """Times a task that reached its time limit (or was preempted) is requeued."""

    def describe(self) -> str:
        """One line for error messages: what each task asks for."""
        parts = [f"partition={self.partition or '<default>'}", f"gpus={self.gpus}"]
        parts += [f"cpus={self.cpus}", f"mem_gb={self.mem_gb}", f"time_min={self.time_min}"]
        parts += [f"{k}={v}" for k, v in (("qos", self.qos), ("account", self.account)) if v]
        return ", ".join(parts)

    def submitit_parameters(self, job_name: str) -> dict[str, Any]:
        """Keyword arguments for ``submitit.SlurmExecutor.update_parameters``."""
        params: dict[str, Any] = {
            "job_name": job_name,
            "time": self.time_min,
            "cpus_per_task": self.cpus,
            "ntasks_per_node": 1,
            "array_parallelism": self.array_parallelism,
            "signal_delay_s": self.signal_delay_s,
            "setup": list(self.setup),
            "stderr_to_stdout": True,
        }
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        optional = {"partition": self.partition, "qos": self.qos, "account": self.account}
        params.update({k: v for k, v in optional.items() if v})
        if self.mem_gb:
            params["mem"] = f"{int(self.mem_gb * 1024)}MB"
        return params


class SlurmProfile(ProfileBase, SlurmResources):
    """SLURM job arrays through submitit; ``ablate sweep`` submits and returns."""

    executor: Literal["slurm"]
    """``slurm``: job arrays through submitit."""
    gpus: int | Literal["auto", "none"] = "auto"  # type: ignore[assignment]
    """GPUs per task: a count, ``none`` (CPU nodes) or ``auto`` (one)."""

    @field_validator("gpus")
    @classmethod
    def _gpu_count(cls, value: Any) -> Any:
        if isinstance(value, int) and value < 0:
            raise ValueError("must be >= 0 (or 'auto', 'none')")
        return value

    def resources(self, max_parallel: int | None = None) -> SlurmResources:
        """The sbatch options of each task (``max_parallel`` caps the array's ``%N``)."""
        gpus = {"auto": 1, "none": 0}.get(self.gpus, self.gpus)  # type: ignore[arg-type]
        parallel = max_parallel or self.max_parallel or self.array_parallelism
        fields = self.model_dump(include=set(SlurmResources.model_fields))
        return SlurmResources(**{**fields, "gpus": gpus, "array_parallelism": parallel})


RunnerProfile = Annotated[
    InlineProfile | LocalProfile | SlurmProfile, Field(discriminator="executor")
]
"""A runner profile: its ``executor`` picks the model, so each executor's fields live on its own."""


def parse_runner_profile(
    data: Any, *, name: str, source: str, locate: Locator | None = None
) -> InlineProfile | LocalProfile | SlurmProfile:
    """Validate a profile mapping into the model its ``executor`` names.

    Args:
        data: the parsed profile.
        name: the profile's name (its file name).
        source: the file (or ``<builtin NAME>``), named in errors.
        locate: maps a key to its line in ``source`` (when read from a file).

    Raises:
        SpecError: not a mapping, unknown key, or a bad value (names the file, key and value).
    """
    if not isinstance(data, dict):
        raise SpecError("a runner profile must be a mapping", file=source, value=data)
    return validate(
        RunnerProfile, {**data, "name": name}, file=source, locate=locate, hidden=("name",)
    )


def load_runner_profile(
    name_or_path: str | Path | None = None, *, search_dir: Path = PROFILE_DIR
) -> RunnerProfile:
    """Load a runner profile by name (``runners/NAME.yaml`` or built-in) or by file path.

    Raises:
        SpecError: the profile does not exist (lists the ones that do) or does not validate.
    """
    name_or_path = str(name_or_path or DEFAULT_PROFILE)
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(search_dir) / f"{name_or_path}.yaml"
    name = path.stem
    if not path.is_file():
        if name_or_path in BUILTIN_PROFILES:
            return parse_runner_profile(
                BUILTIN_PROFILES[name_or_path], name=name_or_path, source=f"<builtin {name}>"
            )
        choices = runner_profile_names(search_dir)
        raise SpecError(
            f"runner profile not found{did_you_mean(name, choices)}",
            file=path,
            allowed=choices,
        )
    # the sweep files' loader: safe tags only, duplicate keys, encoding and depth errors named
    src = load_yaml(path)
    return parse_runner_profile(src.data, name=name, source=str(path), locate=source_locator(src))
