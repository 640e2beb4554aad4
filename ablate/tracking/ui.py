"""``ablate ui``: the MLflow UI on loopback, on a free port, for the project's tracking store.

The UI is bound to 127.0.0.1 unless ``--host`` says otherwise; binding anywhere else exposes every
run's params and artifacts to the network, so it is allowed but warned about loudly.

``mlflow ui`` is a tree of processes (the server, uvicorn and its workers, and unless turned off a
job runner with its huey consumers). It is started in a session of its own, so stopping it
signals the whole process group: SIGTERM, then SIGKILL for whatever is still alive after a
grace period. A terminal's Ctrl-C reaches only ``ablate ui``'s own group, which is why ``ablate
ui`` forwards it. The job runner serves MLflow's GenAI features (trace roll-ups, scorers), never
used for browsing training runs, so it is turned off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``
says otherwise: about ten processes fewer.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from ablate.tracking.config import (
    is_local_uri,
    local_artifact_root,
    public_uri,
    resolve_tracking_uri,
)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies left out: they hold no port or memory)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: all one can ask is whether the group exists
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while being read
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def stop_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started.

    SIGTERM to the group, then SIGKILL to whatever of it is still alive after ``grace_s``; returns
    once no process of the group is left.
    """
    pgid = process.pid
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()  # reap the leader as soon as it exits
            if not group_members(pgid):
                process.wait()
                return
            time.sleep(0.1)
    process.wait()


def require_local_store(uri: str) -> None:
    """Refuse a tracking server: it has a UI of its own.

    Raises:
        ValueError: ``uri`` is not a local store (SQLite or a folder).
    """
    if not is_local_uri(uri):
        raise ValueError(
            f"{public_uri(uri)} is a tracking server: open its own UI in a browser instead of "
            "`ablate ui`"
        )


@dataclass
class UiProcess:
    """A started MLflow UI."""

    url: str
    process: subprocess.Popen
    tracking_uri: str

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the UI server and every process it started (its process group)."""
        if self.process.poll() is None or group_members(self.process.pid):
            stop_group(self.process, grace_s)

    def wait_ready(self, wait_s: float = 180.0) -> None:
        """Wait until the UI answers ``/health``.

        Raises:
            RuntimeError: the UI exited or did not answer within ``wait_s`` (it is stopped).
        """
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"mlflow ui exited with status {self.process.returncode}: "
                    f"{' '.join(map(str, self.process.args))}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow ui did not answer on {self.url} within {wait_s:.0f}s")


def start_ui(
    tracking_uri: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    project_dir: Path | str | None = None,
    log_path: Path | None = None,
    python: str = sys.executable,
) -> UiProcess:
    """Start ``mlflow ui`` for the tracking store in a session of its own; return at once.

    Args:
        tracking_uri: the store (default ``$MLFLOW_TRACKING_URI`` or the project's mlflow.db).
        host: interface to bind; anything but loopback is warned about.
        port: port (default: a free one).
        project_dir: where the default mlflow.db lives.
        log_path: where the server's output goes (default: discarded).
        python: the interpreter that runs ``-m mlflow ui`` (default: this one).

    Raises:
        ValueError: ``tracking_uri`` is a tracking server (it has a UI of its own).
    """
    uri = resolve_tracking_uri(tracking_uri, project_dir)
    if host not in LOOPBACK:
        warnings.warn(
            f"WARNING: the MLflow UI will listen on {host}, not loopback: anyone who can reach "
            "this machine can read every run's params, metrics and artifacts. Use an SSH tunnel "
            "to 127.0.0.1 instead unless this network is trusted.",
            stacklevel=2,
        )
    port = port or free_port(host if host != "0.0.0.0" else "127.0.0.1")  # noqa: S104
    require_local_store(uri)
    cmd = [python, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", host, "--port", str(port), "--workers", "1"]
    artifacts = local_artifact_root(uri)
    if artifacts:
        cmd += ["--default-artifact-root", artifacts]
    env = {**os.environ, JOB_EXECUTION_ENV: os.environ.get(JOB_EXECUTION_ENV, "false")}
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    return UiProcess(f"http://{shown}:{port}", process, uri)


def launch_ui(
    tracking_uri: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    project_dir: Path | str | None = None,
    wait_s: float = 180.0,
    log_path: Path | None = None,
    python: str = sys.executable,
) -> UiProcess:
    """Start ``mlflow ui`` (:func:`start_ui`) and wait until it answers.

    Raises:
        ValueError: ``tracking_uri`` is a tracking server.
        RuntimeError: the UI exited or did not answer within ``wait_s``.
    """
    ui = start_ui(
        tracking_uri,
        host=host,
        port=port,
        project_dir=project_dir,
        log_path=log_path,
        python=python,
    )
    ui.wait_ready(wait_s)
    return ui
