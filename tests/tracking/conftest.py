"""Fixtures for tracking tests: worker environment, runs root, a real SQLite MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import track_job  # noqa: F401  (registers track-fit in this process)

from ablate.store.results_store import ResultsStore

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(autouse=True)
def worker_env(monkeypatch):
    path = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("ABLATE_JOB_MODULES", "track_job")
    monkeypatch.setenv("ABLATE_GIT_SHA", "f" * 40)
    monkeypatch.setenv("ABLATE_GIT_DIRTY", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def store(runs) -> ResultsStore:
    return ResultsStore(runs)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An initialised MLflow SQLite DB (creating the tables takes seconds: do it once)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def sqlite_uri(tmp_path, sqlite_template) -> str:
    import shutil

    db = tmp_path / "mlflow.db"
    shutil.copy(sqlite_template, db)
    return f"sqlite:///{db}"


@pytest.fixture
def ui_standin(tmp_path) -> tuple[str, Path]:
    """An executable that ``ablate ui`` can run in place of Python (``ui_standin.py``), and the
    file where it records how it was started."""
    import sys

    out = tmp_path / "standin.json"
    script = tmp_path / "standin-python"
    standin = HERE / "ui_standin.py"
    command = f'UI_STANDIN_OUT="{out}" exec "{sys.executable}" "{standin}" "$@"'
    script.write_text(f"#!/bin/sh\n{command}\n")
    script.chmod(0o755)
    return str(script), out
