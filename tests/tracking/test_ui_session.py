"""``ablate ui`` as a user runs it: says at once that it starts, prints where to look, and stops
every process it started on SIGINT (Ctrl-C), SIGTERM or SIGHUP.

The fast tests run the real session (``run_ui_session``) in a subprocess with a stand-in for
``mlflow ui`` whose child ignores SIGTERM; the slow one runs the real ``ablate ui`` CLI on the
real MLflow UI after a tracked sweep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from test_tracking_units import free_port_is
from tracking_env import OutputLines, labelled_sweep, run_tracked, start_ablate_ui

from ablate.tracking.mlflow_tracker import MlflowTracker
from ablate.tracking.ui import group_members

DRIVER = """
import functools, sys, typer
import ablate.tracking.ui_session as session
session.start_ui = functools.partial(session.start_ui, python=sys.argv[1])
sys.exit(session.run_ui_session(typer.echo, tracking_uri=sys.argv[2]))
"""


def gone(pid: int) -> bool:
    """Whether a process no longer runs (exited, or a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_stops_every_process_the_ui_started(sig, ui_standin, tmp_path):
    python, out = ui_standin
    uri = f"file:{tmp_path / 'mlruns'}"  # the stand-in never opens it
    session = subprocess.Popen(
        [sys.executable, "-c", DRIVER, python, uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = OutputLines(session)
    assert "starting MLflow UI" in lines.wait_for("starting MLflow UI", 30)
    url = lines.wait_for("MLflow UI: http://127.0.0.1:", 30).split()[2]
    started = json.loads(out.read_text())
    assert group_members(started["pid"])  # the UI runs in its own process group
    session.send_signal(sig)
    assert session.wait(30) == 0
    assert f"{sig.name}: stopping MLflow UI" in lines.rest()
    assert group_members(started["pid"]) == []
    assert gone(started["child"]), "the child that ignores SIGTERM was killed too"
    assert free_port_is(int(url.rsplit(":", 1)[1]))


def ui_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(entry))
            except (OSError, IndexError):
                continue
    return children


@pytest.mark.slow
def test_real_ablate_ui_links_the_sweep_and_stops_its_process_group_on_sigterm(
    tmp_path, store, sqlite_uri
):
    sweep = labelled_sweep(tmp_path)
    run_tracked(sweep, store, MlflowTracker(store.root, sqlite_uri))
    t0 = time.monotonic()
    ui = start_ablate_ui(sweep.path, sqlite_uri, tmp_path)
    lines = OutputLines(ui)
    lines.wait_for("starting MLflow UI", 30)
    assert time.monotonic() - t0 < 30, "said at once that it starts"
    link = lines.wait_for("sweep lab: http://127.0.0.1:", 300).split()[2]
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/#/experiments/\d+/runs\?workflowType=machine_learning"
        r"&viewStateShareKey=ablate-[0-9a-f]{16}",
        link,
    )
    [leader] = ui_children(ui.pid)
    assert len(group_members(leader)) >= 2  # the server and uvicorn at least
    ui.send_signal(signal.SIGTERM)
    assert ui.wait(60) == 0
    assert "SIGTERM: stopping MLflow UI" in lines.rest()
    assert group_members(leader) == []
    assert free_port_is(int(link.split("/")[2].split(":")[1]))


def test_a_missing_sweep_file_is_one_clear_error_and_starts_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "ui", "missing.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert "missing.yaml: file not found" in done.stderr and "Traceback" not in done.stderr
    assert "starting MLflow UI" not in done.stdout


def test_a_tracking_server_is_refused_before_anything_starts(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "ablate.cli", "ui", "--tracking-uri", "http://u:pw@127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2 and "is a tracking server" in done.stderr
    assert "pw" not in done.stderr and "starting MLflow UI" not in done.stdout
