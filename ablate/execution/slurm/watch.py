"""Following a detached SLURM sweep: job states, lost attempts, tracking catch-up, ``--wait``.

A sweep submitted with ``--runner slurm`` is followed from the store alone: each run folder keeps
``slurm.json`` (job id, attempt, submit time, the MLflow child run when tracked).
:func:`slurm_run_states` asks SLURM (``squeue``, then ``scontrol``, then ``sacct``) which of those
jobs still live; :func:`reattach_slurm_sweep` records the attempts whose job ended without a
record (node died, job killed before its worker started) and sends to MLflow the attempts whose
task could not report them itself (:mod:`ablate.tracking.detached`).
:func:`reattach_if_submitted` does it only for a sweep that was submitted to SLURM at all, and
:func:`wait_for_slurm_sweep` repeats it until no job of the sweep lives (``ablate sweep --wait``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.execution.lost_attempts import lost_attempt_record
from ablate.store.results_store import ResultsStore
from ablate.store.run_folder import planned_run_of

if TYPE_CHECKING:
    from ablate.store.record import AttemptRecord

#: In each run folder: the SLURM job running its latest attempt (written by the executor and the
#: task). Defined here, not in the task module, so that following a sweep never imports submitit.
SLURM_JOB_FILE = "slurm.json"

LIVE_STATES = frozenset({
    "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD",
})  # fmt: skip


def slurm_available() -> str | None:
    """``None`` when a SLURM controller answers here, else why not (for skips and errors)."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "SLURM client commands (sbatch, squeue) are not installed"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if out.returncode != 0:
        return f"no SLURM controller answers: {out.stderr.strip() or out.stdout.strip()}"
    if not any(line.split()[:1] == ["up"] for line in out.stdout.splitlines()):
        return f"no partition is up: {out.stdout.strip()!r}"
    return None


QUERY_BATCH = 100  # job ids per squeue call
UNREACHABLE = "UNREACHABLE"  # squeue itself failed: nobody can tell whether the job lives


