"""Helpers for the SLURM tests: a runs root, a quick-fit sweep, polling the store and SLURM."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ORCHESTRATION = HERE.parent / "orchestration"
for folder in (ORCHESTRATION, HERE.parent / "tune"):  # quick_job, tune_helpers
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import quick_job  # noqa: E402,F401  (registers quick-fit here; jobs import it by env)
from sweep_helpers import let_workers_import_quick_job, sweep_file  # noqa: E402

from ablate.spec.sweep import Sweep, load_sweep  # noqa: E402


def job_env(monkeypatch) -> None:
    """SLURM tasks inherit the submitter's environment: let their workers import quick-fit."""
    let_workers_import_quick_job(monkeypatch)


def write_sweep(tmp_path: Path, name: str, body: str) -> Sweep:
    """Write and load a sweep file (``name:`` prepended to ``body``)."""
    return load_sweep(sweep_file(tmp_path, name, body))


def wait_for(what: str, check: Callable[[], object], timeout_s: float, every_s: float = 0.5):
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


def progress_step(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "progress.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def slurm(*args: str) -> str:
    return subprocess.run(list(args), check=True, capture_output=True, text=True).stdout


REQUEUE_SETTLE_S = 5.0


def start_if_held(job_id: str) -> bool:
    """Make a requeued job eligible early (SLURM holds requeued jobs ~2 minutes: ``BeginTime``).

    Only once ``REQUEUE_SETTLE_S`` have passed since its requeue (SLURM resets the job's submit
    time, ``%V``, on requeue): started within the same second as its requeue, slurmd refuses it
    ("Job credential revoked") and the job ends FAILED. Stateless, so every requeue of the same
    job waits again. Returns whether the job is pending.
    """
    out = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T|%r|%V"], capture_output=True, text=True
    ).stdout  # no check: squeue fails for a job that has already left the queue
    state, _, rest = out.strip().partition("|")
    if state != "PENDING":
        return False
    reason, _, submitted = rest.partition("|")
    try:
        since = time.mktime(time.strptime(submitted.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return True
    if reason == "BeginTime" and time.time() - since >= REQUEUE_SETTLE_S:
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=False)
    return True


def start_task_until_progress(task, run_dir: Path, steps: int = 3):
    """Call a SLURM task in a thread (as SLURM would) until its worker made ``steps`` steps.

    Returns:
        ``(thread, errors)``: join the thread; ``errors`` holds what the task raised.
    """
    errors: list[BaseException] = []

    def call() -> None:
        try:
            task()
        except BaseException as exc:  # noqa: BLE001 - the caller inspects it
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    wait_for("the worker to make progress", lambda: progress_step(run_dir) >= steps, 60)
    return thread, errors


def prepared_run(tmp_path: Path, body: str, sweep_name: str = "unit"):
    """A one-run quick-fit sweep's run folder with spec.json written, as a detached sweep leaves it.

    Returns:
        ``(store, sweep, run, run_dir)``.
    """
    from ablate.store.results_store import ResultsStore
    from ablate.store.run_folder import write_run_files

    store = ResultsStore(tmp_path / "runs")
    sweep = write_sweep(tmp_path, sweep_name, f"base: {{job: quick-fit, fit: {body}}}\n")
    [run] = sweep.runs
    run_dir = store.layout.run_dir(sweep_name, run.spec.run_id)
    write_run_files(run_dir, run.spec.to_json(), sweep=sweep_name, axes={})
    return store, sweep, run, run_dir
