"""``ablate tune`` through a Typer app (the lead registers ``tune_command`` in ablate/cli.py)."""

from __future__ import annotations

import optuna
import pytest
import typer
from tune_helpers import tune_file
from typer.testing import CliRunner

from ablate.tune.commands import tune_command

SEARCH = """
n_trials: 2
objective: {metric: eval/mse, direction: minimize}
sampler: {name: random, seed: 0}
space:
  train.lr: {type: float, low: 0.01, high: 0.2, log: true}
"""


@pytest.fixture(name="app")
def app_fixture() -> typer.Typer:
    app = typer.Typer()
    app.command("tune")(tune_command)

    @app.command("noop")
    def noop() -> None:  # a second command keeps `tune` a subcommand, as in ablate/cli.py
        """Nothing."""

    return app


pytestmark = pytest.mark.usefixtures("no_git")  # tests/conftest.py


def test_tune_then_summary(app, tmp_path):
    runs = tmp_path / "runs"
    path = tune_file(tmp_path, search=SEARCH)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "tune",
            str(path),
            "--runner",
            "inline",
            "--runs-dir",
            str(runs),
            "--no-tracking",
            "--trials",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "trial 2 COMPLETE" in result.output and "best: trial" in result.output
    study = optuna.load_study(study_name="tunefit", storage=f"sqlite:///{runs.resolve()}/optuna.db")
    assert len(study.get_trials()) == 3
    out = tmp_path / "plots"
    result = runner.invoke(
        app, ["tune", str(path), "--summary", "--runs-dir", str(runs), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "study tunefit: 3 trials (complete 3)" in result.output
    assert (out / "tunefit_history.png").is_file() and (out / "tunefit_history.svg").is_file()
