"""``ablate ui``: the MLflow UI on loopback, on a free port, for the project's tracking store.

The UI is bound to 127.0.0.1 unless ``--host`` says otherwise; binding anywhere else exposes every
run's params and artifacts to the network, so it is allowed but warned about loudly.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from ablate.tracking.config import is_local_uri, local_artifact_root, resolve_tracking_uri

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class UiProcess:
    """A started MLflow UI."""

    url: str
    process: subprocess.Popen
    tracking_uri: str

    def stop(self) -> None:
        """Terminate the UI server (and wait for it)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_ui(
    tracking_uri: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    project_dir: Path | str | None = None,
    wait_s: float = 90.0,
    log_path: Path | None = None,
) -> UiProcess:
    """Start ``mlflow ui`` for the tracking store and wait until it answers.

    Args:
        tracking_uri: the store (default ``$MLFLOW_TRACKING_URI`` or the project's mlflow.db).
        host: interface to bind; anything but loopback is warned about.
        port: port (default: a free one).
        project_dir: where the default mlflow.db lives.
        wait_s: how long to wait for the UI to answer.
        log_path: where the server's output goes (default: discarded).

    Raises:
        RuntimeError: the UI exited or did not answer within ``wait_s``.
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
    if not is_local_uri(uri):
        raise ValueError(
            f"{uri} is a tracking server: open its own UI in a browser instead of `ablate ui`"
        )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    artifacts = local_artifact_root(uri)
    if artifacts:
        cmd += ["--default-artifact-root", artifacts]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    url = f"http://{shown}:{port}"
    ui = UiProcess(url, process, uri)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow ui exited with status {process.returncode}: {' '.join(cmd)}"
            )
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return ui
        except OSError:
            time.sleep(0.5)
    ui.stop()
    raise RuntimeError(f"mlflow ui did not answer on {url} within {wait_s:.0f}s")
