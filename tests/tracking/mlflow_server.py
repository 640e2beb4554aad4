"""A real ``mlflow server`` on loopback for tests: start, wait until healthy, kill, restart."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ablate.tracking.ui import free_port


def start_mlflow_server(
    backend_uri: str,
    artifacts: Path,
    port: int,
    log: Path,
    *,
    workers: int,
    wait_s: float,
    tail_chars: int = 2000,
) -> subprocess.Popen:
    """Start ``mlflow server`` on 127.0.0.1 in its own process group; return it once healthy.

    Its output is appended to ``log``. Raises ``RuntimeError`` with the log's last
    ``tail_chars`` when the server exits, or when ``/health`` does not answer within ``wait_s``
    (its process group is killed first, so no worker outlives a failed start).
    """
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _kill_group(proc)
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-tail_chars:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    _kill_group(proc)
    raise RuntimeError(f"mlflow server did not start: {log.read_text()[-tail_chars:]}")


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 in its own process group (so a kill takes all its workers)."""

    def __init__(self, db: Path, artifacts: Path, port: int | None = None) -> None:
        self.db = db
        self.artifacts = artifacts
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = db.with_suffix(".log")

    def start(self, wait_s: float = 120.0) -> None:
        self.proc = start_mlflow_server(
            f"sqlite:///{self.db}", self.artifacts, self.port, self.log, workers=1, wait_s=wait_s
        )

    def kill(self) -> None:
        """SIGKILL the whole server process group (an outage, not a clean shutdown)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None
        # wait until the port is refused, so the outage is real for the next request
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1)
            except OSError:
                return
            time.sleep(0.2)
