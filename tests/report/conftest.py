"""Fixtures of the report tests (helpers live in report_store.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    return tmp_path / "runs"
