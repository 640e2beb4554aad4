"""What a run needs from the machine before it starts: :class:`Need`, and what a check may ask.

A job kind lists its runs' needs (``JobKind.needs``: ``mmt`` names its data folder, weights and a
GPU, :mod:`ablate.jobs.mmt_needs`); the orchestrator's preflight
(:mod:`ablate.orchestrate.preflight`) checks each distinct need once against a :class:`Machine`
before a sweep dispatches anything. The two meet here, below both, so a job never imports the
orchestrator.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NamedTuple, Protocol


class Machine(Protocol):
    """What a check may ask about the machine the runner will use (each answer looked up once)."""

    runner: str
    """The runner profile's name (``local``, ``cpu``, ``slurm``...), named in problems."""
    gpu_ids: list[str] | None
    """GPUs a job may get here; ``None`` when not known here (SLURM nodes) or a CPU runner."""
    gpu_memory_gib: dict[str, float]
    """Total memory per GPU, by index and UUID (empty when it cannot be read)."""
    hub_offline: bool
    """Whether ``HF_HUB_OFFLINE`` forbids downloads."""
    hub_cache: Path
    """The local Hugging Face hub cache folder."""
    hub_reachable: bool
    """Whether the hub accepts a connection within the preflight's bound."""

    def hub_cached(self, repo_id: str) -> bool:
        """Whether a snapshot of ``repo_id`` is in the local hub cache (no network)."""
        ...


class Need(NamedTuple):
    """One thing a run needs from the machine before it can start.

    Attributes:
        key: the dotted spec key it comes from (``data.root``, ``model.llm_path``).
        value: the value shown in a problem line (the path or hub id as the spec resolves it).
        check: ``check(need, machine)`` returns what is wrong (what is needed), or ``None``.
        same_as: needs with the same ``check`` and ``same_as`` are checked once.
        subject: what the check reads besides ``value`` (a spec section), not compared.
    """

    key: str
    value: Any
    check: Callable[[Need, Machine], str | None]
    same_as: Hashable
    subject: Any = None
