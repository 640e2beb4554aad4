"""Files that several processes share: written atomically, locked with ``flock``.

Every file ablate writes for another process to read (records, ``run.json``, ``progress.json``,
the indexes, checkpoints, the tracking cursor) goes through :func:`write_atomic`: a temporary file
in the same folder, fsynced, then renamed over the target, then the folder fsynced. A reader, or a
crash at any instant, sees the old content or the new one, never half of it. Folders that appear
whole (a dataset, a twin model) go through :func:`write_dir_atomic` the same way.

Every lock is an ``flock`` on a file (:func:`try_lock`, :func:`hold_lock`, :func:`lock_holder`):
the kernel releases it when its holder dies, however it dies, so no crash needs a manual unlock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: Path | str, data: str | bytes, *, fsync: bool = True) -> Path:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never half.

    Args:
        path: the file to write (its folder is created).
        data: text (written as UTF-8) or bytes.
        fsync: make the new content durable before it becomes visible (off only for files that are
            rewritten many times a second and whose loss a crash makes harmless).

    Returns:
        ``path``.

    Raises:
        OSError: the write failed (disk full, quota); nothing is left behind, the old content
            stays.
    """
    return write_atomic_with(
        path, lambda tmp: _write_file(tmp, data, fsync=fsync), fsync=False, fsync_dir=fsync
    )


def write_atomic_with(
    path: Path | str, write: Callable[[Path], None], *, fsync: bool = True, fsync_dir: bool = True
) -> Path:
    """Like :func:`write_atomic`, for writers that need a file name (``torch.save``, parquet).

    Args:
        path: the file to write.
        write: ``write(tmp_path)`` writes the whole content to ``tmp_path``.
        fsync: fsync the written file before the rename.
        fsync_dir: fsync the folder after the rename (the new name survives a power loss).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        write(tmp)
        if fsync:
            _fsync_path(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise _naming(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if fsync_dir:
        _fsync_path(path.parent, os.O_RDONLY)
    return path


def write_atomic_in_order(files: list[tuple[Path, str | bytes]]) -> None:
    """Replace several files, each atomically, one after the other with nothing in between.

    Every temporary file is written and fsynced first; then the renames run back to back in the
    given order. A crash leaves a prefix of the files new and the rest old (a checkpoint and then
    its manifest: at worst a new checkpoint beside the old manifest, which a reader refuses),
    and the window for that is a few microseconds rather than the duration of the writes.

    Raises:
        OSError: a write failed; no file was replaced and no temporary file is left.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_temp_name(path), path))
            _write_file(staged[-1][0], data, fsync=True)
    except BaseException as exc:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and staged:
            raise _naming(exc, staged[-1][1]) from exc
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
    for folder in {path.parent for _, path in staged}:
        _fsync_path(folder, os.O_RDONLY)


def write_dir_atomic(final: Path | str, write: Callable[[Path], None]) -> bool:
    """Create folder ``final`` whole: ``write(tmp)`` fills a temporary folder renamed into place.

    When two processes race, the first rename wins and the loser's copy is discarded. An empty
    ``final`` is replaced.

    Returns:
        True if this call's copy is the one in place.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            return False
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def append_durable(path: Path | str, text: str) -> None:
    """Append ``text`` to a log file and fsync it: a crash loses nothing already appended.

    A crash mid-append leaves at most a cut last line, which line-by-line readers skip.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` with the file it was writing named (``os.write`` names none), for the record.

    A disk that fills up mid-write says only "No space left on device"; the failure reason must
    say where (:func:`ablate.execution.failures.failed_outcome`).
    """
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def _temp_name(path: Path) -> Path:
    """A hidden temporary name beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _write_file(path: Path, data: str | bytes, *, fsync: bool) -> None:
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(payload)
        while view:  # os.write may write less than asked (signals, nearly full disks)
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_path(path: Path, flags: int) -> None:
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------- locks
def try_lock(path: Path | str, *, wait: bool = False) -> int | None:
    """Open (creating) ``path`` and hold an exclusive ``flock`` on it; the descriptor, or ``None``.

    The lock lives as long as the descriptor: ``os.close`` it (or let the process die) to release.
    A lock file unlinked by its previous holder between our open and our lock is opened again, so
    the lock returned is always on the file now at ``path``.

    Args:
        path: the lock file (its folder is created).
        wait: block until the lock is free instead of returning ``None`` when it is held.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if holds_file(fd, path):
            return fd
        os.close(fd)
    return None


@contextlib.contextmanager
def hold_lock(path: Path | str, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock on ``path`` for a ``with`` block; yields False when it is held elsewhere."""
    fd = try_lock(path, wait=wait)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def is_locked(path: Path | str) -> bool:
    """Whether some process holds the lock on ``path`` (probed without disturbing the holder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def lock_holder(path: Path | str) -> dict[str, Any] | None:
    """The JSON info a holder wrote into lock file ``path`` ({} if none), or ``None`` if free."""
    if not is_locked(path):
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def note_in_lock(fd: int, info: dict[str, Any]) -> None:
    """Write ``info`` (JSON) into a held lock file, for :func:`lock_holder` to show."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info, sort_keys=True, default=str).encode(), 0)


def holds_file(fd: int, path: Path | str) -> bool:
    """Whether descriptor ``fd`` is open on the file now at ``path`` (not one since replaced)."""
    try:
        held, current = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)
