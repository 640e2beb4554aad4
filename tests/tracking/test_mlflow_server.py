"""The same tracking against a REST ``mlflow server`` on loopback, and through an outage.

One server for the module (it takes ~25 s to start here): the first tests check a sweep whose
runs' folders are synced into their pre-created runs over REST (in-process jobs, and worker
subprocesses: ``slow``); the last kills the server
mid-sweep, checks the sweep still succeeds with its writes spooled, restarts the server and checks
``ablate sync`` restores everything.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from mlflow import MlflowClient
from mlflow_server import MlflowServer
from tracking_env import assert_finished_child, make_sweep, run_tracked, tracked_runs

from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.slots import SlotPool
from ablate.tracking.client import TrackingOutageWarning
from ablate.tracking.mlflow_tracker import MlflowTracker
from ablate.tracking.spool import pending_files
from ablate.tracking.sync import spool_dir_of, sync


@pytest.fixture(scope="module")
def server(tmp_path_factory, sqlite_template):
    root = tmp_path_factory.mktemp("server")
    db = root / "server.db"
    shutil.copy(sqlite_template, db)
    srv = MlflowServer(db, root / "artifacts")
    srv.start()
    yield srv
    srv.kill()


def check_rest_sweep(store, server, name, executor):
    sweep = make_sweep(store.root.parent, name, steps=8)
    tracker = MlflowTracker(store.root, server.url)
    result = run_tracked(sweep, store, tracker, executor=executor)
    assert result.exit_code == 0, [r.failure_reason for r in result.records]
    client = MlflowClient(tracking_uri=server.url)
    _, parents, children = tracked_runs(client, name)
    assert len(parents) == 1 and len(children) == 3
    for child in children:
        assert_finished_child(client, child, parents[0], steps=8)  # synced once, not twice
        assert child.data.tags["ablate.git_sha"] == "f" * 40
        run_dir = store.root / name / child.data.tags["ablate.run_id"]
        cursor = (run_dir / ".mlflow-sync.json").read_text()
        assert child.info.run_id in cursor  # the folder was synced into the pre-created run
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"spec.json", "predictions_test.jsonl", "accuracy.md"} <= arts
    assert not pending_files(spool_dir_of(store.root))


def test_rest_server_sweep_with_inline_jobs(store, server, monkeypatch):
    check_rest_sweep(store, server, "rest", InlineExecutor(store, device="cpu"))


@pytest.mark.slow
def test_rest_server_sweep_with_worker_processes(store, server, monkeypatch):
    executor = LocalExecutor(SlotPool.for_devices([], 2), runs_root=store.root, threads_per_job=1)
    check_rest_sweep(store, server, "restlocal", executor)


def test_server_killed_mid_sweep_then_sync_restores(tmp_path, store, server, monkeypatch):
    sweep = make_sweep(tmp_path, "outage", seeds=(0, 1), steps=20, sleep_per_step=0.1)
    first = store.root / "outage" / sweep.runs[0].spec.run_id / "metrics.jsonl"

    def kill_when_training() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if first.exists() and len(first.read_text().splitlines()) >= 5:
                server.kill()
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_when_training)
    killer.start()
    tracker = MlflowTracker(store.root, server.url, retry_after_s=600)
    with pytest.warns(TrackingOutageWarning):
        result = run_tracked(sweep, store, tracker)
    killer.join()
    assert result.exit_code == 0  # training went on
    assert server.proc is None, "the server was never killed"
    spool = spool_dir_of(store.root)
    assert pending_files(spool)

    assert not sync(store.root).complete  # still down: kept for later, nothing lost
    assert pending_files(spool)

    server.start()
    done = sync(store.root)
    assert done.complete, done.errors
    assert done.runs_created == 1  # the second child was created while the server was down
    assert not pending_files(spool)
    client = MlflowClient(tracking_uri=server.url)
    _, parents, children = tracked_runs(client, "outage")
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED"
    for child in children:
        assert_finished_child(client, child, parents[0], steps=20)
        assert "test/Avg" in child.data.metrics
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"spec.json", "predictions_test.jsonl"} <= arts
    assert sync(store.root).ops == 0  # idempotent: nothing sent twice
