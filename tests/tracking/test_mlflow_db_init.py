"""The embedded ``mlflow.db`` is created safely (issue 18 item 2).

Faults injected: a database whose creation was cut short (MLflow's initial tables without a
schema version, the state a SIGKILL between table creation and migrations leaves), one created by
two processes at once (two schema versions), real SIGKILLs of a process creating the database,
and two ``ablate sweep`` started together in one directory on a database that does not exist.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from tracking_env import make_sweep, run_tracked, tracked_runs

from ablate.tracking.mlflow_tracker import MlflowTracker
from ablate.tracking.spool import pending_files
from ablate.tracking.sqlite_db import TrackingDatabaseWarning, ensure_sqlite_db, schema_problem
from ablate.tracking.sync import spool_dir_of, sync
from ablate.tracking.ui import free_port


def cut_short(db, template):
    """Killed mid-migration: the first migration (``metrics.step``) ran, its version was not
    recorded. MLflow alone then fails on every open: ``duplicate column name: step``."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    url = f"sqlite:///{db}"
    engine = sqlalchemy.create_engine(url)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "451aebb31d03")  # add_metric_step
    engine.dispose()
    with sqlite3.connect(db) as con:
        con.execute("DELETE FROM alembic_version")
    with pytest.raises(Exception, match="duplicate column name: step"):
        MlflowClient(tracking_uri=url).search_experiments()  # the fault, as MLflow meets it


def raced(db, template):
    """A whole schema with a second version row: two processes ran the migrations at once."""
    shutil.copy(template, db)
    with sqlite3.connect(db) as con:
        con.execute("INSERT INTO alembic_version VALUES ('0a8213491aaa')")


@pytest.mark.parametrize("damage", [cut_short, raced])
def test_broken_database_is_moved_aside_and_the_spool_replayed_into_a_fresh_one(
    tmp_path, store, sqlite_template, damage
):
    # an outage first: its writes wait in the spool
    dead = f"http://127.0.0.1:{free_port()}"
    before = make_sweep(tmp_path, "before", seeds=(0,), steps=3)
    assert run_tracked(before, store, MlflowTracker(store.root, dead)).exit_code == 0
    assert pending_files(spool_dir_of(store.root))
    # then the database is found half-made, by a sweep and by the sync
    db = tmp_path / "mlflow.db"
    damage(db, sqlite_template)
    assert schema_problem(db) is not None
    uri = f"sqlite:///{db}"
    after = make_sweep(tmp_path, "after", seeds=(0,), steps=4)  # another run id
    with pytest.warns(TrackingDatabaseWarning, match="moved aside to .*mlflow.db.broken-"):
        assert run_tracked(after, store, MlflowTracker(store.root, uri)).exit_code == 0
    [aside] = tmp_path.glob("mlflow.db.broken-*")
    assert schema_problem(db) is None and schema_problem(aside) is not None  # kept, not deleted
    done = sync(store.root, tracking_uri=uri)
    assert done.complete, done.errors
    client = MlflowClient(tracking_uri=uri)
    for name in ("before", "after"):
        _, [parent], [child] = tracked_runs(client, name)
        assert child.info.status == "FINISHED"
    assert not pending_files(spool_dir_of(store.root))


def test_a_whole_database_is_never_touched(tmp_path, sqlite_template):
    db = tmp_path / "mlflow.db"
    shutil.copy(sqlite_template, db)
    before = db.read_bytes(), db.stat().st_ino
    ensure_sqlite_db(f"sqlite:///{db}")
    assert (db.read_bytes(), db.stat().st_ino) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".mlflow.db.lock", "mlflow.db"]


CREATE = "import sys; from ablate.tracking.sqlite_db import ensure_sqlite_db as e; e(sys.argv[1])"


def test_sigkill_while_the_database_is_created_never_leaves_half_of_one(tmp_path):
    """Killed at several instants of the creation: no database or a whole one, never half."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for delay in (0.0, 0.2, 0.6, 1.2):
        proc = subprocess.Popen([sys.executable, "-c", CREATE, uri], env=env)
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".mlflow.db.*.tmp")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(delay)  # somewhere inside MLflow's table creation and migrations
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert not db.exists() or schema_problem(db) is None
        db.unlink(missing_ok=True)
    ensure_sqlite_db(uri)  # the next user creates a whole one and clears the leftovers
    assert schema_problem(db) is None
    assert not list(tmp_path.glob(".mlflow.db.*.tmp*"))
    assert MlflowClient(tracking_uri=uri).search_experiments()


def test_two_sweeps_starting_together_in_one_directory_share_one_whole_database(tmp_path):
    """Two ``ablate sweep`` processes, started at once, on a database that does not exist yet."""
    for name, steps in (("left", 3), ("right", 4)):  # two run ids
        make_sweep(tmp_path, name, seeds=(0,), steps=steps)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ablate.cli", "sweep", f"{name}.yaml", "--runner", "inline"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("left", "right")
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "unreachable" not in err and "Traceback" not in err, err
    db = tmp_path / "mlflow.db"
    assert schema_problem(db) is None
    assert not list(tmp_path.glob("mlflow.db.broken-*"))
    assert not pending_files(spool_dir_of(tmp_path / "runs"))  # nothing had to be spooled
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    for name in ("left", "right"):
        _, [parent], [child] = tracked_runs(client, name)
        assert child.info.status == "FINISHED"
