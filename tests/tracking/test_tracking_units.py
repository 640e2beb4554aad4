"""Pieces of tracking on their own: secrets, batching, spool replay, the UI."""

from __future__ import annotations

import json
import urllib.request

import pytest
from mlflow import MlflowClient

from ablate.tracking.batching import batches
from ablate.tracking.config import (
    default_tracking_uri,
    flatten_params,
    is_secret_key,
    redact_tree,
    redact_value,
    resolve_tracking_uri,
)
from ablate.tracking.spool import Spool, pending_files, replay
from ablate.tracking.ui import group_members, launch_ui


@pytest.mark.parametrize(
    "key,secret",
    [
        ("HF_TOKEN", True),
        ("data.api_key", True),
        ("AWS_SECRET", True),
        ("db_password", True),
        ("GITHUB_TOKEN", True),
        ("eval.max_new_tokens", False),
        ("adapter.dim", False),
        ("model.llm_path", False),
        ("keys", False),
        ("PWD", False),  # the working directory, not a password: masking it hid every path
        ("OLDPWD", False),
        ("DB_PWD", True),
    ],
)
def test_secret_keys(key, secret):
    assert is_secret_key(key) is secret


def test_redaction_of_values_and_trees():
    assert redact_value("url https://bob:pw@host/x") == "url https://***@host/x"
    assert redact_value("tok hf_abcdefghijklmnopqrstuvwxyz") == "tok ***"
    tree = {"data": {"path": "/d", "api_key": "k"}, "train": {"lr": 1.0}}
    assert redact_tree(tree) == {"data": {"path": "/d"}, "train": {"lr": 1.0}}
    params = flatten_params({"a": {"b": 1, "c": [1, 2]}, "HF_TOKEN": "x", "s": "y" * 7000})
    assert params == {"a.b": "1", "a.c": "[1, 2]", "s": "y" * 6000}


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri(None, tmp_path).endswith("/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("http://other:1", tmp_path) == "http://other:1"


def test_batches_respect_mlflow_limits():
    metrics = [(f"m{i % 7}", float(i), 0, i) for i in range(2500)]
    params = {f"p{i}": "v" for i in range(150)}
    tags = {f"t{i}": "v" for i in range(10)}
    chunks = list(batches(metrics, params, tags))
    assert all(len(m) <= 1000 and len(p) <= 100 and len(t) <= 100 for m, p, t in chunks)
    assert all(len(m) + len(p) + len(t) <= 1000 for m, p, t in chunks)
    assert sum(len(m) for m, _, _ in chunks) == 2500
    assert sum(len(p) for _, p, _ in chunks) == 150
    assert list(batches([], {}, {})) == [([], {}, {})]


def test_replay_is_resumable_and_never_repeats(tmp_path):
    spool = Spool(tmp_path / "spool", "sqlite:///x.db")
    spool.append("create_run", ref="local:r1", experiment="1", run_name="a", tags={})
    for i in range(5):
        spool.append("log_batch", run="local:r1", metrics=[["m", float(i), 0, i]])
    applied = []
    fail_at = {"n": 3}

    def apply(uri, op, refs):
        if op["op"] == "log_batch" and len(applied) == fail_at["n"]:
            raise ConnectionError("down again")
        applied.append(op["op"])
        return "real1" if op["op"] == "create_run" else None

    first = replay(tmp_path / "spool", apply)
    assert not first.complete and len(applied) == 3
    fail_at["n"] = -1
    second = replay(tmp_path / "spool", apply)
    assert second.complete and second.metrics == 3
    assert applied == ["create_run"] + ["log_batch"] * 5  # each once
    assert not pending_files(tmp_path / "spool")


@pytest.mark.slow
def test_real_ui_on_loopback_free_port(tmp_path, sqlite_uri):
    ui = launch_ui(sqlite_uri, log_path=tmp_path / "ui.log")
    try:
        assert ui.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(ui.url + "/health", timeout=5) as response:
            assert response.status == 200
        cmd = " ".join(ui.process.args)
        assert "--host 127.0.0.1" in cmd and sqlite_uri in cmd
    finally:
        ui.stop()
    assert ui.process.poll() is not None


def test_ui_command_line_port_and_url(ui_standin, sqlite_uri):
    """What ``ablate ui`` starts (a stand-in answers /health on the chosen port), and that its
    stop ends the whole process group, a child that ignores SIGTERM included."""
    python, out = ui_standin
    ui = launch_ui(sqlite_uri, python=python, wait_s=30)
    started = json.loads(out.read_text())
    cmd = started["argv"]
    assert cmd[:3] == ["-m", "mlflow", "ui"]
    assert cmd[cmd.index("--backend-store-uri") + 1] == sqlite_uri
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--workers") + 1] == "1"
    assert started["job_execution"] == "false"  # no job runner: ten processes fewer
    port = int(cmd[cmd.index("--port") + 1])
    assert ui.url == f"http://127.0.0.1:{port}"
    members = group_members(ui.process.pid)
    assert ui.process.pid in members and started["child"] in members
    ui.stop(grace_s=1)
    assert group_members(ui.process.pid) == []
    assert free_port_is(port)


def free_port_is(port: int) -> bool:
    """Whether nothing listens on ``port`` of 127.0.0.1 (a connection is refused)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_ui_warns_loudly_when_not_on_loopback(sqlite_uri):
    exits = pytest.raises(RuntimeError, match="exited")
    with pytest.warns(UserWarning, match="not loopback"), exits:
        launch_ui(sqlite_uri, host="0.0.0.0", python="/bin/false")


def test_ui_refuses_a_server_uri():
    with pytest.raises(ValueError, match="tracking server"):
        launch_ui("http://127.0.0.1:1")


def test_sync_command_reports_what_it_did(tmp_path, sqlite_uri):
    import typer
    from typer.testing import CliRunner

    from ablate.tracking.commands import sync_command

    app = typer.Typer()
    app.command("sync")(sync_command)
    app.command("other")(lambda: None)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["sync", "--runs-dir", str(runs)])
    assert result.exit_code == 0 and "nothing to sync" in result.output
    spool = Spool(runs / ".tracking-spool", "http://127.0.0.1:1")  # a server that is down
    spool.append("create_experiment", ref="local:e", name="x", artifact_location=None)
    spool.append("create_run", ref="local:r", experiment="local:e", run_name="r", tags={})
    spool.append("log_batch", run="local:r", metrics=[["m", 1.0, 0, 0]])
    down = CliRunner().invoke(app, ["sync", "--runs-dir", str(runs)])
    assert down.exit_code == 1 and "run `ablate sync` again later" in down.output
    ok = CliRunner().invoke(app, ["sync", "--runs-dir", str(runs), "--tracking-uri", sqlite_uri])
    assert ok.exit_code == 0, ok.output
    assert "sent 3 tracking writes (1 metrics, 1 runs created)" in ok.output
    client = MlflowClient(tracking_uri=sqlite_uri)
    [run] = client.search_runs([client.get_experiment_by_name("x").experiment_id])
    assert run.data.metrics == {"m": 1.0}


def test_the_saved_view_shows_what_varies_and_the_link_opens_it():
    from ablate.spec.sweep import load_sweep
    from ablate.tracking.experiment_view import (
        MAX_EXPERIMENT_NOTE,
        experiment_note,
        experiment_tags,
        experiment_url,
        varying_params,
    )

    table2 = load_sweep("sweeps/table2.yaml")
    assert varying_params(table2) == ["adapter.dim", "adapter.groups"]
    table3 = load_sweep("sweeps/table3.yaml")
    assert {"model.llm", "model.vision", "adapter.name"} <= set(varying_params(table3))
    assert "model.precision" not in varying_params(table3)  # the same in every row
    tags = experiment_tags(table2)
    key = tags["ablate.view_key"]
    view = json.loads(tags[f"mlflow.sharedViewState.{key}"])
    assert view["selectedColumns"][-2:] == ["params.`adapter.dim`", "params.`adapter.groups`"]
    assert experiment_tags(table2)["ablate.view_key"] == key  # the same view, the same key
    assert experiment_url("http://127.0.0.1:5000/", "7", key) == (
        "http://127.0.0.1:5000/#/experiments/7/runs"
        f"?workflowType=machine_learning&viewStateShareKey={key}"
    )
    note = experiment_note(table2)
    assert "Bottleneck Adapter dimension x groups" in note and "```yaml" in note
    assert len(experiment_note(table3)) <= MAX_EXPERIMENT_NOTE
