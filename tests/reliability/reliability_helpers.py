"""Helpers for the reliability tests: small ``linear-fit`` sweeps, a CLI runner, store checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus

REPO = Path(__file__).resolve().parents[2]


def linear_sweep_file(tmp_path: Path, name: str, *, seeds=(0,), **sections: dict[str, Any]) -> Path:
    """A ``linear-fit`` sweep file; ``sections`` are merged into ``base`` (train, data, debug)."""
    base: dict[str, Any] = {"job": "linear-fit", "train": {"steps": 20, "batch_size": 8}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, "seeds": list(seeds)}))
    return path


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m ablate.cli`` in a subprocess (no git calls, repo importable)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "ABLATE_GIT_SHA": "0" * 40,
        "ABLATE_GIT_DIRTY": "0",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m ablate.cli ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "ablate.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env or cli_env(),
        timeout=timeout,
    )


def success_counts(runs: Path) -> Counter:
    """Verified success records per run id."""
    return Counter(
        r.run_id for r in ResultsStore(runs).records() if r.status is AttemptStatus.SUCCESS
    )


def record_files(runs: Path) -> list[Path]:
    """Every file in the store's record folder (including leftovers that are not records)."""
    folder = runs / ".store" / "records"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def assert_records_all_verify(runs: Path) -> None:
    """Every ``*.json`` in the record folder parses and carries a matching checksum."""
    from ablate.store.record import AttemptRecord, RecordName

    for path in record_files(runs):
        if path.suffix != ".json":
            continue
        assert RecordName.parse(path.name) is not None, path.name
        AttemptRecord.from_json(path.read_text(), source=str(path))  # checksum verified
