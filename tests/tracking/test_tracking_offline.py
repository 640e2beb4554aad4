"""Tracking with no server at all: nothing fails, everything is spooled, sync sends it later."""

from __future__ import annotations

import json
import sys

from mlflow import MlflowClient
from tracking_env import assert_finished_child, make_sweep, run_tracked, tracked_runs

from ablate.report.sweep_summary import summarize_sweep
from ablate.tracking.mlflow_tracker import MlflowTracker
from ablate.tracking.spool import pending_files
from ablate.tracking.sync import spool_dir_of, sync
from ablate.tracking.ui import free_port

TOKEN = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5"


def test_server_down_from_the_start_then_sync(tmp_path, store, sqlite_uri, monkeypatch):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(sys, "argv", ["ablate", "sweep", "x.yaml", f"--token={TOKEN}"])
    sweep = make_sweep(tmp_path, "offline", seeds=(0, 1), steps=5, fail_attempts=1)
    result = run_tracked(
        sweep, store, MlflowTracker(store.root, dead, summarize=summarize_sweep), retries=1
    )
    assert result.exit_code == 0
    spool = spool_dir_of(store.root)
    [spool_file] = pending_files(spool)
    ops = [json.loads(line)["op"] for line in spool_file.read_text().splitlines()]
    assert ops.count("create_experiment") == 1
    assert ops.count("create_run") == 3  # parent + one child per run id, despite the retries
    assert TOKEN not in spool_file.read_text()

    done = sync(store.root, tracking_uri=sqlite_uri)
    assert done.complete, done.errors
    assert done.runs_created == 3
    client = MlflowClient(tracking_uri=sqlite_uri)
    runs, [parent], children = tracked_runs(client, "offline")
    assert len(children) == 2
    for child in children:
        assert_finished_child(client, child, parent, points=10)
        assert child.data.tags["ablate.attempt"] == "2"
    everything = json.dumps([[r.data.tags, r.data.params] for r in runs])
    assert TOKEN not in everything and "***" in parent.data.tags["ablate.command"]
    # the experiment's UI tags and the parent's summary were spooled too
    exp = client.get_experiment_by_name("offline")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.data.metrics["runs/succeeded"] == 2
    assert "runs: 2 succeeded" in parent.data.tags["mlflow.note.content"]
    assert sync(store.root, tracking_uri=sqlite_uri).files == 0


def test_secrets_never_reach_params_or_tags(tmp_path, store, sqlite_uri, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "supersecretvalue")
    monkeypatch.setattr(sys, "argv", ["ablate", "sweep", f"--hf-token={TOKEN}"])
    sweep = make_sweep(tmp_path, "sec", seeds=(0,), steps=2)
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri))
    client = MlflowClient(tracking_uri=sqlite_uri)
    runs, _, children = tracked_runs(client, "sec")
    text = json.dumps([[r.data.tags, r.data.params] for r in runs])
    assert TOKEN not in text and "supersecretvalue" not in text
    child = children[0]
    local = client.download_artifacts(child.info.run_id, "spec.json", str(tmp_path / "dl"))
    with open(local) as fh:
        assert TOKEN not in fh.read()
    # a job that prints a secret into its log: the uploaded log is redacted
    run_dir = store.root / "sec" / child.data.tags["ablate.run_id"]
    (run_dir / "worker.log").write_text(f"loading with token {TOKEN} and supersecretvalue\n")
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri), force=True)
    log = client.download_artifacts(child.info.run_id, "worker.log", str(tmp_path / "dl2"))
    with open(log) as fh:
        text = fh.read()
    assert "loading with token ***" in text and TOKEN not in text
    assert "supersecretvalue" not in text
