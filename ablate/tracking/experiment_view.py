"""What the MLflow UI shows first for a sweep, and the link that opens it that way.

A sweep's experiment carries:

* ``mlflow.experimentKind = custom_model_development``: a training experiment, not a GenAI one
  (MLflow 3.0-3.4 choose the experiment page's mode from it);
* ``mlflow.note.content``: the experiment's description, rendered as markdown above the runs: the
  sweep's name, description, size and axes, and the sweep file as written;
* ``mlflow.sharedViewState.<key>``: a saved runs-table view (what the UI's "Share" button
  writes): the accuracy columns, the spec params that vary across the sweep, and a sort by test
  accuracy, best first. ``viewStateShareKey=<key>`` in the runs page's URL applies it.

Read from the UI of mlflow 3.17: the page's mode comes from the GenAI / machine-learning switch
(the ``workflowType`` URL parameter, else the browser's last choice, GenAI by default), not from
the tag, so :func:`experiment_url` carries ``workflowType=machine_learning``. A shared view cannot
expand rows (the UI drops ``runsExpanded`` from it) and the UI nests children under their parent
only when runs are sorted by start time; sorted by accuracy, parent and children are listed flat,
every child visible with its accuracy. Which columns a browser shows without the link is kept in
that browser's local storage, out of the server's reach.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.spec.dotted import flatten
from ablate.tracking.attempt_report import ACCURACY_COLUMNS
from ablate.tracking.config import redact_value

if TYPE_CHECKING:
    from ablate.spec.sweep import Sweep

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # a run's or an experiment's description (markdown)
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
VIEW_KEY_TAG = "ablate.view_key"
PRIMARY_METRIC = "test/Avg"
SHOWN_METRICS = (
    PRIMARY_METRIC,
    "val/Avg",
    *(f"test/{column}" for column in ACCURACY_COLUMNS if column != "Avg"),
)
MAX_EXPERIMENT_NOTE = 19_000  # MLflow keeps experiment tag values up to 20,000 characters


def experiment_name(sweep_name: str, scale: str | None = None) -> str:
    """A sweep's experiment: ``<sweep>``, or ``<sweep>@<scale>`` (apart from full scale)."""
    return f"{sweep_name}@{scale}" if scale else sweep_name


def run_label(run: Any) -> str:
    """A planned run's row label: the sweep's ``label``, else its axis values (as in reports).

    A sweep of seeds alone has no row label: its runs are named by run id.
    """
    from ablate.spec.sweep import row_key

    return row_key(run)[0] or run.spec.run_id


def varying_params(sweep: Sweep) -> list[str]:
    """The spec params (dotted, as logged) that differ between the sweep's runs, seed last.

    Read from the runs' axis values, the only keys a sweep varies: a whole section given per
    row (Table 3's ``adapter``) contributes the fields that differ. Milliseconds for 10,000 runs,
    where flattening every run's whole spec took seconds.
    """
    seen: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for run in sweep.runs:
        for key, value in flatten(run.axes).items():
            seen.setdefault(key, set()).add(json.dumps(value, sort_keys=True, default=str))
            counts[key] = counts.get(key, 0) + 1
    n = len(sweep.runs)
    varying = [k for k, values in seen.items() if len(values) > 1 or counts[k] < n]
    return [k for k in varying if k != "seed"] + (["seed"] if "seed" in varying else [])


def column(kind: str, key: str) -> str:
    """A runs-table column id as the UI names it (``metrics.`test/Avg```)."""
    return f"{kind}.`{key}`"


def view_state(sweep: Sweep) -> dict[str, Any]:
    """The saved runs-table view: accuracy columns, varying params, best test accuracy first."""
    return {
        "orderByKey": column("metrics", PRIMARY_METRIC),
        "orderByAsc": False,
        "selectedColumns": [
            *(column("metrics", key) for key in SHOWN_METRICS),
            *(column("params", key) for key in varying_params(sweep)),
        ],
        "runsHiddenMode": "SHOW_ALL",  # charts compare every run, not the first ten
    }


def view_key(state: dict[str, Any]) -> str:
    """A stable key for a view (the same view is saved once, whatever invocation saves it)."""
    text = json.dumps(state, sort_keys=True)
    return "ablate-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def experiment_note(sweep: Sweep) -> str:
    """The experiment's description: the sweep, its size and axes, and its file as written."""
    lines = [f"**Sweep `{sweep.name}`**" + (f" (scale `{sweep.scale}`)" if sweep.scale else "")]
    if sweep.description:
        lines += ["", sweep.description.strip()]
    axes = ", ".join(f"`{k}`" for k in sweep.axis_keys) or "none"
    lines += ["", f"{len(sweep.runs)} runs; axes: {axes}; file: `{sweep.path}`"]
    head = redact_value("\n".join(lines))
    try:
        text = redact_value(Path(sweep.path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return head + "\n"
    room = MAX_EXPERIMENT_NOTE - len(head) - 100
    if len(text) > room:
        text = text[:room] + "\n# ... (cut; the whole file is the parent runs' sweep artifact)\n"
    return f"{head}\n\n```yaml\n{text.rstrip()}\n```\n"


def experiment_tags(sweep: Sweep) -> dict[str, str]:
    """The experiment tags that make the UI's first view a useful one (see the module doc)."""
    state = view_state(sweep)
    key = view_key(state)
    return {
        EXPERIMENT_KIND_TAG: TRAINING_KIND,
        NOTE_TAG: experiment_note(sweep),
        SHARED_VIEW_PREFIX + key: json.dumps(state, sort_keys=True),
        VIEW_KEY_TAG: key,
        "ablate.sweep_file": str(sweep.path),
    }


TRAINING_VIEW = {"workflowType": "machine_learning"}  # the UI's mode switch, as a URL parameter


def experiment_path(experiment_id: str, key: str | None = None) -> str:
    """The UI route of an experiment's runs, in the training view, with the saved view."""
    query = {**TRAINING_VIEW, **({"viewStateShareKey": key} if key else {})}
    return f"#/experiments/{experiment_id}/runs?{urllib.parse.urlencode(query)}"


def experiment_url(ui_url: str, experiment_id: str, key: str | None = None) -> str:
    """The deep link ``ablate ui`` prints: the sweep's runs in the training view."""
    return f"{ui_url.rstrip('/')}/{experiment_path(experiment_id, key)}"


def run_path(experiment_id: str, run_id: str) -> str:
    """The UI route of one run, in the training view (relative: for markdown the UI shows)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{urllib.parse.urlencode(TRAINING_VIEW)}"
