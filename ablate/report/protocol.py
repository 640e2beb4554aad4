"""The protocol footer under every report table: how the numbers were produced.

ScienceQA accuracies move by points with settings a table does not show: the decoding, how
unparseable answers are scored, the prompt format, the image resize and normalisation, the
precision, the effective batch and learning rate (LaVIN's code scales the learning rate with the
batch; its paper does not say so), and the software and hardware. A reviewer comparing our rows
with the paper's, or two of our tables, needs them beside the table, not in a config file.

Each line is read from what the runs recorded (the spec in each record, the job's metrics, and the
record's versions and device; see :mod:`ablate.store.provenance`). A setting that differs between
rows is shown per row; an environment that differs between rows adds a warning, because a torch,
CUDA or GPU change alone can move a result by more than an ablation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ablate.report.collect import RowRuns, RunResult

WARNING_PREFIX = "WARNING"
NOT_RECORDED = "not recorded"

PROMPTS = {
    "qcm-ale": "QCM-ALE: question, context, options -> answer, lecture, explanation, as LaVIN",
    "cqm-a": "CQM-A: context, question, options -> answer, as LLaVA",
}
RESIZE_RULES = {
    "direct": "bicubic to the tower's square input, aspect ratio not kept, as LaVIN",
    "crop": "shortest side to the input size, centre crop, as open_clip",
}
NORMALISATIONS = {
    "seed": "OpenAI CLIP statistics in training, ImageNet's in evaluation, as LaVIN's code",
    "clip": "OpenAI CLIP statistics",
    "imagenet": "ImageNet statistics",
}
UNPARSEABLE_RULES = {
    "wrong": "counted wrong (eval.unparseable=wrong, as LLaVA)",
    "random": "replaced by a seeded random option (eval.unparseable=random, as LaVIN)",
}


def _get(spec: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = spec
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _on_off(value: Any) -> str:
    return "on" if value else "off"


def _number(value: float) -> str:
    return f"{value:g}"


def _by_row(rows: list[RowRuns], text_of: Callable[[RunResult], str | None]) -> str:
    """One value if every run agrees, else each value with the rows that have it."""
    rows_of: dict[str, list[str]] = {}
    for row in rows:
        for result in row.results:
            text = text_of(result)
            if text is None:
                continue
            keys = rows_of.setdefault(text, [])
            if row.key not in keys:
                keys.append(row.key)
    if not rows_of:
        return NOT_RECORDED
    if len(rows_of) == 1:
        return next(iter(rows_of))
    return "; ".join(f"{text} ({', '.join(keys)})" for text, keys in rows_of.items())


def _split(result: RunResult) -> str:
    cap = _get(result.spec, "eval.max_questions")
    return result.test_split + (f" (first {cap} questions only)" if cap else "")


def _decoding(result: RunResult) -> str | None:
    spec = result.spec
    if _get(spec, "eval") is None:
        return None
    return (
        f"temperature {_number(_get(spec, 'eval.temperature', 0.1))}, "
        f"top_p {_number(_get(spec, 'eval.top_p', 0.75))}, "
        f"max_new_tokens {_get(spec, 'eval.max_new_tokens', 64)}, "
        f"stop_at_answer {_on_off(_get(spec, 'eval.stop_at_answer', True))}"
    )


def _unparseable_rule(result: RunResult) -> str | None:
    rule = _get(result.spec, "eval.unparseable")
    return None if rule is None else UNPARSEABLE_RULES.get(rule, str(rule))


def _prompt(result: RunResult) -> str | None:
    prompt = _get(result.spec, "data.prompt")
    if prompt is None:
        return None
    marker = _on_off(_get(result.spec, "data.image_marker", True))
    return f"{PROMPTS.get(prompt, prompt)}, image marker {marker}"


def _images(result: RunResult) -> str | None:
    resize = _get(result.spec, "model.image_resize")
    norm = _get(result.spec, "model.image_norm")
    if resize is None and norm is None:
        return None
    resize_text = RESIZE_RULES.get(resize, str(resize))
    norm_text = NORMALISATIONS.get(norm, str(norm))
    return f"resize {resize} ({resize_text}); normalisation {norm} ({norm_text})"


def _precision(result: RunResult) -> str | None:
    spec = result.spec
    if _get(spec, "model.precision") is None:
        return None
    return (
        f"backbones {_get(spec, 'model.precision')}, "
        f"quantisation {_get(spec, 'model.quantization', 'none')}, "
        f"autocast {_get(spec, 'train.autocast', 'none')}"
    )


def _batch_lr(result: RunResult) -> str | None:
    """The effective batch and learning rate the run recorded (else derived from its spec)."""
    batch = result.metrics.get("train/effective_batch")
    lr = result.metrics.get("train/effective_lr")
    mode = _get(result.spec, "train.lr_mode")
    source = "recorded"
    if batch is None or lr is None:
        from ablate.train.spec import TrainSpec  # no torch: specs validate without it

        train = _get(result.spec, "train")
        if not isinstance(train, dict):
            return None
        try:
            derived = TrainSpec.model_validate(train)
        except ValueError:
            return None
        batch, lr, source = float(derived.effective_batch), derived.effective_lr, "from the spec"
    suffix = f", train.lr_mode={mode}" if mode else ""
    return f"effective batch {batch:g}, effective lr {lr:.4g} ({source}{suffix})"


def fingerprint(result: RunResult) -> str:
    """torch, CUDA, GPU model and count of one run, as one line of text.

    CUDA and the GPU count are read from the record's versions (``cuda``, ``gpu_count``) when the
    run recorded them; an ablate job runs on one device, so a GPU run without a count used one.
    """
    versions = result.versions
    torch = versions.get("torch", NOT_RECORDED)
    cuda = versions.get("cuda", NOT_RECORDED)
    if result.device is None:
        hardware = f"device {NOT_RECORDED}"
    elif result.device == "cpu":
        hardware = "CPU"
    else:
        hardware = f"{result.device} x{versions.get('gpu_count', 1)}"
    return f"torch {torch}, CUDA {cuda}, {hardware}"


def _unparseable_rate(rows: list[RowRuns], metric: str) -> str | None:
    values = [v for row in rows for v in row.values(metric)]
    if not values:
        return None
    low, high, mean = min(values), max(values), sum(values) / len(values)
    return (
        f"{mean:.2f}% of answers per run on average ({low:.2f}-{high:.2f}% over {len(values)} runs)"
    )


def protocol_lines(rows: list[RowRuns], unparseable_metric: str) -> list[str]:
    """The footer: one line per protocol setting, then a warning if environments differ.

    Args:
        rows: the table's rows with their results (rows without results are skipped).
        unparseable_metric: the metric holding each run's unparseable-answer percentage.
    """
    rows = [row for row in rows if row.results]
    if not rows:
        return ["protocol: no successful runs, nothing recorded yet."]
    rate = _unparseable_rate(rows, unparseable_metric)
    lines = [
        f"split: {_by_row(rows, _split)}.",
        f"decoding: {_by_row(rows, _decoding)}.",
        f"unparseable answers: {rate or NOT_RECORDED}; rule: {_by_row(rows, _unparseable_rule)}.",
        f"prompt format: {_by_row(rows, _prompt)}.",
        f"images: {_by_row(rows, _images)}.",
        f"precision: {_by_row(rows, _precision)}.",
        f"optimiser: {_by_row(rows, _batch_lr)}.",
        f"environment: {_by_row(rows, fingerprint)}.",
    ]
    warning = environment_warning(rows)
    if warning is not None:
        lines.append(warning)
    return lines


def environment_warning(rows: list[RowRuns]) -> str | None:
    """A warning naming the rows of each environment when the runs do not share one."""
    seen = {fingerprint(result) for row in rows for result in row.results}
    if len(seen) < 2:
        return None
    return (
        f"{WARNING_PREFIX}: rows differ in environment (torch, CUDA or GPU); their differences "
        "may come from the software or hardware, not the ablation."
    )
