"""Search-section validation, stored results reused, invalid points, grid, summary, MLflow."""

from __future__ import annotations

import optuna
import pytest
from tune_helpers import REPO, load, tune_file

from ablate.errors import SpecError
from ablate.execution.inline import InlineExecutor
from ablate.spec.sweep import load_sweep
from ablate.store import ResultsStore
from ablate.tune.search_spec import parse_search
from ablate.tune.study import resolve_storage, storage_kind
from ablate.tune.summary import summarize_study
from ablate.tune.tuner import ERROR_ATTR, REUSED_ATTR, RUN_ID_ATTR, run_study

FAST_SEARCH = """
n_trials: 3
objective: {metric: eval/mse, direction: minimize}
sampler: {name: random, seed: 0}
space:
  train.lr: {type: categorical, choices: [0.05, 0.1]}
  train.batch_size: {type: int, low: 8, high: 16, step: 8}
"""


pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def tune_inline(path, runs, *, tracker=None, n_trials=None, storage=None):
    store = ResultsStore(runs)
    sweep, search, storage, study = load(path, runs, storage)
    result = run_study(
        sweep,
        search,
        study=study,
        storage=storage,
        executor=InlineExecutor(store, device="cpu"),
        store=store,
        n_trials=n_trials,
        tracker=tracker,
        install_signal_handlers=False,
    )
    return study, store, result


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("space: {}\nobjective: {metric: m}", "search.space", "at least 1"),
        ("space: {a.b: {type: flot}}\nobjective: {metric: m}", "search.space.a.b", "flot"),
        (
            "space: {a: {type: float, low: 2, high: 1}}\nobjective: {metric: m}",
            "search.space.a",
            "low (2.0) must be <= high",
        ),
        (
            "space: {a: {type: float, low: 0, high: 1, log: true}}\nobjective: {metric: m}",
            "search.space.a",
            "log-scale range needs low > 0",
        ),
        (
            "space: {a: {type: int, low: 1, high: 3}}\nobjective: {metric: m, dir: max}",
            "search.objective.dir",
            "unknown key 'dir'",
        ),
        (
            "space: {a: {type: int, low: 1, high: 3}}\nobjective: {metric: m}\n"
            "pruner: {name: medain}",
            "search.pruner.name",
            "'median'",
        ),
        (
            "space: {a: {type: int, low: 1, high: 3}}\nobjective: {metric: m}\nn_trails: 3",
            "search.n_trails",
            "did you mean 'n_trials'?",
        ),
        (
            "space: {a: {type: float, low: 1, high: 3}}\nobjective: {metric: m}\n"
            "sampler: {name: grid}",
            "search",
            "grid search needs finite values",
        ),
        (
            "space: {a: {type: int, low: 1, high: 3}}\nobjective: {metric: m}\nenqueue: [{b: 1}]",
            "search",
            "enqueue[0] sets 'b'",
        ),
    ],
)
def test_bad_search_names_file_key_and_problem(tmp_path, body, key, fragment):
    path = tune_file(tmp_path, search=body)
    with pytest.raises(SpecError) as err:
        parse_search(load_sweep(path).search, file=path)
    text = str(err.value)
    assert str(path) in text and f"{key}" in text and fragment in text, text


def test_a_tune_file_without_search_is_refused(tmp_path):
    with pytest.raises(SpecError, match="needs a search: section"):
        parse_search({}, file=tmp_path / "x.yaml")


