"""The worker process: run one attempt from its run folder alone.

    python -m ablate.execution.worker RUN_DIR --attempt N [--runs-root DIR] [--executor NAME]

It reads ``RUN_DIR/spec.json`` (never the sweep YAML), runs the job and writes its own attempt
record, so the same entry point serves the local executor and SLURM tasks, which have no
orchestrator around. SIGTERM or SIGINT ask the job to stop: it checkpoints, raises
``JobCancelled`` and the attempt is recorded cancelled.

On Linux the worker asks the kernel to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``):
an orchestrator killed with SIGKILL takes its workers down with it instead of leaving orphans that
would race the next ``ablate sweep``.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ablate.execution.attempt import run_attempt
from ablate.execution.slots import resolve_device
from ablate.store.layout import RunsLayout
from ablate.store.record import AttemptStatus
from ablate.store.results_store import ResultsStore

PARENT_PID_ENV = "ABLATE_PARENT_PID"
EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 75  # EX_TEMPFAIL: stopped on request, may be resumed
_PR_SET_PDEATHSIG = 1


def worker_pythonpath(env: dict[str, str]) -> str:
    """``PYTHONPATH`` for a worker started with ``env``: this checkout of ``ablate`` importable.

    A source checkout (editable install, or a script run from the repo) must be importable by the
    worker too; an installed package is already, and its site-packages must not be put ahead of
    the standard library through ``PYTHONPATH``.
    """
    source_root = Path(__file__).resolve().parent.parent.parent
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if source_root.name not in ("site-packages", "dist-packages"):
        paths.insert(0, str(source_root))
    return os.pathsep.join(dict.fromkeys(paths))


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parent_already_gone() -> bool:
    """Whether the parent that started us died before ``die_with_parent`` took effect."""
    expected = os.environ.get(PARENT_PID_ENV)
    return bool(expected) and os.getppid() != int(expected)


class StopRequest:
    """A flag set by SIGTERM/SIGINT; the job polls it through ``ctx.should_stop()``."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        """Install the SIGTERM/SIGINT handlers."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.signal_name = signal.Signals(signum).name
        if not self._event.is_set():
            print(f"[ablate worker] {self.signal_name}: asking the job to stop", flush=True)
        self._event.set()

    def __call__(self) -> bool:
        """Whether a stop was asked for (the job polls this through ``ctx.should_stop()``)."""
        return self._event.is_set()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 success, 1 failed, 75 cancelled, 2 usage)."""
    parser = argparse.ArgumentParser(prog="python -m ablate.execution.worker")
    parser.add_argument("run_dir", type=Path, help="the run folder holding spec.json")
    parser.add_argument("--attempt", type=int, required=True, help="attempt number (1-based)")
    parser.add_argument("--runs-root", type=Path, default=None, help="default: RUN_DIR/../..")
    parser.add_argument("--executor", default="local", help="recorded beside the result")
    args = parser.parse_args(argv)

    stop = StopRequest()
    stop.install()
    die_with_parent(signal.SIGTERM)
    if parent_already_gone():
        stop._handle(signal.SIGTERM, None)
    run_dir = args.run_dir.resolve()
    if not (run_dir / "spec.json").is_file():
        print(f"[ablate worker] {run_dir / 'spec.json'}: not found", file=sys.stderr, flush=True)
        return EXIT_USAGE
    if args.attempt < 1:
        print(f"[ablate worker] --attempt must be >= 1, got {args.attempt}", file=sys.stderr)
        return EXIT_USAGE
    root = args.runs_root or RunsLayout.for_run_dir(run_dir).root
    if not run_dir.is_relative_to(Path(root).resolve()):
        print(
            f"[ablate worker] {run_dir}: not inside the runs root {Path(root).resolve()}; "
            f"refusing to run (path traversal)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_USAGE
    device = resolve_device()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(
        f"[ablate worker] {stamp} run {run_dir.name} attempt {args.attempt} pid {os.getpid()} "
        f"device {device} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}",
        flush=True,
    )
    record = run_attempt(
        run_dir,
        args.attempt,
        store=ResultsStore(root),
        executor=args.executor,
        stop_flag=stop,
        device=device,
    )
    took = f"{record.duration_s:.2f}s" if record.duration_s is not None else "?"
    print(f"[ablate worker] attempt {args.attempt}: {record.status.value} in {took}", flush=True)
    if record.status is not AttemptStatus.SUCCESS:
        print(f"[ablate worker] {record.failure_reason}", flush=True)
    return {
        AttemptStatus.SUCCESS: EXIT_SUCCESS,
        AttemptStatus.FAILED: EXIT_FAILED,
        AttemptStatus.CANCELLED: EXIT_CANCELLED,
    }[record.status]


def _exit_now(code: int) -> None:
    """Leave without interpreter teardown once the record is safely written.

    Tearing down a process that imported torch costs up to a second (module finalisers, thread
    pools), paid per job for nothing: the record is already fsync'd and the log flushed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
