"""Shared fixtures: a sweep-file writer, no git calls in workers, the ScienceQA sample."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def write(tmp_path: Path):
    """Write dedented text to ``tmp_path/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write


def find_scienceqa_sample() -> Path | None:
    """The real-format ScienceQA sample shipped beside the checkout (../shared/data), if any.

    Looked up, in order: ``$ABLATE_SCIENCEQA_SAMPLE``, ``<repo>/../shared/data/scienceqa-sample``,
    ``/work/shared/data/scienceqa-sample`` (where CI machines of this project keep it).
    """
    candidates = [
        os.environ.get("ABLATE_SCIENCEQA_SAMPLE"),
        REPO.parent / "shared" / "data" / "scienceqa-sample",
        "/work/shared/data/scienceqa-sample",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "problems.json").is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def scienceqa_sample() -> Path:
    """The real-format ScienceQA sample; tests that need it skip, with the reason, without it."""
    found = find_scienceqa_sample()
    if found is None:
        pytest.skip(
            "real-format ScienceQA sample not found (set ABLATE_SCIENCEQA_SAMPLE to "
            "shared/data/scienceqa-sample)"
        )
    return found


@pytest.fixture
def no_git(monkeypatch):
    """Workers record this fixed git state instead of asking git (fast, and no repo needed)."""
    monkeypatch.setenv("ABLATE_GIT_SHA", "0" * 40)
    monkeypatch.setenv("ABLATE_GIT_DIRTY", "0")
