"""Kill the tuner mid-study and rerun: nothing lost or duplicated; two tuners share a journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from tune_helpers import HERE, REPO, tune_file

from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus
from ablate.tune.tuner import RETRY_OF_ATTR, RUN_ID_ATTR, settled_and_running

SLOW_SEARCH = """
n_trials: 4
objective: {metric: eval/mse, direction: minimize}
sampler: {name: random, seed: 1}
pruner: {name: none}
space:
  train.lr: {type: float, low: 0.01, high: 0.2, log: true}
"""
SLOW_BASE = "  debug: {sleep_per_step: 0.05}\n"  # 60 steps: ~3 s per trial


@pytest.fixture(autouse=True)
def worker_env(monkeypatch):
    path = os.pathsep.join([str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("ABLATE_GIT_SHA", "0" * 40)
    monkeypatch.setenv("ABLATE_GIT_DIRTY", "0")


def start_tuner(path: Path, runs: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "drive_tune.py"), str(path), str(runs), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def load_study(name: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def assert_nothing_lost_or_duplicated(study: optuna.Study, store: ResultsStore, n: int) -> None:
    trials = study.get_trials()
    settled, running = settled_and_running(trials)
    assert (settled, running) == (n, 0)
    # every failed trial was asked again exactly once, with the same point
    retried = Counter(t.user_attrs.get(RETRY_OF_ATTR) for t in trials) - Counter({None: 10**6})
    by_number = {t.number: t for t in trials}
    for number, times in retried.items():
        assert times == 1
        again = next(t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == number)
        assert again.params == by_number[number].params
        assert by_number[number].state is optuna.trial.TrialState.FAIL
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n
    # each completed trial's run succeeded exactly once in the store
    for trial in complete:
        records = store.attempts_of(trial.user_attrs[RUN_ID_ATTR])
        assert [r.status for r in records].count(AttemptStatus.SUCCESS) == 1
        assert trial.value == pytest.approx(
            next(r for r in records if r.status is AttemptStatus.SUCCESS).metrics["eval/mse"]
        )


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_resume_after_the_tuner_dies(tmp_path, how):
    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=SLOW_SEARCH, base=SLOW_BASE)
    storage = f"sqlite:///{runs.resolve() / 'optuna.db'}"
    first = start_tuner(path, runs)
    # wait until two trials are training (their metrics are being written)
    wait_for(lambda: len(list(runs.glob("tunefit/*/metrics.jsonl"))) >= 2)
    first.send_signal(how)
    out, _ = first.communicate(timeout=60)
    study = load_study("tunefit", storage)
    running = [t for t in study.get_trials() if t.state is optuna.trial.TrialState.RUNNING]
    if how is signal.SIGKILL:
        assert len(running) == 2, out  # left RUNNING: heartbeats do not work with ask/tell
    else:
        assert first.returncode == 130 and not running, out  # given back at once
    second = start_tuner(path, runs)
    out2, _ = second.communicate(timeout=120)
    assert second.returncode == 0, out2
    if how is signal.SIGKILL:
        assert "was left running by" in out2
    assert_nothing_lost_or_duplicated(load_study("tunefit", storage), ResultsStore(runs), 4)


def test_two_tuners_share_a_journal(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(
        tmp_path, search=SLOW_SEARCH.replace("n_trials: 4", "n_trials: 6"), base=SLOW_BASE
    )
    journal = f"journal:{tmp_path / 'study.journal'}"
    tuners = [start_tuner(path, runs, "--storage", journal, "--slots", "1") for _ in range(2)]
    outs = [t.communicate(timeout=150)[0] for t in tuners]
    assert [t.returncode for t in tuners] == [0, 0], outs
    from ablate.tune.study import open_storage

    study = optuna.load_study(study_name="tunefit", storage=open_storage(journal))
    trials = study.get_trials()
    owners = {t.user_attrs.get("ablate.owner") for t in trials}
    assert len(owners) == 2  # both tuners asked trials
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    # both may ask in the same instant: the budget can be overshot by at most one per tuner
    assert 6 <= len(complete) <= 7 and len(trials) == len(complete)
    run_ids = [t.user_attrs[RUN_ID_ATTR] for t in complete]
    assert len(set(run_ids)) == len(run_ids)


def test_sqlite_study_refuses_a_second_tuner(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=SLOW_SEARCH, base=SLOW_BASE)
    first = start_tuner(path, runs)
    try:
        wait_for(
            lambda: (
                (runs / "tunefit" / ".lock").exists()
                and (runs / "tunefit" / ".lock").read_text().strip() != ""
            )
        )
        second = start_tuner(path, runs)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 3 and "already running" in out, out
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