def _run(command: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _scontrol_states(array_id: str) -> dict[str, str]:
    """Every task of one job (array) that the controller still remembers (``MinJobAge``)."""
    out = _run(["scontrol", "-o", "show", "job", array_id])
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out is not None else []:
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId", "")
        key = f"{array}_{task}" if array and task.isdigit() else fields.get("JobId", "")
        states.setdefault(key, fields.get("JobState", "UNKNOWN"))
    return states


def _sacct_states(array_ids: list[str]) -> dict[str, str]:
    """States from accounting, for jobs the controller forgot (absent where accounting is off)."""
    out = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(array_ids), "-o", "JobID,State"])
    states: dict[str, str] = {}
    for line in out.stdout.splitlines() if out is not None and out.returncode == 0 else []:
        job_id, _, state = line.partition("|")
        if state:
            states[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return states


def query_job_states(job_ids: list[str]) -> dict[str, str]:
    """SLURM's state per job id (``123_4`` or ``123``), in a few calls whatever the sweep size.

    ``squeue`` (one call per 100 arrays) for live tasks; for the others ``scontrol`` (one call per
    array), then ``sacct``. ``UNKNOWN``: SLURM has forgotten the job. ``UNREACHABLE``: squeue
    failed, so a job that looks gone may still be queued.
    """
    arrays = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    for start in range(0, len(arrays), QUERY_BATCH):
        batch = arrays[start : start + QUERY_BATCH]
        out = _run(["squeue", "-h", "-r", "-j", ",".join(batch), "-o", "%i %T"])
        forgotten = out is not None and "Invalid job id" in out.stderr and len(batch) == 1
        if out is None or (out.returncode != 0 and not forgotten):
            return {j: UNREACHABLE for j in job_ids}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
    missing = sorted({j.split("_")[0] for j in job_ids if j not in states})
    for array_id in missing:
        states.update({k: v for k, v in _scontrol_states(array_id).items() if k not in states})
    still = sorted({j.split("_")[0] for j in job_ids if j not in states})
    if still:
        states.update({k: v for k, v in _sacct_states(still).items() if k not in states})
    return {j: states.get(j, "UNKNOWN") for j in job_ids}


def slurm_run_states(store: ResultsStore, sweep: str) -> dict[str, dict[str, Any]]:
    """The SLURM job of every run folder of ``sweep`` that has one, with its state right now.

    Returns:
        ``{run_id: {"job_id", "attempt", "state", ...}}``; ``state`` is SLURM's (``PENDING``,
        ``RUNNING``, ``COMPLETED``, ``FAILED``, ``CANCELLED``, ...) or ``UNKNOWN`` once SLURM has
        forgotten the job (the store then says how it ended).
    """
    found: dict[str, dict[str, Any]] = {}
    sweep_dir = store.layout.sweep_dir(sweep)
    for path in sorted(sweep_dir.glob(f"*/{SLURM_JOB_FILE}")):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(path.read_text(encoding="utf-8"))
            found[path.parent.name] = {**info, "run_dir": str(path.parent)}
    states = query_job_states([str(i["job_id"]) for i in found.values()])
    for info in found.values():
        info["state"] = states[str(info["job_id"])]
    return found


def record_lost_slurm_attempts(
    store: ResultsStore, sweep: str, states: dict[str, dict[str, Any]] | None = None
) -> list[Any]:
    """Record attempts whose SLURM job ended without any record (node lost, killed early).

    ``states`` (from :func:`slurm_run_states`) saves asking SLURM twice when the caller (``ablate
    status``) shows them too.

    Returns:
        The records written (failed, ``killed``, with SLURM's state in the reason).
    """
    written = []
    states = slurm_run_states(store, sweep) if states is None else states
    if any(info["state"] == UNREACHABLE for info in states.values()):
        return []  # cannot tell a queued job from a lost one
    # sinfo only when a job's state is UNKNOWN: forgotten by SLURM, or SLURM is down
    unknown = any(info["state"] == "UNKNOWN" for info in states.values())
    controller_down = unknown and slurm_available() is not None
    highest = store.highest_attempts() if states else {}
    for run_id, info in states.items():
        if info["state"] in LIVE_STATES or (info["state"] == "UNKNOWN" and controller_down):
            continue
        if info.get("held_by"):  # the task found another process running it: not its attempt
            continue
        if highest.get(run_id, 0) >= int(info["attempt"]):
            continue
        run_dir = Path(info["run_dir"])
        record = lost_attempt_record(
            planned_run_of(run_dir),
            sweep=sweep,
            attempt=int(info["attempt"]),
            stopped_for=None,
            returncode=None,
            log_tail=f"SLURM job {info['job_id']} ended {info['state']} without a record",
            started_at=float(info.get("submitted_at") or time.time()),
            run_dir=run_dir,
            slot=f"slurm:{info['job_id']}",
            executor="slurm",
        )
        store.write(record)
        written.append(record)
    return written


@dataclass
class SlurmSweepState:
    """One look at a detached sweep: its jobs, and what this look recorded or reported."""

    jobs: dict[str, dict[str, Any]]  # run_id -> slurm.json + "state"
    lost: list[AttemptRecord] = field(default_factory=list)  # attempts recorded as lost now
    reported: dict[str, list[int]] = field(default_factory=dict)  # run_id -> attempts sent now

    @property
    def live(self) -> list[str]:
        """Run ids whose job is queued, running or being requeued."""
        return [r for r, info in self.jobs.items() if info["state"] in LIVE_STATES]

    @property
    def unreachable(self) -> bool:
        """SLURM did not answer: nobody can tell a queued job from a finished one."""
        return any(info["state"] == UNREACHABLE for info in self.jobs.values())

    def summary(self) -> str:
        """``2 running, 1 pending, 5 ended`` (SLURM's states, lower case)."""
        counts = Counter(
            info["state"].lower() if info["state"] in LIVE_STATES else "ended"
            for info in self.jobs.values()
        )
        return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no jobs"


def reattach_slurm_sweep(store: ResultsStore, sweep: str) -> SlurmSweepState:
    """Ask SLURM about the sweep's jobs; record lost attempts; report ended ones to MLflow.

    Tracking is reported only for runs whose job has ended (a live task reports its own attempts)
    and never fails the call: a tracking error is kept in the returned state's ``reported``
    as nothing sent (the next look tries again).
    """
    from ablate.tracking.detached import report_ended_attempts, reported_attempts

    states = slurm_run_states(store, sweep)
    state = SlurmSweepState(jobs=states, lost=record_lost_slurm_attempts(store, sweep, states))
    if state.unreachable:
        return state
    for run_id, info in states.items():
        if info["state"] in LIVE_STATES or not info.get("mlflow_run_id"):
            continue
        run_dir = Path(info["run_dir"])
        if int(info.get("attempt") or 0) in reported_attempts(run_dir):
            continue  # the usual case: the task reported its attempt itself
        tracking = {k: str(info[k]) for k in ("tracking_uri", "mlflow_run_id")}
        with contextlib.suppress(Exception):  # tracking never fails following a sweep
            sent = report_ended_attempts(store, run_dir, tracking)
            if sent:
                state.reported[run_id] = sent
    return state


def reattach_if_submitted(store: ResultsStore, sweep: str) -> SlurmSweepState | None:
    """:func:`reattach_slurm_sweep` when a run folder of ``sweep`` names a SLURM job, else None.

    A sweep never submitted to SLURM never calls SLURM (``ablate status`` of a local sweep).
    """
    if not any(store.layout.sweep_dir(sweep).glob(f"*/{SLURM_JOB_FILE}")):
        return None
    return reattach_slurm_sweep(store, sweep)


def wait_for_slurm_sweep(
    store: ResultsStore,
    sweep: str,
    *,
    poll_s: float = 30.0,
    on_poll: Callable[[SlurmSweepState], None] | None = None,
) -> SlurmSweepState:
    """Follow a detached sweep until none of its jobs lives (SLURM answers and shows none).

    Args:
        store: the shared results store.
        sweep: the sweep's name.
        poll_s: seconds between looks (each look is one ``squeue`` per 100 job arrays).
        on_poll: called with every look (progress lines).

    Returns:
        The last look: every job ended, lost attempts recorded, tracking caught up.
    """
    while True:
        state = reattach_slurm_sweep(store, sweep)
        if on_poll is not None:
            on_poll(state)
        if not state.live and not state.unreachable:
            return state
        time.sleep(poll_s)
