"""Helpers for tracking tests: sweeps of the numpy ``track-fit`` job, run and checked in MLflow."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import track_job  # noqa: F401  (registers track-fit in this process)

from ablate.execution.inline import InlineExecutor
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep


def make_sweep(tmp_path: Path, name: str = "trk", *, seeds=(0, 1, 2), scale=None, **fit):
    lines = "".join(f"    {k}: {v}\n" for k, v in fit.items())
    body = f"name: {name}\nbase:\n  job: track-fit\n" + (f"  fit:\n{lines}" if lines else "")
    body += f"seeds: [{', '.join(map(str, seeds))}]\n"
    body += "scales:\n  tiny: {fit.steps: 3}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return load_sweep(path, scale=scale)


LABELLED = """\
name: lab
description: two rows of the numpy fit, for the MLflow UI
base:
  job: track-fit
runs:
  - {label: short, fit.steps: 3}
  - {label: long, fit.steps: 5}
seeds: [0, 1]
"""


def labelled_sweep(tmp_path: Path):
    """``lab``: two labelled rows of ``track-fit`` (3 and 5 steps), two seeds each."""
    path = tmp_path / "lab.yaml"
    path.write_text(LABELLED)
    return load_sweep(path)


def run_tracked(sweep, store, tracker, *, executor=None, **options):
    """``run_sweep`` with ``tracker`` (default executor: inline on CPU), no signal handlers."""
    executor = executor or InlineExecutor(store, device="cpu")
    return run_sweep(
        sweep,
        executor=executor,
        store=store,
        tracker=tracker,
        install_signal_handlers=False,
        **options,
    )


def tracked_runs(client, name):
    """An experiment's runs: ``(all, sweep parents, children)``; children carry a run id."""
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("ablate.kind") == "sweep"]
    children = [r for r in runs if "ablate.run_id" in r.data.tags]
    return runs, parents, children


def assert_finished_child(client, child, parent, *, steps=None, points=None):
    """``child`` is a FINISHED run under ``parent`` with its ``train/loss`` history.

    ``steps``: each step of ``range(steps)`` is there once; ``points``: that many points in all
    (a retried run logs its steps again).
    """
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.status == "FINISHED"
    history = client.get_metric_history(child.info.run_id, "train/loss")
    if steps is not None:
        assert sorted(m.step for m in history) == list(range(steps))
    if points is not None:
        assert len(history) == points


def start_ablate_ui(sweep_path: Path, tracking_uri: str, cwd: Path) -> subprocess.Popen[str]:
    """``ablate ui SWEEP --tracking-uri URI`` as a user starts it, its output merged on stdout."""
    return subprocess.Popen(
        [sys.executable, "-m", "ablate.cli", "ui", str(sweep_path), "--tracking-uri", tracking_uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
    )


class OutputLines:
    """The lines a subprocess prints, read in a thread so a test can wait with a timeout."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._process = process
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout_s: float) -> str:
        """The first line (from now on) containing ``text``; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} within {timeout_s}s; output: {self.lines}")

    def rest(self, timeout_s: float = 10.0) -> list[str]:
        """Every line up to the end of the output."""
        with contextlib.suppress(AssertionError):
            self.wait_for("\0", timeout_s)
        return self.lines
