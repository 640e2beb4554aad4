"""What MLflow gets when an attempt ends: tags, final metrics, artifacts and the end status.

Everything comes from the attempt's record and its run folder, so the same report is sent
whoever notices the end first (the orchestrator, a SLURM task, ``ablate status``, ``ablate sync``);
:func:`ablate.tracking.run_sync.sync_run_folder` makes sure that happens once per attempt.

A job returns one flat dict of numbers; MLflow gets each where its UI makes sense of it
(:func:`split_final_values`): the run's settings (``data/n_train``, ``train/effective_batch``,
trainable parameters: constants of the spec) as params, the attempt's plan (micro-batch after an
OOM retry, the step it resumed from) as tags, and the results (accuracies, losses, times) as
metrics at step 0. MLflow's charts draw a metric whose latest value is at step 0 as a bar per run,
and one at a later step as a line: a final accuracy logged at step 600 was a dot on a line chart.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.store.run_folder import LOG_FILE, SPEC_FILE
from ablate.tracking.batching import MAX_ENTITIES, MAX_METRICS, MAX_PARAMS, MAX_TAGS, MetricRow
from ablate.tracking.config import redact, redact_tree, redact_value

if TYPE_CHECKING:
    from ablate.store.record import AttemptRecord
    from ablate.tracking.client import TrackingClient

STATUS_OF = {"success": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
ARTIFACT_PATTERNS = ("predictions_*.jsonl",)
TEXT_ARTIFACTS = (LOG_FILE,)  # uploaded as redacted copies (a job may print anything)
ADAPTER_FILES = ("adapter.safetensors",)
ACCURACY_COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")
SAFE_COPIES_DIR = ".mlflow-artifacts"  # redacted copies uploaded in place of the originals
RESULT_STEP = 0  # final metrics: a bar per run in MLflow's charts, not a dot at the last step

# Final values that are settings of the run (the same for every attempt of one spec): params.
# Written by the mmt recipe (jobs/mmt_recipe.py) at setup.
SETTING_PREFIXES = ("data/",)
SETTING_KEYS = frozenset(
    {
        "train/effective_batch",
        "train/effective_lr",
        "train/steps",
        "train/trainable_params",
        "train/trainable_params_effective",
        "train/packed",
    }
)
# Final values that describe one attempt's plan (they change when an OOM retry halves the
# micro-batch, or a retry resumes): tags, which a later attempt may overwrite (params may not).
ATTEMPT_PLAN_KEYS = frozenset(
    {
        "train/micro_batch",
        "train/accumulation_steps",
        "train/micro_batch_divisor",
        "train/resumed_from_step",
        "train/steps_run",
    }
)


@dataclass
class EndBatch:
    """What one ended attempt's ``log_batch`` carries (redacted).

    Attributes:
        metrics: the final results, at :data:`RESULT_STEP`.
        params: the run's settings not logged before (params cannot change once logged).
        tags: the attempt's tags, its plan among them.
    """

    metrics: list[MetricRow]
    params: dict[str, str]
    tags: dict[str, str]

    @property
    def entities(self) -> int:
        """Params and tags (what the room for step metrics in the same call is shared with)."""
        return len(self.params) + len(self.tags)


def split_final_values(
    values: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """A job's final numbers as ``(result metrics, setting params, attempt-plan tags)``."""
    metrics: dict[str, float] = {}
    settings: dict[str, str] = {}
    plan: dict[str, str] = {}
    for key, value in values.items():
        if key in SETTING_KEYS or key.startswith(SETTING_PREFIXES):
            settings[key] = number_text(value)
        elif key in ATTEMPT_PLAN_KEYS:
            plan[key] = number_text(value)
        else:
            metrics[key] = value
    return metrics, settings, plan


