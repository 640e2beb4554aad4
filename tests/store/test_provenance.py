"""Provenance reads the user's git checkout without writing to it, once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import ablate.store.provenance as provenance
from ablate.store.provenance import GitState, read_git_state

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose file's stat data no longer matches the index, content unchanged.

    A plain ``git status`` refreshes such an index and writes it back.
    """
    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print('hi')\n")
    git(tmp_path, "add", "train.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    index = tmp_path / ".git" / "index"
    later = index.stat().st_mtime + 10
    os.utime(tmp_path / "train.py", (later, later))
    return tmp_path


def test_git_state_leaves_the_index_alone(repo):
    index = repo / ".git" / "index"
    before = (index.read_bytes(), index.stat().st_mtime_ns)
    state = read_git_state(repo)
    assert state == GitState(git(repo, "rev-parse", "HEAD"), False)
    assert (index.read_bytes(), index.stat().st_mtime_ns) == before, "index rewritten"


def test_git_state_works_while_the_user_holds_the_index_lock(repo):
    lock = repo / ".git" / "index.lock"
    lock.write_text("held by the user's git commit\n")
    state = read_git_state(repo)
    assert state.sha == git(repo, "rev-parse", "HEAD") and state.dirty is False
    assert lock.read_text() == "held by the user's git commit\n"
    (repo / "train.py").write_text("print('changed')\n")
    assert read_git_state(repo).dirty is True


def test_git_runs_without_optional_locks_and_once_per_process(monkeypatch):
    calls = []
    real_run = subprocess.run

    def spy(args, **kwargs):
        calls.append((args, kwargs.get("env") or {}))
        return real_run(args, **kwargs)

    monkeypatch.delenv(provenance.GIT_SHA_ENV, raising=False)
    monkeypatch.setattr(provenance.subprocess, "run", spy)
    provenance._git_state_from_checkout.cache_clear()
    try:
        first = provenance.git_state()
        assert provenance.git_state() == first
    finally:
        provenance._git_state_from_checkout.cache_clear()
    assert calls, "git was asked"
    assert all(env.get("GIT_OPTIONAL_LOCKS") == "0" for _, env in calls)
    assert len(calls) <= 2, "cached: at most rev-parse and status, once"
