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
from reliability_helpers import cli_env, record_files, run_cli

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


# ----------------------------------------------------------- secrets in tracking (issue 18)
PROFILE_SECRET = "pr0file-S3cret-value"  # not token-shaped: only knowing it masks it


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


@pytest.mark.parametrize("server", ["up", "down"])
def test_secret_in_a_runner_profile_env_is_masked_in_mlflow_artifacts(
    tmp_path, monkeypatch, server
):
    """The orchestrator's environment lacks it; the job's (profile env) has it and prints it."""
    from mlflow import MlflowClient

    from ablate.execution.registry import make_executor
    from ablate.tracking.mlflow_tracker import MlflowTracker
    from ablate.tracking.ui import free_port

    monkeypatch.delenv("HF_TOKEN")
    profile_file = tmp_path / "secretive.yaml"
    profile_file.write_text(
        yaml.safe_dump(
            {
                "executor": "local",
                "gpus": "none",
                "cpu_slots": 1,
                "env": {"HF_TOKEN": PROFILE_SECRET},
            }
        )
    )
    store = ResultsStore(tmp_path / "runs")
    executor = make_executor(load_runner_profile(profile_file), store)
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}" if server == "up" else f"http://127.0.0.1:{free_port()}"
    sweep = _leaky_sweep(tmp_path, "succeed")
    result = run_sweep(
        sweep,
        executor=executor,
        store=store,
        tracker=MlflowTracker(store.root, uri),
        retries=0,
        install_signal_handlers=False,
    )
    assert result.exit_code == 0
    log = store.layout.run_dir(sweep.name, sweep.runs[0].spec.run_id) / "worker.log"
    assert f"HF_TOKEN={PROFILE_SECRET}" in log.read_text()  # the job did print it
    if server == "up":
        client = MlflowClient(tracking_uri=uri)
        [child] = [
            r
            for r in client.search_runs([client.get_experiment_by_name(sweep.name).experiment_id])
            if "ablate.run_id" in r.data.tags
        ]
        uploaded = client.download_artifacts(child.info.run_id, "worker.log", str(tmp_path / "dl"))
        assert "HF_TOKEN=***" in Path(uploaded).read_text()
        assert _files_containing(tmp_path / "mlartifacts", PROFILE_SECRET) == []
        assert PROFILE_SECRET.encode() not in db.read_bytes()
    else:
        spool = store.root / ".tracking-spool"
        [copy] = [p for p in spool.rglob("worker.log")]
        assert "HF_TOKEN=***" in copy.read_text()
        assert _files_containing(spool, PROFILE_SECRET) == []
    # the only files holding the secret: the profile, and the job's own log on this machine
    assert set(_files_containing(tmp_path, PROFILE_SECRET)) == {profile_file, log}


def test_password_in_the_tracking_url_is_never_printed_or_stored(tmp_path, monkeypatch):
    """``http://alice:S3cret@host``: the spool header, mlflow.json and stderr show ``***``."""
    from ablate.tracking.spool import pending_files, replay
    from ablate.tracking.ui import free_port

    password = "S3cretPassw0rd"
    host = f"127.0.0.1:{free_port()}"  # nothing listens: the tracker spools
    uri = f"http://alice:{password}@{host}"
    (tmp_path / "t.yaml").write_text("name: urlpw\nbase: {job: leaky, ending: succeed}\n")
    args = ("sweep", "t.yaml", "--runs-dir", "runs", "--runner", "inline", "--tracking-uri", uri)
    env = cli_env(PYTHONPATH=os.environ["PYTHONPATH"])  # leaky_job importable
    done = run_cli(*args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert password not in done.stdout + done.stderr
    assert f"tracking server http://***@{host} was unreachable" in done.stderr
    assert f"http://***@{host} unreachable" in done.stderr  # the outage warning
    assert _files_containing(tmp_path, password) == []
    [link] = list((tmp_path / "runs").rglob("mlflow.json"))
    assert f"http://***@{host}" in link.read_text()
    [spool_file] = pending_files(tmp_path / "runs" / ".tracking-spool")
    assert f"http://***@{host}" in spool_file.read_text()

    # `ablate sync` without the full URI says how to give it, and sends nothing
    synced = run_cli("sync", "--runs-dir", "runs", cwd=tmp_path, env=env)
    assert synced.returncode != 0 and "Traceback" not in synced.stderr
    assert "password masked" in synced.stdout + synced.stderr
    assert "MLFLOW_TRACKING_URI" in synced.stdout + synced.stderr
    assert password not in synced.stdout + synced.stderr
    # with the full URI in the environment, the replay goes to it (memory and env only)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sent_to: set[str] = set()
    replay(spool_file.parent, lambda target, op, refs: sent_to.add(target) or "id")
    assert sent_to == {uri}
