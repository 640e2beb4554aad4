"""The embedded SQLite tracking database: created whole by one process, or moved aside.

MLflow creates its schema on first use: tables, then some forty migrations, not one transaction.
A process killed in between, or two processes creating it at once (two sweeps started together
in one directory), leave a database that every later open refuses (``duplicate column name``,
``table ... already exists``, ``Online migration expected to match one row``); every later sweep
would then spool its tracking writes and ``ablate sync`` could never replay them.

So ablate never lets MLflow create the schema in place. Before the first MLflow client of a
process opens ``mlflow.db`` (:func:`ensure_sqlite_db`), under a file lock beside it
(:func:`ablate.store.files.hold_lock`, released by the kernel if its holder dies):

* no database yet: one is created in a temporary file and renamed into place, so a kill at any
  instant leaves no database or a whole one, never half of one; whoever waited on the lock finds
  it made;
* a database that is not whole (no schema version, several, or one MLflow fails to open with the
  errors above) is moved aside to ``mlflow.db.broken-<UTC time>`` (kept, never deleted) with a
  warning naming both files, and a fresh one takes its place; the writes spooled meanwhile are
  replayed into it by ``ablate sync``.

A database of an older MLflow (all tables, an older schema version) is left alone: MLflow's own
error says to run ``mlflow db upgrade``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from pathlib import Path

from ablate.store.files import hold_lock, write_atomic_with

SQLITE_PREFIX = "sqlite:///"
# What MLflow says when it opens a database whose creation was cut short or raced.
BROKEN_SIGNS = (
    "duplicate column",
    "already exists",
    "expected to match one row",
    "no such table",
    "no such column",
    "can't locate revision",
    "file is not a database",
    "malformed",
)


class TrackingDatabaseWarning(UserWarning):
    """The tracking database was found half-created and was moved aside."""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (``None`` for anything else)."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def ensure_sqlite_db(uri: str) -> None:
    """Make sure a ``sqlite:///`` tracking database is whole before MLflow opens it.

    Does nothing for other URIs. Safe to call from many processes at once: one checks (and if
    needed creates) the database while the others wait on the lock. Creating a database takes
    a few seconds; checking one that is whole, a few milliseconds.

    Raises:
        OSError: the folder cannot be written (the caller treats it as a tracking outage).
    """
    path = sqlite_path(uri)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(path.with_name(f".{path.name}.lock")):
        for leftover in path.parent.glob(f".{path.name}.*.tmp*"):  # a creation killed earlier
            leftover.unlink(missing_ok=True)
        if not path.exists() or path.stat().st_size == 0:
            _create_whole(path)
            return
        problem = schema_problem(path) or _open_problem(uri)
        if problem is not None:
            _forget_engine(uri)
            _move_aside(path, problem)
            _create_whole(path)


def schema_problem(path: Path) -> str | None:
    """Why a database's schema bookkeeping shows a creation cut short or raced (``None``: fine).

    Read with the standard library only: no MLflow import for the common case.
    """
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "alembic_version" not in tables:
                return "it has no schema version (its creation was cut short)"
            versions = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"it cannot be read as a database ({exc})"
    if not versions:
        return "it has no schema version (its creation was cut short)"
    if len(versions) > 1:
        return f"it has {len(versions)} schema versions (it was created by two processes at once)"
    return None


def _open_problem(uri: str) -> str | None:
    """MLflow's own error on opening the database, if it is one of a half-made schema."""
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - only the signs of a broken schema count
        text = str(exc)
        if any(sign in text.lower() for sign in BROKEN_SIGNS):
            return f"MLflow cannot open it ({type(exc).__name__}: {text.splitlines()[0][:300]})"
    return None


def _create_whole(path: Path) -> None:
    """Create a fresh MLflow database at ``path``: in a temporary file, then renamed."""

    def create(tmp: Path) -> None:
        from mlflow import MlflowClient

        uri = f"{SQLITE_PREFIX}{tmp}"
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        finally:
            _forget_engine(uri)  # closes its connections before the rename

    write_atomic_with(path, create)


def _forget_engine(uri: str) -> None:
    """Drop and close the engine MLflow keeps for ``uri`` for the life of the process.

    MLflow caches one SQLAlchemy engine per URI; its pooled connections would go on reading a
    database file after it was moved aside, whatever now lies at the path.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
    if engine is not None:
        engine.dispose()


def _move_aside(path: Path, problem: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    path.rename(aside)
    for suffix in ("-journal", "-wal", "-shm"):  # sqlite's side files belong to the old one
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(aside.with_name(aside.name + suffix))
    warnings.warn(
        f"the MLflow tracking database {path} was not whole: {problem}. It was moved aside to "
        f"{aside} (nothing deleted) and a fresh one was created; run `ablate sync` to send it "
        "the tracking writes kept while it was broken",
        TrackingDatabaseWarning,
        stacklevel=3,
    )
    return aside
