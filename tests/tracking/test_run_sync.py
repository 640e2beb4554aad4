"""The one metric route: ``sync_run_folder`` brings an MLflow run up to date from its run folder.

Against a real MLflow store (SQLite); the run folder is written by hand as a worker would write
it. Each sync is idempotent: twice sends nothing new, a crash mid-run resumes at the cursor, an
outage leaves the cursor where the server stopped taking metrics.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from mlflow import MlflowClient

from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.run_folder import (
    TRACKING_CURSOR_FILE,
    MetricsLog,
    write_run_files,
    write_tracking_link,
)
from ablate.tracking.client import TrackingClient
from ablate.tracking.run_sync import (
    LiveSync,
    note_attempt_started,
    sync_run_folder,
    synced_attempts,
)
from ablate.tracking.sync import sync
from ablate.tracking.ui import free_port


@pytest.fixture
def linked(tmp_path, sqlite_uri):
    """A run folder linked to a fresh MLflow run; ``(run_dir, mlflow client, child id)``."""
    client = MlflowClient(tracking_uri=sqlite_uri)
    exp = client.create_experiment("s", artifact_location=str(tmp_path / "art"))
    child = client.create_run(exp).info.run_id
    run_dir = tmp_path / "runs" / "s" / "r1"
    write_run_files(run_dir, json.dumps({"job": "x"}), sweep="s", axes={})
    write_tracking_link(run_dir, sqlite_uri, exp, child)
    note_attempt_started(run_dir, child, 1)
    return run_dir, client, child


def tracking(tmp_path, uri):
    return TrackingClient(uri, tmp_path / "runs" / ".tracking-spool")


def log_steps(run_dir, steps):
    log = MetricsLog(run_dir / "metrics.jsonl")
    for step in steps:
        log(step, {"loss": 1.0 / (step + 1), "bad": float("nan"), "note": "x"})
    log.close()


def record(run_dir, attempt=1, **metrics):
    now = time.time()
    return AttemptRecord(
        run_id=run_dir.name,
        sweep="s",
        attempt=attempt,
        status=AttemptStatus.SUCCESS,
        job="x",
        started_at=now - 1,
        ended_at=now,
        metrics=metrics,
        run_dir=str(run_dir),
    )


def steps_of(client, child, key="loss"):
    return sorted(m.step for m in client.get_metric_history(child, key))


def test_sync_twice_sends_nothing_new(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(1200))  # more than one log_batch
    first = sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri))
    assert first.metrics == 1200 and not first.pending
    again = sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri))
    assert again.metrics == 0 and again.reported == []
    assert steps_of(client, child) == list(range(1200))
    assert set(client.get_run(child).data.metrics) == {"loss"}  # no NaN, no text


def test_sync_reports_an_ended_attempt_once_with_final_metrics(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(5))
    done = record(run_dir, loss=0.1, acc=0.9)
    result = sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri), records=[done])
    assert result.reported == [1] and synced_attempts(run_dir) == {1}
    run = client.get_run(child)
    assert run.info.status == "FINISHED" and run.data.tags["ablate.status"] == "success"
    assert run.data.metrics["acc"] == 0.9
    acc = client.get_metric_history(child, "acc")
    assert [m.step for m in acc] == [0]  # a final value: a bar in MLflow's charts, not a dot
    assert steps_of(client, child) == list(range(5))  # "loss" was per step: not logged again
    again = sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri), records=[done])
    assert again.reported == [] and len(client.get_metric_history(child, "acc")) == 1


def test_settings_become_params_once_and_the_attempt_plan_tags(tmp_path, sqlite_uri, linked):
    """Constants of the run are params (sent once: a retry's changed value never voids its batch),
    the attempt's plan tags a retry may overwrite, results metrics at step 0."""
    run_dir, client, child = linked
    done = record(run_dir, 1, **{"data/n_train": 120.0, "train/effective_lr": 0.002})
    first = dataclasses.replace(done, status=AttemptStatus.FAILED, failure_kind=FailureKind.OOM)
    sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri), records=[first])
    client.update_run(child, "RUNNING")
    note_attempt_started(run_dir, child, 2)
    second = record(
        run_dir,
        2,
        **{"data/n_train": 121.0, "train/micro_batch": 4.0, "test/Avg": 71.5, "val/Avg": 70.0},
    )
    sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri), records=[first, second])
    run = client.get_run(child)
    assert run.data.params == {"data/n_train": "120", "train/effective_lr": "0.002"}
    assert run.data.tags["train/micro_batch"] == "4" and run.data.tags["ablate.attempt"] == "2"
    assert run.data.metrics == {"test/Avg": 71.5, "val/Avg": 70.0, "time/attempt_s": 1.0}
    assert {m.step for m in client.get_metric_history(child, "test/Avg")} == {0}
    assert "data/n_train" not in run.data.metrics and run.info.status == "FINISHED"