def test_storage_kinds(tmp_path):
    assert resolve_storage(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/optuna.db"
    assert storage_kind("journal:/x/s.journal") == "journal"
    assert storage_kind("/x/study.journal") == "journal"
    assert storage_kind("postgresql://u@h/db") == "url"


def test_trials_are_runs_and_done_points_are_reused(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(
        tmp_path, search=FAST_SEARCH + "enqueue: [{train.lr: 0.1, train.batch_size: 8}]\n"
    )
    study, store, result = tune_inline(path, runs)
    first = study.get_trials()
    assert result.exit_code == 0 and len(first) == 3
    assert all(t.state is optuna.trial.TrialState.COMPLETE for t in first)
    assert first[0].params == {"train.lr": 0.1, "train.batch_size": 8}
    n_records = len(store.records())
    # a second study over the same store: the enqueued point ran already, it is not trained again
    path2 = tune_file(
        tmp_path,
        "tunefit",
        search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 1\nstudy: second")
        + "enqueue: [{train.lr: 0.1, "
        "train.batch_size: 8}]\n",
    )
    study2, store, _ = tune_inline(path2, runs)
    (trial,) = study2.get_trials()
    assert trial.user_attrs[REUSED_ATTR] is True
    assert trial.user_attrs[RUN_ID_ATTR] == first[0].user_attrs[RUN_ID_ATTR]
    assert trial.value == first[0].value
    assert len(store.records()) == n_records


def test_the_tuner_runs_through_the_sweep_loop_as_its_run_source(tmp_path, monkeypatch):
    """One dispatch path: the tuner composes the sweep loop (a run source), never subclasses it."""
    from ablate.orchestrate.sweep_loop import SweepLoop
    from ablate.tune import tuner

    loops = []
    real_run = SweepLoop.run

    def spy_run(loop):
        loops.append(loop)
        return real_run(loop)

    monkeypatch.setattr(SweepLoop, "run", spy_run)
    path = tune_file(tmp_path, search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 2"))
    study, store, result = tune_inline(path, tmp_path / "runs")
    [loop] = loops
    assert type(loop) is SweepLoop and isinstance(loop.source, tuner.TrialSource)
    assert not issubclass(tuner.TrialSource, SweepLoop)
    assert len(result.records) == 2 and {r.executor for r in result.records} == {"inline"}
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 2


def test_invalid_points_and_missing_objective_fail_the_trial(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(
        tmp_path,
        search="""
n_trials: 2
objective: {metric: eval/nope}
sampler: {name: grid}
space:
  train.steps: {type: categorical, choices: [0, 5]}
""",
    )
    study, _, result = tune_inline(path, runs)
    trials = {t.params["train.steps"]: t for t in study.get_trials()}
    assert result.exit_code == 0 and set(trials) == {0, 5}
    assert trials[0].state is optuna.trial.TrialState.FAIL
    assert "train.steps" in trials[0].user_attrs[ERROR_ATTR]  # the spec refused steps 0
    assert trials[5].state is optuna.trial.TrialState.FAIL
    assert "'eval/nope' not in the run's metrics" in trials[5].user_attrs[ERROR_ATTR]


def test_grid_enqueues_every_point_once(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=FAST_SEARCH.replace("name: random", "name: grid"))
    study, _, _ = tune_inline(path, runs)
    points = sorted(
        (t.params["train.lr"], t.params["train.batch_size"]) for t in study.get_trials()
    )
    assert points == [(0.05, 8), (0.05, 16), (0.1, 8), (0.1, 16)]
    # resuming a finished grid study asks nothing more
    study, _, result = tune_inline(path, runs)
    assert len(study.get_trials()) == 4 and result.told == {}


def test_summary_best_importances_and_history_plots(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(
        tmp_path,
        search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 4").replace(
            "name: random", "name: grid"
        ),
    )
    study, _, _ = tune_inline(path, runs)
    summary = summarize_study(study, tmp_path / "out")
    best = min((t for t in study.get_trials()), key=lambda t: t.value)
    assert summary.best["number"] == best.number and summary.best["run_id"]
    assert set(summary.importances) == {"train.lr", "train.batch_size"}
    assert [p.suffix for p in summary.plots] == [".png", ".svg"]
    assert all(p.stat().st_size > 1000 for p in summary.plots)
    assert f"best: trial {best.number}" in summary.text()


def test_summary_with_too_few_trials_says_so(tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 1"))
    study, _, _ = tune_inline(path, runs)
    summary = summarize_study(study, tmp_path / "out")
    assert summary.importances == {}
    assert "need at least 2 complete trials" in summary.importance_note
    assert len(summary.plots) == 2


def test_each_trial_is_an_mlflow_child_run_with_its_number(tmp_path):
    from mlflow import MlflowClient

    from ablate.tracking.mlflow_tracker import MlflowTracker

    runs = tmp_path / "runs"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    path = tune_file(tmp_path, search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 2"))
    study, _, _ = tune_inline(path, runs, tracker=MlflowTracker(runs, uri))
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tunefit")
    children = [
        r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags
    ]
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {"trial 0", "trial 1"}
    for trial in study.get_trials():
        child = by_name[f"trial {trial.number}"]
        assert child.data.tags["ablate.axis.trial"] == str(trial.number)
        assert child.data.tags["ablate.run_id"] == trial.user_attrs[RUN_ID_ATTR]
        assert child.data.metrics["eval/mse"] == pytest.approx(trial.value)


def test_shipped_tune_ba_searches_the_issue_space():
    for scale in (None, "tiny"):
        sweep = load_sweep(REPO / "sweeps/tune_ba.yaml", scale=scale)
        search = parse_search(sweep.search, file="sweeps/tune_ba.yaml")
        assert len(sweep.runs) == 1
        assert set(search.space) == {
            "train.lr",
            "train.weight_decay",
            "adapter.dim",
            "adapter.groups",
            "adapter.temperature",
        }
        assert search.space["train.lr"].log is True
        assert sweep.runs[0].spec.get("adapter.name") == "bottleneck_scaled"
        assert search.intermediate == "val/epoch_Avg"


def test_pruners_and_samplers_by_name(tmp_path):
    from ablate.tune.study import make_pruner, make_sampler

    base = {
        "space": {"a": {"type": "int", "low": 1, "high": 3}},
        "objective": {"metric": "m"},
        "intermediate": "loss",
    }
    hyper = parse_search({**base, "pruner": {"name": "hyperband", "max_resource": 20}}, file="f")
    assert isinstance(make_pruner(hyper), optuna.pruners.HyperbandPruner)
    median = parse_search(base, file="f")
    assert isinstance(make_pruner(median), optuna.pruners.MedianPruner)
    no_metric = parse_search({**base, "intermediate": None}, file="f")
    assert isinstance(make_pruner(no_metric), optuna.pruners.NopPruner)
    assert isinstance(make_sampler(median), optuna.samplers.TPESampler)
    rand = parse_search({**base, "sampler": {"name": "random", "seed": 1}}, file="f")
    assert isinstance(make_sampler(rand), optuna.samplers.RandomSampler)


def test_orphan_whose_run_succeeded_is_completed_not_rerun(tmp_path):
    from ablate.tune.tuner import OWNER_ATTR

    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=FAST_SEARCH.replace("n_trials: 3", "n_trials: 1"))
    study, store, _ = tune_inline(path, runs)
    (done,) = study.get_trials()
    n_records = len(store.records())
    # a tuner asked this point, its run succeeded, and the tuner died before telling
    study.enqueue_trial(done.params)
    orphan = study.ask()
    orphan.set_user_attr(OWNER_ATTR, "ghost-host-1")
    orphan.set_user_attr(RUN_ID_ATTR, done.user_attrs[RUN_ID_ATTR])
    study, store, result = tune_inline(path, runs, n_trials=2)
    trials = study.get_trials()
    assert len(trials) == 2 and result.told == {orphan.number: "COMPLETE"}
    assert trials[orphan.number].value == done.value
    assert len(store.records()) == n_records
