"""The store's caches never make a damaged record count (issue 18 item 1).

``summary.tsv`` (planning, ``ablate status``) and ``index.parquet`` (the DataFrame) remember the
records they have verified. A record damaged *after* it was indexed (one digit changed: valid JSON,
wrong checksum; truncated; ``{}``) must still be reported and ignored: every cached row carries the
file's size, mtime and ctime and the record's checksum, and a file whose stamp changed is read and
verified again. Here the whole loop runs through the CLI in real processes, so only the caches on
disk carry over between steps, as between a user's commands.
"""

from __future__ import annotations

import json
import os
import re
import warnings

import pytest
from reliability_helpers import linear_sweep_file, record_files, run_cli, success_counts

from ablate.store import ResultsStore
from ablate.store.results_store import CorruptRecordWarning

CLI = ("--runs-dir", "runs", "--no-tracking")


def change_one_digit(path):
    """Valid JSON, same size, wrong checksum: a hand-edited metric."""
    text = path.read_text()
    match = re.search(r'"eval/r2": 0\.(\d)', text)
    assert match is not None
    digit = match.group(1)
    path.write_text(text[: match.start(1)] + str((int(digit) + 1) % 10) + text[match.end(1) :])


def truncate(path):
    path.write_bytes(path.read_bytes()[:-40])


def empty_object(path):
    path.write_text("{}")


def metric_of(path) -> float:
    return json.loads(path.read_text())["metrics"]["eval/r2"]


@pytest.mark.parametrize(
    "damage", [change_one_digit, truncate, empty_object], ids=["digit", "truncated", "empty"]
)
def test_record_damaged_after_indexing_is_reported_and_ignored_everywhere(tmp_path, damage):
    path = linear_sweep_file(tmp_path, "cache", seeds=(0, 1), train={"steps": 10})
    runs = tmp_path / "runs"
    done = run_cli("sweep", str(path), *CLI, "--runner", "inline", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    status = run_cli("status", str(path), *CLI[:2], cwd=tmp_path)  # builds summary.tsv
    assert "2 runs: 2 done" in status.stdout, status.stdout
    assert len(ResultsStore(runs).dataframe()) == 2  # builds index.parquet
    victim = record_files(runs)[0]
    run_id = victim.name[:12]
    original = metric_of(victim)
    damage(victim)

    status = run_cli("status", str(path), *CLI[:2], cwd=tmp_path)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "ignoring corrupt record" in status.stderr and victim.name in status.stderr, (
        status.stderr
    )
    assert "2 runs: 1 new, 1 done; 1 to dispatch" in status.stdout, status.stdout

    with pytest.warns(CorruptRecordWarning, match=re.escape(victim.name)):
        frame = ResultsStore(runs).dataframe()
    assert frame["run_id"].tolist() == sorted({r.name[:12] for r in record_files(runs)} - {run_id})

    again = run_cli("sweep", str(path), *CLI, "--runner", "inline", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "ignoring corrupt record" in again.stderr and victim.name in again.stderr
    assert "1 to dispatch" in again.stdout, again.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorruptRecordWarning)
        assert success_counts(runs)[run_id] == 1  # the rerun's; the damaged one is not counted
        frame = ResultsStore(runs).dataframe()
    [rerun] = frame[frame["run_id"] == run_id]["metrics.eval/r2"].tolist()
    assert rerun == original  # the rerun's result (same seed), not the edited value


def test_edit_that_restores_the_mtime_is_still_caught(tmp_path):
    """Same size, mtime put back: the ctime (which no user call can set) still changes."""
    path = linear_sweep_file(tmp_path, "mtime", seeds=(0,), train={"steps": 5})
    runs = tmp_path / "runs"
    assert (
        run_cli("sweep", str(path), *CLI, "--runner", "inline", "-q", cwd=tmp_path).returncode == 0
    )
    assert len(ResultsStore(runs).summaries()) == 1
    assert len(ResultsStore(runs).dataframe()) == 1
    [victim] = record_files(runs)
    before = victim.stat()
    change_one_digit(victim)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert victim.stat().st_size == before.st_size
    with pytest.warns(CorruptRecordWarning, match="checksum mismatch"):
        assert ResultsStore(runs).summaries() == []
    with pytest.warns(CorruptRecordWarning, match="checksum mismatch"):
        assert ResultsStore(runs).dataframe().empty
