"""Per-question prediction files: the run's own JSONL, and scoring any predictions file.

A run stores one JSON line per question (:class:`PredictionRecord`): pid, predicted index, raw
output, whether it parsed, and whether it is correct, so any two runs can be compared question by
question (paired tests) and re-scored without the model.

:func:`load_predictions` reads the three forms people have:

* ``{pid: index}`` JSON (index may be null);
* the official / LaVIN form ``{"results": {pid: index}, ...}``;
* JSONL, one object per line with ``pid`` (or LLaVA's ``question_id``) and either ``pred`` (an
  index or null) or the raw output in ``raw`` / ``text`` / ``output``, parsed with
  :func:`~ablate.evaluation.answers.parse_answer`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablate.data.scienceqa import Problem, load_scienceqa
from ablate.evaluation.answers import parse_answer
from ablate.evaluation.scoring import COLUMNS, accuracy_table
from ablate.store.files import write_atomic

RAW_KEYS = ("raw", "text", "output")
PID_KEYS = ("pid", "question_id")


@dataclass(frozen=True)
class PredictionRecord:
    """One evaluated question, as stored with the run (one JSON line).

    Attributes:
        pid: the problem id.
        pred: the index scored (after the unparseable policy), or None (counted wrong).
        raw: the generated text.
        parsed: whether "The answer is X." was found in ``raw`` with X a valid option.
        correct: whether ``pred`` equals the answer.
    """

    pid: str
    pred: int | None
    raw: str
    parsed: bool
    correct: bool


def write_predictions_jsonl(
    path: str | os.PathLike[str], records: Iterable[PredictionRecord]
) -> int:
    """Write records as JSONL (atomically: temp file then rename); returns how many."""
    lines = [json.dumps(asdict(record), ensure_ascii=False) + "\n" for record in records]
    write_atomic(Path(path), "".join(lines))
    return len(lines)


@dataclass(frozen=True)
class LoadedPredictions:
    """Predictions read from a file, with how many raw outputs did not parse."""

    predictions: dict[str, int | None]
    n_unparseable: int
    form: str


def as_index(value: Any, where: str) -> int | None:
    """An index from an int, a digit string or null; anything else is an error naming it."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}: prediction {value!r} is not an option index")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(f"{where}: prediction {value!r} is not an option index (int or null)")


def read_jsonl(path: Path, problems: Mapping[str, Problem] | None) -> LoadedPredictions:
    """Read the JSONL form; raw outputs are parsed with the question's number of choices."""
    preds: dict[str, int | None] = {}
    unparseable = 0
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
        pid_key = next((k for k in PID_KEYS if isinstance(obj, dict) and k in obj), None)
        if pid_key is None:
            raise ValueError(f"{where}: expected an object with 'pid' (or 'question_id')")
        pid = str(obj[pid_key])
        if "pred" in obj:
            preds[pid] = as_index(obj["pred"], where)
            if obj.get("parsed") is False:
                unparseable += 1
            continue
        raw_key = next((k for k in RAW_KEYS if k in obj), None)
        if raw_key is None:
            raise ValueError(f"{where}: expected 'pred' or a raw output in one of {RAW_KEYS}")
        problem = problems.get(pid) if problems is not None else None
        n_choices = len(problem.choices) if problem is not None else None
        pred = parse_answer(str(obj[raw_key]), n_choices)
        unparseable += pred is None
        preds[pid] = pred
    return LoadedPredictions(preds, unparseable, "jsonl")


