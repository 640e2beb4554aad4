"""Nothing exposed: safe YAML only, no path traversal out of the runs root, secrets never recorded.

Linked promises proven elsewhere: secrets never reach MLflow params, tags or the offline spool
(``tests/tracking/test_tracking_offline.py``), secret-name detection and value masking
(``tests/tracking/test_tracking_units.py::test_secret_keys``,
``::test_redaction_of_values_and_trees``),
and ``ablate ui`` on 127.0.0.1 unless told otherwise, warning loudly when not
(``tests/tracking/test_tracking_units.py::test_real_ui_on_loopback_free_port``,
``::test_ui_command_line_port_and_url``, ``::test_ui_warns_loudly_when_not_on_loopback``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from reliability_helpers import record_files, run_cli

from ablate.errors import AblateError
from ablate.execution.inline import InlineExecutor
from ablate.execution.local import LocalExecutor
from ablate.execution.runner_profile import load_runner_profile
from ablate.execution.slots import SlotPool
from ablate.execution.worker import EXIT_USAGE
from ablate.execution.worker import main as worker_main
from ablate.orchestrate.orchestrator import run_sweep
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.store.layout import RunsLayout
from ablate.store.record import AttemptStatus, FailureKind

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOKEN = "hf_" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("ABLATE_GIT_SHA", "0" * 40)
    monkeypatch.setenv("ABLATE_GIT_DIRTY", "0")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    path = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("ABLATE_JOB_MODULES", "leaky_job")
    import leaky_job  # noqa: F401  (registers `leaky` here too)


# ---------------------------------------------------------------------------------- YAML
PYTHON_TAGS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
]


@pytest.mark.parametrize("tag", PYTHON_TAGS)
def test_python_yaml_tags_are_rejected_in_sweeps_and_profiles(tmp_path, tag):
    marker = tmp_path / "pwned"
    value = tag.format(marker=marker)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"name: s\nbase: {value}\n")
    with pytest.raises(AblateError, match="s.yaml"):
        load_sweep(sweep)
    profile = tmp_path / "p.yaml"
    profile.write_text(f"executor: {value}\n")
    with pytest.raises(AblateError, match="p.yaml"):
        load_runner_profile(profile)
    assert not marker.exists()


# ------------------------------------------------------------------------ path traversal
@pytest.mark.parametrize("name", ["../x", "..", "a/../../x", "/tmp/abs", "a\\b", ".hidden", ""])
def test_sweep_names_cannot_leave_the_runs_root(tmp_path, name):
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": {"job": "linear-fit"}}))
    with pytest.raises(AblateError, match="name"):
        load_sweep(path)


def test_sweep_named_traversal_through_the_cli_writes_nothing_outside(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "t.yaml").write_text("name: ../escaped\nbase: {job: linear-fit, train: {steps: 2}}\n")
    done = run_cli(
        "sweep",
        "t.yaml",
        "--runs-dir",
        "runs",
        "--runner",
        "inline",
        "-q",
        "--no-tracking",
        cwd=work,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "sweep name" in done.stderr
    assert not (work / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert not (work / "runs").exists()


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "/etc", "x\0y"])
def test_layout_refuses_run_ids_and_sweeps_that_escape(tmp_path, bad):
    layout = RunsLayout(tmp_path / "runs")
    with pytest.raises(ValueError, match="path traversal"):
        layout.run_dir("sweep", bad)
    with pytest.raises(ValueError, match="path traversal"):
        layout.sweep_dir(bad)


def test_worker_refuses_a_run_folder_outside_its_runs_root(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    outside = tmp_path / "outside" / "s" / "abc123abc123"
    outside.mkdir(parents=True)
    (outside / "spec.json").write_text('{"job": "leaky", "seed": 0}\n')
    sneaky = runs / ".." / "outside" / "s" / "abc123abc123"
    code = worker_main([str(sneaky), "--attempt", "1", "--runs-root", str(runs)])
    assert code == EXIT_USAGE
    assert record_files(runs) == [] and not (tmp_path / "outside" / ".store").exists()


# ------------------------------------------------------------------------------- secrets
def _leaky_sweep(tmp_path, ending):
    path = tmp_path / f"leak_{ending}.yaml"
    path.write_text(f"name: leak{ending}\nbase: {{job: leaky, ending: {ending}}}\n")
    return load_sweep(path)


def _assert_no_token_in_store(runs: Path) -> None:
    for path in record_files(runs):
        assert TOKEN not in path.read_text(errors="replace"), path
    for path in runs.rglob("spec.json"):
        assert TOKEN not in path.read_text(), path
    for path in runs.rglob("run.json"):
        assert TOKEN not in path.read_text(), path


def test_secret_in_a_job_error_is_masked_in_the_record(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    sweep = _leaky_sweep(tmp_path, "raise")
    result = run_sweep(
        sweep,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        retries=0,
        install_signal_handlers=False,
    )
    [record] = result.records
    assert record.status is AttemptStatus.FAILED
    assert "download failed: 401 for token ***" in record.failure_reason
    _assert_no_token_in_store(store.root)


def test_secret_printed_by_a_killed_worker_is_masked_in_its_log_tail_record(tmp_path):
    store = ResultsStore(tmp_path / "runs")
    sweep = _leaky_sweep(tmp_path, "sigkill")
    executor = LocalExecutor(SlotPool.for_devices([], 1), runs_root=store.root, threads_per_job=1)
    result = run_sweep(
        sweep, executor=executor, store=store, retries=0, install_signal_handlers=False
    )
    [record] = result.records
    assert record.failure_kind is FailureKind.KILLED
    assert "--- log tail ---" in record.failure_reason
    assert "HF_TOKEN=***" in record.failure_reason  # the log line is there, masked
    assert "://***@example.org" in record.failure_reason
    _assert_no_token_in_store(store.root)
