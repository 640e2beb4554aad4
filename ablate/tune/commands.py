"""The ``ablate tune`` command: run (or resume) an Optuna study, or summarise it.

Register in ``ablate/cli.py``::

    from ablate.tune.commands import tune_command
    app.command("tune")(tune_command)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ablate.orchestrate.cli_options import RunnerOpt
from ablate.orchestrate.progress import NullProgress, PlainProgress, SweepProgress
from ablate.report.render import DEFAULT_OUT_DIR
from ablate.store.layout import default_runs_root
from ablate.tracking.commands import RunsDirOpt, TrackingUriOpt

if TYPE_CHECKING:
    from ablate.orchestrate.plan import Plan


class TuneLog(PlainProgress):
    """Plain timestamped lines for a study (the sweep display's start line counts plan runs)."""

    def __init__(self, study: str) -> None:
        super().__init__(sys.stdout)
        self._sweep = study

    def start(self, plan: Plan) -> None:
        """Nothing to show: trials are asked as slots free up."""


def study_name_of(search_study: str | None, sweep_name: str, scale: str | None) -> str:
    """``search.study``, else the sweep name (``@<scale>`` at a scale: never mixed with full)."""
    if search_study:
        return search_study
    return f"{sweep_name}@{scale}" if scale else sweep_name


def tune_command(
    tune_file: Annotated[
        Path,
        typer.Argument(
            help="Tune YAML: a sweep file with a search: section (see sweeps/tune_ba.yaml).",
            show_default=False,
        ),
    ],
    scale: Annotated[
        str | None, typer.Option("--scale", help="Apply a `scales:` entry, e.g. `tiny`.")
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=1,
            help="Trials in the study (default search.n_trials).",
            show_default=False,
        ),
    ] = None,
    max_parallel: Annotated[
        int | None,
        typer.Option("--max-parallel", min=1, help="At most N trials at once.", show_default=False),
    ] = None,
    runner: RunnerOpt = None,
    retries: Annotated[
        int,
        typer.Option("--retries", min=0, help="Failed attempts allowed per run beyond the first."),
    ] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="sqlite:///PATH, journal:PATH (several tuners on one host) or a "
            "postgresql:// URL (default: search.storage, else sqlite:///<runs>/optuna.db).",
            show_default=False,
        ),
    ] = None,
    runs_dir: RunsDirOpt = None,
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="Run nothing: print the best trial and parameter importances, write "
            "the optimisation history plot (PNG and SVG).",
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for --summary plots.")
    ] = DEFAULT_OUT_DIR,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
    tracking_uri: TrackingUriOpt = None,
    no_tracking: Annotated[
        bool, typer.Option("--no-tracking", help="Do not log to MLflow.")
    ] = False,
    no_preflight: Annotated[
        bool,
        typer.Option(
            "--no-preflight",
            help="Start trials without first checking the base run's data, weights and GPU.",
        ),
    ] = False,
) -> None:
    """Search the run space of a sweep with Optuna; rerunning resumes the study.

    Every trial is a run: it gets a run id, runs on the same executors, lands in the results store
    and in MLflow (child run "trial N"). A point already run successfully is not trained again.
    Ctrl-C stops the running trials; they are asked again by the next invocation.

    \b
    Examples:
      ablate tune sweeps/tune_ba.yaml --scale tiny --trials 6
      ablate tune sweeps/tune_ba.yaml --max-parallel 4 --storage journal:runs/tune_ba.journal
      ablate tune sweeps/tune_ba.yaml --summary --out reports/out
    """  # noqa: D301 - click keeps a paragraph after \b (backspace) unwrapped
    from ablate.execution.registry import make_executor
    from ablate.execution.runner_profile import load_runner_profile
    from ablate.orchestrate.plan import make_plan
    from ablate.orchestrate.preflight import preflight
    from ablate.spec.sweep import load_sweep
    from ablate.store.results_store import ResultsStore
    from ablate.tracking.commands import make_tracker
    from ablate.tune.search_spec import parse_search
    from ablate.tune.study import open_study, resolve_storage
    from ablate.tune.summary import summarize_study
    from ablate.tune.tuner import run_study

    sweep = load_sweep(tune_file, scale=scale)
    search = parse_search(sweep.search, file=sweep.path)
    runs_root = runs_dir if runs_dir is not None else default_runs_root()
    storage_url = resolve_storage(storage or search.storage, runs_root)
    name = study_name_of(search.study, sweep.name, scale)
    profile = load_runner_profile(runner)
    store = ResultsStore(runs_root)
    if not (summary or no_preflight):  # trials share the base run's data and weights
        preflight(make_plan(sweep, store, check_claims=False).entries, profile)
    study = open_study(search, name, storage_url)
    if summary:
        result = summarize_study(study, out)
        typer.echo(result.text())
        return
    executor = make_executor(profile, store, max_parallel=max_parallel)
    tracker = make_tracker(store.root, tracking_uri, enabled=not no_tracking)
    progress: SweepProgress = NullProgress() if quiet else TuneLog(name)
    progress.message(f"study {name} in {storage_url}; runs in {store.root}/{sweep.name}/")
    result = run_study(
        sweep,
        search,
        study=study,
        storage=storage_url,
        executor=executor,
        store=store,
        n_trials=trials,
        retries=retries,
        max_parallel=max_parallel,
        progress=progress,
        tracker=tracker,
        timeout_s=profile.timeout_s,
        grace_s=profile.grace_s,
    )
    if not quiet:
        typer.echo(summarize_study(study, None).text())
    raise typer.Exit(result.exit_code)
