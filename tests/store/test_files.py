"""The one atomic-write and the one lock helper, and a check that nothing else writes its own."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ablate.store.files as files
from ablate.store.files import (
    hold_lock,
    is_locked,
    lock_holder,
    note_in_lock,
    try_lock,
    write_atomic,
    write_dir_atomic,
)

PACKAGE = Path(__file__).resolve().parents[2] / "ablate"
PRIMITIVES = re.compile(r"os\.replace\(|os\.rename\(|os\.fsync\(|fcntl\.flock\(|\.replace\(tmp")


def test_no_module_writes_atomically_or_locks_on_its_own():
    """Temp + fsync + rename and ``flock`` live in ``ablate/store/files.py`` only."""
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "files.py" or path.parent.name != "store"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRIMITIVES.search(line)
    ]
    assert offenders == []


def test_write_atomic_replaces_whole_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "sub" / "a.json", "old")
    assert path.read_text() == "old"

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "write", no_space)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_write_dir_atomic_keeps_the_first_copy(tmp_path):
    final = tmp_path / "twin"
    assert write_dir_atomic(final, lambda d: (d / "x").write_text("1"))
    assert not write_dir_atomic(final, lambda d: (d / "x").write_text("2"))
    assert (final / "x").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["twin"]  # the loser's copy is gone


def test_lock_is_exclusive_across_processes_and_shows_its_holder(tmp_path):
    path = tmp_path / "locks" / "x.lock"
    assert lock_holder(path) is None and not is_locked(path)
    fd = try_lock(path)
    assert fd is not None
    note_in_lock(fd, {"pid": os.getpid()})
    probe = (
        "import sys; from ablate.store.files import try_lock; "
        f"sys.exit(0 if try_lock({str(path)!r}) is None else 1)"
    )
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    assert subprocess.run([sys.executable, "-c", probe], env=env).returncode == 0
    assert is_locked(path) and lock_holder(path) == {"pid": os.getpid()}
    os.close(fd)
    assert not is_locked(path)
    with hold_lock(path) as held:
        assert held
