"""A real PostgreSQL for the team-tracking tests (``.ci/postgres-up``), and an MLflow server on it.

Tests read ``$ABLATE_TEST_POSTGRES_URL`` (default: what ``.ci/postgres-up`` creates) and skip,
with the reason, when nothing answers there. Each test gets a database of its own, dropped after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

TRACKING = Path(__file__).resolve().parents[1] / "tracking"
if str(TRACKING) not in sys.path:
    sys.path.insert(0, str(TRACKING))

from mlflow_server import start_mlflow_server  # noqa: E402

from ablate.tracking.ui import free_port  # noqa: E402

POSTGRES_URL = os.environ.get(
    "ABLATE_TEST_POSTGRES_URL", "postgresql://ablate:ablate@127.0.0.1:5432/ablate"
)


def postgres_unavailable() -> str | None:
    """``None`` when PostgreSQL answers at ``POSTGRES_URL``, else why not."""
    try:
        import psycopg2
    except ImportError:
        return "psycopg2 is not installed (pip install psycopg2-binary)"
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.Error as exc:
        return f"no PostgreSQL at {POSTGRES_URL}: {str(exc).strip()}"
    return None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy form MLflow and Optuna take, naming the psycopg2 driver explicitly.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the team setup installs
    ``psycopg2-binary``.
    """
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


@contextlib.contextmanager
def scratch_database(prefix: str):
    """A new, empty database on the server; yields its SQLAlchemy URL, drops it afterwards."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(POSTGRES_URL, connect_timeout=5)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield sqlalchemy_url(with_database(POSTGRES_URL, name))
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


class PostgresMlflowServer:
    """``mlflow server --backend-store-uri postgresql://...`` on loopback, as the team runs it."""

    def __init__(self, backend_uri: str, root: Path, workers: int = 2) -> None:
        self.backend_uri = backend_uri
        self.root = root
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait_s: float = 180.0) -> None:
        self.proc = start_mlflow_server(
            self.backend_uri,
            self.root / "artifacts",
            self.port,
            self.log,
            workers=self.workers,
            wait_s=wait_s,
            tail_chars=3000,
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None