def number_text(value: float) -> str:
    """A number as a param or tag shows it: ``4`` for 4.0, else the shortest round-trip text."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def attempt_end_batch(
    record: AttemptRecord,
    *,
    step_keys: set[str],
    logged_params: Mapping[str, str] | None = None,
) -> EndBatch:
    """The metrics, params and tags of one ended attempt's ``log_batch`` (redacted).

    Args:
        record: the attempt's record.
        step_keys: metric keys the attempt already logged per step (not logged again at the end).
        logged_params: settings an earlier attempt already logged as params. They are not sent
            again: MLflow rejects a changed param value, and with it the whole batch.
    """
    logged = logged_params or {}
    results, settings, plan = split_final_values(record.metrics)
    status = record.status.value
    tags = {
        "ablate.attempt": str(record.attempt),
        "ablate.status": status,
        "ablate.host": record.host or "",
        "ablate.gpu": record.device or "",
        "ablate.executor": record.executor or "",
        **git_tags(record.git_sha, record.git_dirty),
        **{f"ablate.version.{k}": v for k, v in record.versions.items()},
        **plan,
    }
    if record.failure_kind is not None:
        tags["ablate.failure_kind"] = record.failure_kind.value
        tags["ablate.failure_reason"] = redact_value((record.failure_reason or "")[:1000])
    now = int((record.ended_at or time.time()) * 1000)
    metrics: list[MetricRow] = [
        (k, v, now, RESULT_STEP) for k, v in results.items() if k not in step_keys
    ]
    if record.duration_s is not None:
        metrics.append(("time/attempt_s", float(record.duration_s), now, RESULT_STEP))
    params = {k: v for k, v in settings.items() if k not in logged}
    return EndBatch(metrics, redact(params), redact(tags))


def report_attempt_end(
    client: TrackingClient,
    child: str,
    run_dir: Path,
    record: AttemptRecord,
    *,
    batch: EndBatch,
    log_adapter: bool = False,
    step_rows: Sequence[MetricRow] = (),
) -> bool:
    """Send one ended attempt to its MLflow child run and end the run with the attempt's status.

    The attempt's tags, settings, final metrics and ``step_rows`` (the step metrics the
    run-folder sync has not sent yet) go out in one ``log_batch``; then the artifacts and the end
    status.

    Args:
        client: the tracking client (writes it cannot send now are spooled).
        child: the MLflow run of this run folder.
        run_dir: the run folder (artifacts).
        record: the attempt's record.
        batch: the attempt's :func:`attempt_end_batch`.
        log_adapter: also upload the adapter weights.
        step_rows: step metrics to send in the same batch; the caller keeps them in one
            ``log_batch`` chunk (:func:`end_batch_room`). They are never spooled: when the batch
            cannot be sent now, the end is spooled without them and they stay the caller's.

    Returns:
        Whether ``step_rows`` reached the server (``False`` when there were none).
    """
    metrics, params, tags = batch.metrics, batch.params, batch.tags
    steps_sent = False
    if step_rows:
        steps_sent = client.log_batch(
            child, metrics=[*step_rows, *metrics], params=params, tags=tags, spool=False
        )
    if not steps_sent:
        client.log_batch(child, metrics=metrics, params=params, tags=tags)
    log_artifacts(client, child, run_dir, record, log_adapter=log_adapter)
    client.set_terminated(child, STATUS_OF[record.status.value])
    return steps_sent


def end_batch_room(batch: EndBatch) -> int:
    """How many step metrics fit in one ``log_batch`` chunk beside an attempt's end batch."""
    if len(batch.tags) > MAX_TAGS or len(batch.params) > MAX_PARAMS:
        return 0
    return max(0, min(MAX_METRICS, MAX_ENTITIES - batch.entities) - len(batch.metrics))


def log_artifacts(
    client: TrackingClient,
    child: str,
    run_dir: Path,
    record: AttemptRecord,
    *,
    log_adapter: bool = False,
) -> None:
    """Upload the spec, the accuracy table, the worker log (redacted) and the predictions."""
    safe_dir = run_dir / SAFE_COPIES_DIR
    spec_path = run_dir / SPEC_FILE
    if spec_path.is_file():
        safe = safe_dir / SPEC_FILE
        safe.parent.mkdir(exist_ok=True)
        safe.write_text(json.dumps(redact_tree(json.loads(spec_path.read_text())), indent=2))
        client.log_artifact(child, safe)
    table = accuracy_table(record.metrics)
    if table is not None:
        path = safe_dir / "accuracy.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(table)
        client.log_artifact(child, path)
    for name in TEXT_ARTIFACTS:
        if (run_dir / name).is_file():
            safe = safe_dir / name
            safe.parent.mkdir(exist_ok=True)
            text = (run_dir / name).read_text(encoding="utf-8", errors="replace")
            safe.write_text(redact_value(text), encoding="utf-8")
            client.log_artifact(child, safe)
    for pattern in ARTIFACT_PATTERNS:
        for path in sorted(run_dir.glob(pattern)):
            client.log_artifact(child, path)
    if log_adapter:
        for name in ADAPTER_FILES:
            if (run_dir / name).is_file():
                client.log_artifact(child, run_dir / name, artifact_path="adapter")


def git_tags(sha: str | None, dirty: bool | None) -> dict[str, str]:
    """``ablate.git_sha`` (and MLflow's own commit tag) and ``ablate.git_dirty``."""
    tags = {}
    if sha:
        tags["ablate.git_sha"] = sha
        tags["mlflow.source.git.commit"] = sha
    if dirty is not None:
        tags["ablate.git_dirty"] = str(dirty).lower()
    return tags


def accuracy_table(metrics: dict[str, float]) -> str | None:
    """A markdown table of the ScienceQA accuracy columns for each split that has them."""
    splits = [s for s in ("test", "val") if f"{s}/Avg" in metrics]
    if not splits:
        return None
    header = "| split | " + " | ".join(ACCURACY_COLUMNS) + " | unparseable |"
    rule = "|---|" + "---:|" * (len(ACCURACY_COLUMNS) + 1)
    lines = [header, rule]
    for split in splits:
        cells = [
            f"{metrics[f'{split}/{c}']:.2f}" if f"{split}/{c}" in metrics else "—"
            for c in (*ACCURACY_COLUMNS, "unparseable")
        ]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
