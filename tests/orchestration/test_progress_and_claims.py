"""The progress displays, per-run claims, the sweep lock and provenance."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time

from rich.console import Console
from sweep_helpers import (  # noqa: F401 (fixtures used by name)
    REPO,
    inline_executor,
    quick_sweep,
    runs_fixture,
    store_fixture,
    worker_can_import_quick_job,
)

from ablate.execution.claims import claim_holder, held_claims, try_claim
from ablate.orchestrate.lock import SweepLock, sweep_lock_holder
from ablate.orchestrate.orchestrator import run_sweep
from ablate.orchestrate.progress import (
    NullProgress,
    PlainProgress,
    RichProgress,
    RunningView,
    SweepStatus,
    format_seconds,
    make_progress,
)
from ablate.orchestrate.signals import StopSignals
from ablate.orchestrate.tracker import NullTracker
from ablate.store.provenance import git_state, package_versions


def test_plain_progress_logs_each_event(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1), fail_attempts=1)
    out = io.StringIO()
    run_sweep(
        sweep,
        executor=inline_executor(store),
        store=store,
        retries=1,
        progress=PlainProgress(out, interval_s=0),
    )
    text = out.getvalue()
    assert "[quick] 2 runs (new 2); 2 to dispatch" in text
    assert text.count("start  ") == 4
    assert "injected failure (attempt 1) (will retry)" in text
    assert "done 2/2, running 0, failed 2, left 0" in text
    assert "finished: 2 succeeded, 2 did not; 0 run(s) not done" in text


def test_rich_progress_shows_label_phase_epoch_loss_rate_and_eta(tmp_path):
    progress_file = tmp_path / "progress.json"
    report = {"step": 30, "total": 120, "phase": "train", "epoch": 2, "epochs": 4, "loss": 0.61234}
    progress_file.write_text(json.dumps({**report, "time": time.time() - 10}))
    view = RunningView(
        "abc123abc123",
        2,
        {"adapter": {"name": "bottleneck", "dim": 8}},
        "gpu:1",
        time.time() - 65,
        progress_file,
        label="[dim 8, groups 2]",
    )
    status = SweepStatus(
        "table2",
        total=10,
        done=3,
        failed=1,
        exhausted=0,
        left=6,
        running=[view],
        eta_s=125,
        elapsed_s=30,
    )
    out = io.StringIO()
    progress = RichProgress(Console(file=out, force_terminal=True, width=160))
    progress._render(status)  # the first report of the phase: the origin of its rate
    progress_file.write_text(json.dumps({**report, "step": 50, "time": time.time()}))
    Console(file=out, width=160).print(progress._render(status))
    text = out.getvalue()
    assert "done 3/10, running 1, failed 1, left 6" in text and "ETA 2m05s" in text
    assert "[dim 8, groups 2]" in text, "the label is text, not rich markup"
    assert "abc123abc123 (attempt 2)" in text and "gpu:1" in text
    assert "train" in text and "2/4" in text and "50/120" in text and "0.6123" in text
    assert "2.00" in text and "35s" in text, "2 steps/s; 70 steps left in the phase"


class ChattyTracker(NullTracker):
    """Logs the way MLflow does (a handler writing to whatever ``sys.stderr`` is), prints there."""

    def __init__(self) -> None:
        class CurrentStderr:
            def write(self, text: str) -> None:
                sys.stderr.write(text)

            def flush(self) -> None:
                sys.stderr.flush()

        self.logger = logging.getLogger("chatty-library")
        self.logger.handlers = [logging.StreamHandler(CurrentStderr())]
        self.logger.propagate = False

    def on_sweep_start(self, sweep, plan) -> None:
        self.logger.warning("INFO chatty.store: Creating initial database tables...")

    def on_attempt_start(self, run, attempt) -> dict[str, str]:
        print("UserWarning: a library warning", file=sys.stderr)  # what warnings.warn prints
        return {}


def test_live_display_sends_library_lines_to_the_sweep_log_and_ends_with_results(tmp_path, store):
    sweep = quick_sweep(tmp_path, seeds=(0, 1))
    out = io.StringIO()
    log = tmp_path / "sweep.log"
    progress = RichProgress(
        Console(file=out, force_terminal=True, width=160), announce=False, log_file=log
    )
    stderr = sys.stderr
    run_sweep(
        sweep,
        executor=inline_executor(store),
        store=store,
        progress=progress,
        tracker=ChattyTracker(),
    )
    progress.close()
    assert sys.stderr is stderr, "stderr is given back"
    text = out.getvalue()
    assert "Creating initial database tables" not in text and "library warning" not in text
    assert "Creating initial database tables" in log.read_text()
    assert "a library warning" in log.read_text()
    assert "2 runs (new 2)" not in text, "the caller printed the plan"
    assert "finished: 2 succeeded" in text and "seed" in text and "done" in text
    assert f"next: ablate report {sweep.path}" in text
    assert f"library messages (MLflow, warnings): {log}" in text


def test_step_from_an_earlier_attempt_is_not_shown(tmp_path):
    progress_file = tmp_path / "progress.json"
    progress_file.write_text(json.dumps({"step": 99, "total": 100, "time": time.time() - 600}))
    view = RunningView("r", 2, {}, "cpu:0", time.time(), progress_file)
    assert view.step() is None


def test_display_choice_follows_the_terminal():
    assert isinstance(make_progress(io.StringIO()), PlainProgress)
    assert isinstance(make_progress(quiet=True), NullProgress)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(Tty()), RichProgress)
    assert format_seconds(59) == "59s" and format_seconds(3600 * 2 + 600) == "2h10m"


def test_claim_is_exclusive_and_outlives_the_orchestrator_in_its_worker(tmp_path, store):
    claim = try_claim(store.layout, "aaaaaaaaaaaa", sweep="one")
    assert try_claim(store.layout, "aaaaaaaaaaaa", sweep="two") is None
    assert claim_holder(store.layout, "aaaaaaaaaaaa")["sweep"] == "one"
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], pass_fds=(claim.fd,)
    )
    try:
        os.close(claim.fd)  # the orchestrator dies: only the worker holds the descriptor now
        claim.fd = -1
        assert "aaaaaaaaaaaa" in held_claims(store.layout)
        assert try_claim(store.layout, "aaaaaaaaaaaa") is None
    finally:
        child.kill()
        child.wait()
    assert held_claims(store.layout) == {}
    again = try_claim(store.layout, "aaaaaaaaaaaa", sweep="three")
    assert again is not None
    again.release()
    assert not (store.layout.claims_dir / "aaaaaaaaaaaa.lock").exists()


def test_sweep_lock_is_released_when_its_holder_dies(tmp_path, store):
    code = (
        "import sys, time; from pathlib import Path; from ablate.store import RunsLayout;"
        "from ablate.orchestrate.lock import SweepLock;"
        f"SweepLock(RunsLayout(Path({str(store.root)!r})), 'x', command='holder').acquire();"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    info = sweep_lock_holder(store.layout, "x")
    assert info["pid"] == holder.pid and info["command"] == "holder"
    holder.kill()
    holder.wait()
    assert sweep_lock_holder(store.layout, "x") is None
    with SweepLock(store.layout, "x") as lock:
        assert lock.held


def test_stop_signals_queue_notices_and_hurry_on_second():
    import signal

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs in a background job
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        assert stop.requested and not stop.hurry
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert stop.hurry
        notices = stop.notices()
    assert notices[0].startswith("SIGTERM: stopping") and "SIGINT again" in notices[1]
    assert signal.getsignal(signal.SIGINT) is before, "the previous SIGINT handler is restored"


def test_provenance_is_recorded(monkeypatch):
    versions = package_versions()
    assert versions["python"].count(".") == 2 and "ablate" in versions
    monkeypatch.delenv("ABLATE_GIT_SHA", raising=False)
    state = git_state()
    if (REPO / ".git").exists():
        assert state.sha is not None and len(state.sha) == 40
        assert state.dirty in (True, False)
    else:  # an unpacked copy without git: recorded as unknown, never invented
        assert (state.sha, state.dirty) == (None, None)
    monkeypatch.setenv("ABLATE_GIT_SHA", "e" * 40)  # the environment wins, read on every call
    assert git_state().sha == "e" * 40
