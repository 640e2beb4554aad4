"""``ablate tune --summary``: the best trial, parameter importances, the optimisation history.

Reads the study only (any storage); writes ``<out>/<study>_history.png`` and ``.svg`` with
Optuna's matplotlib plot and returns the text it printed, so tests and the CLI share it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.tune.study import RUN_ID_ATTR

if TYPE_CHECKING:
    import optuna

HISTORY_FORMATS = ("png", "svg")


@dataclass
class StudySummary:
    """What ``--summary`` found.

    Attributes:
        study: the study name.
        counts: trial state name -> number of trials.
        best: number, value, params and run id of the best trial (``None``: none complete).
        importances: parameter -> importance (empty when they cannot be computed).
        importance_note: why importances are missing, if they are.
        plots: the written history plots.
    """

    study: str
    counts: dict[str, int]
    best: dict[str, Any] | None
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str = ""
    plots: list[Path] = field(default_factory=list)

    def text(self) -> str:
        """Plain lines for the terminal."""
        counts = ", ".join(f"{k.lower()} {v}" for k, v in sorted(self.counts.items()))
        lines = [f"study {self.study}: {sum(self.counts.values())} trials ({counts or 'none'})"]
        if self.best is None:
            lines.append("no complete trial yet")
        else:
            lines.append(
                f"best: trial {self.best['number']} value {self.best['value']:.6g} "
                f"(run {self.best.get('run_id') or '?'})"
            )
            lines += [f"  {k} = {v}" for k, v in self.best["params"].items()]
        if self.importances:
            lines.append("parameter importances:")
            lines += [f"  {k:<28} {v:.3f}" for k, v in self.importances.items()]
        elif self.importance_note:
            lines.append(f"parameter importances: {self.importance_note}")
        lines += [f"history plot: {p}" for p in self.plots]
        return "\n".join(lines)


def summarize_study(study: optuna.Study, out_dir: Path | None) -> StudySummary:
    """Summarise ``study``; write the optimisation history plots under ``out_dir`` if given."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    complete = [t for t in trials if t.state is optuna.trial.TrialState.COMPLETE]
    best = None
    if complete:
        top = study.best_trial
        best = {
            "number": top.number,
            "value": top.value,
            "params": dict(top.params),
            "run_id": top.user_attrs.get(RUN_ID_ATTR),
        }
    summary = StudySummary(study=study.study_name, counts=counts, best=best)
    _importances(study, complete, summary)
    if out_dir is not None and complete:
        summary.plots = _history_plots(study, Path(out_dir))
    return summary


def _importances(study: optuna.Study, complete: list[Any], summary: StudySummary) -> None:
    import optuna

    varied = {
        k for t in complete for k in t.params if len({repr(u.params.get(k)) for u in complete}) > 1
    }
    if len(complete) < 2 or not varied:
        summary.importance_note = (
            f"need at least 2 complete trials that differ in a parameter (have {len(complete)})"
        )
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary.importances = dict(
                optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
                )
            )
    except (RuntimeError, ValueError, ZeroDivisionError) as err:
        summary.importance_note = f"could not be computed ({err})"


def _history_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    out_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" warning of the matplotlib backend
        axes = plot_optimization_history(study)
    figure = axes.get_figure()
    figure.set_size_inches(8, 5)
    figure.tight_layout()
    paths = []
    for fmt in HISTORY_FORMATS:
        path = out_dir / f"{study.study_name.replace('@', '_')}_history.{fmt}"
        figure.savefig(path, format=fmt)
        paths.append(path)
    plt.close(figure)
    return paths
