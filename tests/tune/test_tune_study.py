"""A small study end to end on CPU: trials are runs, pruning stops a crafted bad trial."""

from __future__ import annotations

import optuna
import pytest
from tune_helpers import PRUNING_SEARCH, load, local_executor, tune_file

from ablate.store import ResultsStore
from ablate.store.record import AttemptStatus
from ablate.tune.tuner import RUN_ID_ATTR, run_study

pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def test_six_trial_study_prunes_the_slow_learner(tmp_path):
    runs = tmp_path / "runs"
    store = ResultsStore(runs)
    path = tune_file(tmp_path, search=PRUNING_SEARCH, base="  debug: {sleep_per_step: 0.03}\n")
    sweep, search, storage, study = load(path, runs)
    result = run_study(
        sweep,
        search,
        study=study,
        storage=storage,
        executor=local_executor(store),
        store=store,
        max_parallel=1,
        install_signal_handlers=False,
    )
    trials = study.get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 6 and result.exit_code == 0
    assert optuna.trial.TrialState.PRUNED in states
    # the third trial (lr 1e-4, slowest to learn) is the crafted one
    assert trials[2].params["train.lr"] == pytest.approx(0.0001)
    assert trials[2].state is optuna.trial.TrialState.PRUNED
    # every trial is a run in the store, under the sweep's folder, with its own run id
    for trial in trials:
        run_id = trial.user_attrs[RUN_ID_ATTR]
        records = store.attempts_of(run_id)
        assert records, trial.number
        expected = (
            AttemptStatus.CANCELLED
            if trial.state is optuna.trial.TrialState.PRUNED
            else AttemptStatus.SUCCESS
        )
        assert records[-1].status is expected
        if expected is AttemptStatus.SUCCESS:
            assert trial.value == pytest.approx(records[-1].metrics["eval/mse"])
    assert (runs / "optuna.db").exists()
