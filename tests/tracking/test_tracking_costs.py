"""What tracking costs per run: secrets collected once, one log_batch per attempt end, no search.

Counted with spies on a real SQLite MLflow store; how long the calls take is the business of
``bench/bench_tracking.py``, never of a test.
"""

from __future__ import annotations

import json
from collections import Counter

from mlflow import MlflowClient
from tracking_env import assert_finished_child, make_sweep, run_tracked, tracked_runs

import ablate.tracking.config as config
from ablate.tracking.config import REDACTED, redact, redact_value
from ablate.tracking.mlflow_tracker import MlflowTracker


def test_secrets_are_masked_after_caching_and_when_the_environment_changes(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "first-secret-value")
    assert redact_value("x first-secret-value y") == f"x {REDACTED} y"
    checked = Counter()
    real = config.is_secret_key
    monkeypatch.setattr(config, "is_secret_key", lambda key: checked.update([key]) or real(key))
    for _ in range(50):
        assert redact_value("x first-secret-value y") == f"x {REDACTED} y"
    assert not checked, "an unchanged environment is not scanned again"

    monkeypatch.setenv("WANDB_API_KEY", "second-secret-value")  # a new secret variable
    assert redact_value("second-secret-value") == REDACTED
    monkeypatch.setenv("HF_TOKEN", "rotated-secret-value")  # a changed value
    assert redact({"note": "rotated-secret-value and second-secret-value"}) == {
        "note": f"{REDACTED} and {REDACTED}"
    }
    monkeypatch.delenv("WANDB_API_KEY")  # removed: no longer a secret of this process
    assert redact_value("second-secret-value") == "second-secret-value"
    assert redact_value("rotated-secret-value") == REDACTED
    assert checked, "a changed environment is scanned again"


def test_one_log_batch_per_attempt_end_and_no_search(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, steps=12)
    tracker = MlflowTracker(store.root, sqlite_uri)
    mlflow_calls: Counter[str] = Counter()
    at_end = Counter()
    inner = tracker.client.client  # the MlflowClient: count what really goes to the store
    for name in ("log_batch", "search_runs", "create_run", "get_run"):
        real = getattr(inner, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            mlflow_calls[_name] += 1
            return _real(*args, **kwargs)

        setattr(inner, name, spy)
    real_end = tracker.on_attempt_end

    def counted_end(run, record):
        before = mlflow_calls["log_batch"]
        real_end(run, record)
        at_end[run.spec.run_id] = mlflow_calls["log_batch"] - before

    tracker.on_attempt_end = counted_end
    result = run_tracked(sweep, store, tracker)
    assert result.exit_code == 0
    assert at_end == {r.spec.run_id: 1 for r in sweep.runs}, "one log_batch per attempt end"
    assert mlflow_calls["search_runs"] == 0, "first attempts: no search by run id"
    assert mlflow_calls["create_run"] == 1 + len(sweep.runs)
    assert mlflow_calls["get_run"] == 0, "artifacts go to the URI create_run returned"
    client = MlflowClient(tracking_uri=sqlite_uri)
    _, [parent], children = tracked_runs(client, "trk")
    for child in children:
        assert_finished_child(client, child, parent, steps=12)  # every step, once
        arts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"spec.json", "accuracy.md", "predictions_test.jsonl"} <= arts


def test_a_resumed_run_without_its_link_is_found_by_one_search(tmp_path, store, sqlite_uri):
    sweep = make_sweep(tmp_path, seeds=(0,), fail_attempts=1)
    first = run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri), retries=0)
    assert first.exit_code != 0
    run_id = sweep.runs[0].spec.run_id
    link = store.root / "trk" / run_id / "mlflow.json"
    child = json.loads(link.read_text())["run_id"]
    link.unlink()  # e.g. the run folder was cleaned: the store still has attempt 1
    tracker = MlflowTracker(store.root, sqlite_uri)
    searches = []
    real_find = tracker.client.find_run
    tracker.client.find_run = lambda *a: searches.append(a) or real_find(*a)
    again = run_tracked(sweep, store, tracker, retries=1)
    assert again.exit_code == 0
    assert len(searches) == 1 and json.loads(link.read_text())["run_id"] == child
    _, _, children = tracked_runs(MlflowClient(tracking_uri=sqlite_uri), "trk")
    assert [c.info.run_id for c in children] == [child]