def read_predictions(
    path: str | os.PathLike[str], problems: Mapping[str, Problem] | None = None
) -> LoadedPredictions:
    """Read any supported predictions file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: predictions file does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return read_jsonl(path, problems)
    if isinstance(obj, dict) and ("pid" in obj or "question_id" in obj):
        return read_jsonl(path, problems)  # a one-line JSONL file
    if isinstance(obj, dict) and isinstance(obj.get("results"), dict):
        obj, form = obj["results"], "official"
    elif isinstance(obj, dict):
        form = "mapping"
    else:
        raise ValueError(
            f'{path}: expected {{pid: index}}, {{"results": {{pid: index}}}} or JSONL lines'
        )
    preds = {str(pid): as_index(v, f"{path}: pid {pid!r}") for pid, v in obj.items()}
    return LoadedPredictions(preds, 0, form)


def load_predictions(
    path: str | os.PathLike[str], problems: Mapping[str, Problem] | None = None
) -> dict[str, int | None]:
    """Map pid -> predicted index (None: unparseable) from any supported predictions file.

    Args:
        path: the file.
        problems: pid -> problem, used to range-check parsed raw outputs (optional).
    """
    return read_predictions(path, problems).predictions


@dataclass(frozen=True)
class ScoreReport:
    """Accuracy of one predictions file on one split, with everything that was off."""

    split: str
    table: dict[str, float]
    n_questions: int
    n_predictions: int
    n_missing: int
    n_extra: int
    n_unparseable: int
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> dict[str, float]:
        """Percent accuracy per official column (NaN for an empty group)."""
        return {col: self.table[col] for col in COLUMNS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (NaN written as null)."""
        cols = {k: (None if math.isnan(v) else round(v, 4)) for k, v in self.columns.items()}
        return {
            "split": self.split,
            "columns": cols,
            "counts": {col: int(self.table[f"n_{col}"]) for col in COLUMNS},
            "n_questions": self.n_questions,
            "n_predictions": self.n_predictions,
            "n_missing": self.n_missing,
            "n_extra": self.n_extra,
            "n_unparseable": self.n_unparseable,
            "source": self.source,
        }

    def to_markdown(self) -> str:
        """The paper-style table plus a line on missing, extra and unparseable answers."""
        head = "| " + " | ".join(COLUMNS) + " |"
        rule = "|" + "|".join("---:" for _ in COLUMNS) + "|"
        vals = "| " + " | ".join(fmt_percent(self.table[c]) for c in COLUMNS) + " |"
        counts = "| " + " | ".join(str(int(self.table[f"n_{c}"])) for c in COLUMNS) + " |"
        lines = [head, rule, vals, counts, ""]
        lines.append(
            f"split {self.split}: {self.n_questions} questions, {self.n_predictions} predictions; "
            f"{self.n_missing} missing (scored wrong), {self.n_unparseable} unparseable, "
            f"{self.n_extra} predictions for pids outside the split (ignored)"
        )
        lines.extend(self.notes)
        return "\n".join(lines)


def fmt_percent(value: float) -> str:
    """Two decimals, as the official script prints; "-" for an empty group."""
    return "-" if math.isnan(value) else f"{value:.2f}"


def score_predictions(
    problems: list[Problem], loaded: LoadedPredictions, split: str, source: str = ""
) -> ScoreReport:
    """Score already-loaded predictions against ``problems``."""
    pids = {p.pid for p in problems}
    preds = loaded.predictions
    table = accuracy_table(problems, preds)
    return ScoreReport(
        split=split,
        table=table,
        n_questions=len(problems),
        n_predictions=len(preds),
        n_missing=len(pids - set(preds)),
        n_extra=len(set(preds) - pids),
        n_unparseable=loaded.n_unparseable,
        source=source,
    )


def score_predictions_file(
    path: str | os.PathLike[str],
    data_root: str | os.PathLike[str],
    split: str = "test",
    *,
    source_format: str = "auto",
) -> ScoreReport:
    """Load ``split`` of the dataset at ``data_root`` and score the predictions file at ``path``.

    Images are not needed to score, so missing images are not an error here.
    """
    problems = load_scienceqa(data_root, split, source_format=source_format, image_placeholder=True)
    by_pid = {p.pid: p for p in problems}
    loaded = read_predictions(path, by_pid)
    return score_predictions(problems, loaded, split, source=str(path))
