"""Helpers for tracking tests: sweeps of the numpy ``track-fit`` job, run and checked in MLflow."""

from __future__ import annotations

import textwrap
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
