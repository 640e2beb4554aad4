"""Run the ``ablate`` command line as a user types it: a subprocess, its output and exit code.

Shared by the tests that check messages and exit codes through the real CLI (importable from any
test folder: pytest puts ``tests/`` on the path for its ``conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_ablate(
    *args: str,
    cwd: Path,
    runs: Path | str | None = None,
    env: dict[str, str] | None = None,
    pythonpath: Iterable[Path | str] = (),
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -m ablate.cli ARGS`` in ``cwd`` with its store in ``runs`` (default ``cwd/runs``).

    ``pythonpath``: folders besides the repository (a test's own job modules); ``env``: extra
    variables, applied last.
    """
    full_env = {
        **os.environ,
        "ABLATE_RUNS_DIR": str(runs if runs is not None else cwd / "runs"),
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(REPO), *(str(p) for p in pythonpath)]),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