def test_sync_after_a_crash_mid_run_resumes_at_the_cursor(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(3))
    with (run_dir / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3, "time": 1.0, "lo')  # the worker died mid-line
    assert sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri)).metrics == 3
    cursor = json.loads((run_dir / TRACKING_CURSOR_FILE).read_text())
    assert cursor["run_id"] == child and cursor["offset"] > 0
    # the orchestrator died too; the retry appends after the cut line, a new process syncs
    with (run_dir / "metrics.jsonl").open("a") as fh:
        fh.write("\n")
    note_attempt_started(run_dir, child, 2)
    log_steps(run_dir, range(3, 6))
    result = sync_run_folder(
        run_dir, tracking(tmp_path, sqlite_uri), records=[record(run_dir, 1), record(run_dir, 2)]
    )
    assert result.metrics == 3 and result.reported == [1, 2]
    assert steps_of(client, child) == list(range(6))


def test_sync_after_an_outage_sends_what_the_server_missed(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(4))
    assert sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri)).metrics == 4
    log_steps(run_dir, range(4, 9))
    down = TrackingClient(f"http://127.0.0.1:{free_port()}", tmp_path / "runs" / ".spool")
    with pytest.warns(UserWarning, match="unreachable"):
        missed = sync_run_folder(run_dir, down)
    assert missed.pending and missed.metrics == 0
    assert not (tmp_path / "runs" / ".spool").exists(), "step metrics are never spooled"
    summary = sync(tmp_path / "runs")  # `ablate sync` once the server is back
    assert summary.folder_metrics == 5 and summary.complete
    assert steps_of(client, child) == list(range(9))
    assert sync(tmp_path / "runs").nothing_to_do


def test_a_new_mlflow_run_gets_only_the_attempts_started_under_it(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(3))
    sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri))
    fresh = client.create_run(client.get_run(child).info.experiment_id).info.run_id
    write_tracking_link(run_dir, sqlite_uri, "0", fresh)
    note_attempt_started(run_dir, fresh, 2)
    log_steps(run_dir, range(3, 5))
    assert sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri)).metrics == 2
    assert steps_of(client, fresh) == [3, 4]


def test_live_sync_sends_while_the_job_writes(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    live = LiveSync(tracking(tmp_path, sqlite_uri), every_s=60)
    live.add("r1", run_dir)
    log_steps(run_dir, range(2))
    live.poll()
    assert steps_of(client, child) == [0, 1]
    log_steps(run_dir, range(2, 4))
    live.close()  # a last look at every folder
    assert steps_of(client, child) == [0, 1, 2, 3]


def test_an_ended_attempt_sends_its_last_steps_in_its_own_log_batch(tmp_path, sqlite_uri, linked):
    run_dir, client, child = linked
    log_steps(run_dir, range(1200))  # the live sync never ran: more than one chunk is left
    sender = tracking(tmp_path, sqlite_uri)
    batches = []
    real = sender.client.log_batch
    sender.client.log_batch = lambda *a, **k: batches.append(k) or real(*a, **k)
    result = sync_run_folder(run_dir, sender, records=[record(run_dir, acc=0.9)])
    assert result.metrics == 1200 and result.reported == [1] and not result.pending
    assert len(batches) == 2, "one chunk of steps, then the rest with the attempt's end"
    assert "ablate.status" in {t.key for t in batches[-1]["tags"]}
    assert steps_of(client, child) == list(range(1200))  # every step, once
    assert client.get_run(child).data.metrics["acc"] == 0.9


def test_an_end_batch_the_server_missed_leaves_its_steps_to_the_next_sync(
    tmp_path, sqlite_uri, linked
):
    run_dir, client, child = linked
    log_steps(run_dir, range(5))
    offset = json.loads((run_dir / TRACKING_CURSOR_FILE).read_text())["offset"]
    down = TrackingClient(f"http://127.0.0.1:{free_port()}", tmp_path / "runs" / ".spool")
    with pytest.warns(UserWarning, match="unreachable"):
        ended = sync_run_folder(run_dir, down, records=[record(run_dir)])
    assert ended.pending and ended.metrics == 0 and ended.reported == [1]
    assert json.loads((run_dir / TRACKING_CURSOR_FILE).read_text())["offset"] == offset
    assert sync_run_folder(run_dir, tracking(tmp_path, sqlite_uri)).metrics == 5
    assert steps_of(client, child) == list(range(5))  # sent once, by the later sync
