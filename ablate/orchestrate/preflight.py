"""Preflight: before a sweep dispatches anything, check that every run to dispatch can start here.

A sweep that dispatches runs whose data folder is not set, or whose weights are neither on disk
nor in the Hugging Face cache, fails every attempt in the first seconds of each worker, after
the workers paid for their imports (and, for an uncached hub id, after a minute of connection
time-outs each). The preflight asks the same questions up front, in well under a second:

- each job kind says what its runs need from the machine, as :class:`~ablate.jobs.needs.Need`
  items (``mmt``: the ScienceQA folder and its files, the LLM and vision weights, a GPU with room
  for the estimate; :mod:`ablate.jobs.mmt_needs`);
- each need is checked once however many runs share it (the same data folder for eleven runs is
  one look), against a :class:`Machine` that looks at the runner's devices and the hub lazily;
- every problem is reported at once, one line each, naming the key, the value, the runs and what
  is needed; nothing is dispatched and no retry budget is spent (``--no-preflight`` skips it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ablate.errors import AblateError
from ablate.jobs.needs import Need

if TYPE_CHECKING:
    from ablate.orchestrate.plan import PlanEntry

#: Seconds the hub gets to accept a connection when a hub id is not in the local cache.
HUB_PROBE_S = 0.5
#: Run labels named in one problem line before "+N more".
LABELS_SHOWN = 3


@dataclass(frozen=True)
class Problem:
    """A need that is not met, and the runs that have it."""

    key: str
    value: Any
    needed: str
    runs: tuple[str, ...]

    def line(self, total: int) -> str:
        """``data.root (all 11 runs): not set; point it at ...`` (``total``: runs checked)."""
        if len(self.runs) == total and total > 1:
            which = f"all {total} runs"
        else:
            shown = ", ".join(self.runs[:LABELS_SHOWN])
            more = len(self.runs) - LABELS_SHOWN
            which = f"run {shown}" if len(self.runs) == 1 else f"runs {shown}"
            which += f" +{more} more" if more > 0 else ""
        written = self.key if self.value is None else f"{self.key}={self.value}"
        return f"{written} ({which}): {self.needed}"


class PreflightError(AblateError):
    """Runs of a sweep cannot start here; the message lists every problem, one line each."""

    def __init__(self, problems: Sequence[Problem], total: int) -> None:
        self.problems = list(problems)
        lines = [p.line(total) for p in problems]
        head = f"preflight found {len(lines)} problem(s); nothing was dispatched:"
        tail = "fix them and rerun, or skip this check with --no-preflight"
        super().__init__("\n".join([head, *(f"  {line}" for line in lines), tail]))


class Machine:
    """Where the runner will run the jobs, looked at lazily and at most once.

    The :class:`ablate.jobs.needs.Machine` a job's checks ask.

    Args:
        profile: the runner profile (``local``, ``inline``, ``slurm``...).
    """

    def __init__(self, profile: Any) -> None:
        self.profile = profile
        self.runner = getattr(profile, "name", "") or profile.executor

    @cached_property
    def gpu_ids(self) -> list[str] | None:
        """GPUs a job may get here; ``None`` when not known here (SLURM nodes) or a CPU runner."""
        from ablate.execution.slots import discover_gpus

        executor = self.profile.executor
        if executor == "inline":
            return discover_gpus()
        if executor == "local":
            return None if self.profile.gpus == "none" else self.profile.gpu_ids()
        return None  # SLURM: the nodes' GPUs are seen by the jobs, not here

    @cached_property
    def gpu_memory_gib(self) -> dict[str, float]:
        """Total memory per GPU, by index and by UUID (empty when ``nvidia-smi`` cannot say)."""
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return {}
        query = "--query-gpu=index,uuid,memory.total"
        try:
            out = subprocess.run(
                [smi, query, "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return {}
        return parse_gpu_memory(out.stdout) if out.returncode == 0 else {}

    @cached_property
    def hub_offline(self) -> bool:
        """Whether ``HF_HUB_OFFLINE`` forbids downloads (as huggingface_hub reads it)."""
        return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")

    @cached_property
    def hub_cache(self) -> Path:
        """The Hugging Face hub cache folder (``HF_HUB_CACHE``, ``HF_HOME``/hub, or the default)."""
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)

    @cached_property
    def hub_reachable(self) -> bool:
        """Whether the hub accepts a connection within :data:`HUB_PROBE_S` (asked once).

        The name lookup runs in a thread so that a resolver that hangs cannot hold the
        preflight past the bound.
        """
        if self.hub_offline:
            return False
        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
        answer: list[bool] = []

        def probe() -> None:
            try:
                socket.create_connection((host or "huggingface.co", 443), HUB_PROBE_S).close()
                answer.append(True)
            except OSError:
                answer.append(False)

        thread = threading.Thread(target=probe, daemon=True)
        thread.start()
        thread.join(HUB_PROBE_S + 0.1)
        return bool(answer and answer[0])

    def hub_cached(self, repo_id: str) -> bool:
        """Whether a snapshot of ``repo_id`` is in the local hub cache (no network)."""
        snapshots = self.hub_cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
        try:
            return any(snapshots.iterdir())
        except OSError:
            return False


def parse_gpu_memory(text: str) -> dict[str, float]:
    """GiB per GPU, by index and by UUID, from the lines ``nvidia-smi`` writes.

    The query is ``--query-gpu=index,uuid,memory.total --format=csv,noheader,nounits``; a line
    reads ``0, GPU-8f2c..., 143771`` (MiB). Lines that do not parse are skipped.
    """
    memory: dict[str, float] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].replace(".", "", 1).isdigit():
            memory[parts[0]] = memory[parts[1]] = float(parts[2]) / 1024
    return memory


def run_name(entry: PlanEntry) -> str:
    """How a problem line names a run: its label in quotes, else its run id."""
    label = getattr(entry.run, "label", None)
    return f'"{label}"' if label else entry.run_id


def find_problems(entries: Sequence[PlanEntry], machine: Machine) -> list[Problem]:
    """Every unmet need of ``entries``, each need checked once, in the order first met.

    Args:
        entries: the plan entries that would be dispatched.
        machine: the runner's machine.
    """
    from ablate.spec.job_kinds import get_job

    verdicts: dict[tuple[Any, Hashable], str | None] = {}
    found: dict[tuple[Any, Hashable], tuple[Need, list[str]]] = {}
    for entry in entries:
        needs_of = get_job(entry.run.spec.job).needs
        for need in needs_of(entry.run.spec) if needs_of is not None else ():
            ident = (need.check, need.same_as)
            if ident not in verdicts:
                verdicts[ident] = need.check(need, machine)
            if verdicts[ident] is not None:
                found.setdefault(ident, (need, []))[1].append(run_name(entry))
    return [
        Problem(need.key, need.value, str(verdicts[ident]), tuple(runs))
        for ident, (need, runs) in found.items()
    ]


def preflight(entries: Sequence[PlanEntry], profile: Any) -> None:
    """Check the runs a sweep is about to dispatch; raise with every problem at once.

    Raises:
        PreflightError: some run cannot start here (the message lists every problem).
    """
    problems = find_problems(entries, Machine(profile))
    if problems:
        raise PreflightError(problems, len(entries))
