"""Load ScienceQA questions from its official on-disk layout (or the HF parquet export).

The official layout (lupantech/ScienceQA, ``data/scienceqa``)::

    problems.json      {pid: {question, choices, answer, hint, image, task, grade, subject,
                              topic, category, skill, lecture, solution, split}}
    pid_splits.json    {"train": [pid, ...], "val": [...], "test": [...], "minival": ...}
    captions.json      optional: {"captions": {pid: caption}}
    images/<split>/<pid>/image.png

Every problem is validated on load (answer index in range, split membership, images present) so
that a broken copy fails before training starts, with a message naming the file and the value.
Missing images are an error naming the first missing path; ``image_placeholder=True`` opts into
a documented blank image instead (see :data:`PLACEHOLDER_COLOR`), which the run records.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.json_input import read_json_file

if TYPE_CHECKING:
    from PIL import Image

    from ablate.data.spec import DataSpec

PROBLEMS_FILE = "problems.json"
SPLITS_FILE = "pid_splits.json"
CAPTIONS_FILE = "captions.json"
IMAGES_DIR = "images"
PLACEHOLDER_COLOR = (128, 128, 128)
"""A missing image, when the user opted in, is a mid-grey RGB square: no content, no bias."""
PLACEHOLDER_SIZE = 336
"""Side of the placeholder image; the vision transform resizes it like any other image."""

REQUIRED_KEYS = ("question", "choices", "answer")


@dataclass(frozen=True)
class Problem:
    """One ScienceQA question with everything prompts, images and scoring need.

    Attributes:
        pid: the problem id (a string, as in problems.json).
        question: the question text.
        choices: the answer options, in the dataset's order.
        answer: index of the correct option.
        hint: the text context ("" when none).
        image: path of the image, or None when the question has no image. For a missing image
            loaded with the placeholder option this is the path that was expected.
        subject: "natural science", "social science" or "language science".
        grade: "grade1" .. "grade12".
        topic, category, skill: ScienceQA's finer labels (kept for analysis).
        lecture, solution: the explanation text (QCM-ALE targets).
        split: the split the problem belongs to (the file's ``split`` field).
        caption: the official caption ("" without captions.json).
        task: "closed choice", "yes or no", ...
        image_missing: True when ``image`` does not exist and the placeholder stands in.
        image_bytes: encoded image (parquet export), used instead of ``image`` when set.
    """

    pid: str
    question: str
    choices: tuple[str, ...]
    answer: int
    hint: str
    image: Path | None
    subject: str
    grade: str
    topic: str = ""
    category: str = ""
    skill: str = ""
    lecture: str = ""
    solution: str = ""
    split: str = ""
    caption: str = ""
    task: str = ""
    image_missing: bool = False
    image_bytes: bytes | None = None

    @property
    def has_image(self) -> bool:
        """Whether the question has an image (the official IMG rule: ``image`` non-empty)."""
        return self.image is not None or self.image_bytes is not None

    @property
    def has_hint(self) -> bool:
        """Whether the question has a text context (the official TXT rule: ``hint`` non-empty)."""
        return bool(self.hint)


def load_image(problem: Problem) -> Image.Image | None:
    """The problem's image as RGB, the placeholder when it is missing, None without image.

    Args:
        problem: a loaded problem.
    """
    from io import BytesIO

    from PIL import Image

    if not problem.has_image:
        return None
    if problem.image_missing:
        return Image.new("RGB", (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), PLACEHOLDER_COLOR)
    if problem.image_bytes is not None:
        return Image.open(BytesIO(problem.image_bytes)).convert("RGB")
    assert problem.image is not None
    with Image.open(problem.image) as img:
        return img.convert("RGB")


def problem_from_record(
    pid: str,
    record: Mapping[str, Any],
    *,
    source: str,
    image: Path | None,
    split: str,
    caption: str = "",
    image_missing: bool = False,
    image_bytes: bytes | None = None,
) -> Problem:
    """Validate one problems.json-style record and build a :class:`Problem`.

    Args:
        pid: the problem id.
        record: the raw fields.
        source: file name for error messages.
        image: resolved image path (or None).
        split: the split the problem belongs to.
        caption: caption text, if any.
        image_missing: the placeholder stands in for ``image``.
        image_bytes: encoded image from a parquet export.
    """
    for key in REQUIRED_KEYS:
        if key not in record:
            raise ValueError(f"{source}: problem {pid!r} has no {key!r} field")
    choices = record["choices"]
    if not isinstance(choices, list | tuple) or len(choices) < 2:
        raise ValueError(
            f"{source}: problem {pid!r} has choices={choices!r}; expected a list of >= 2 options"
        )
    answer = record["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise ValueError(
            f"{source}: problem {pid!r} has answer={answer!r}, out of range for its "
            f"{len(choices)} choices (allowed 0..{len(choices) - 1})"
        )
    return Problem(
        pid=str(pid),
        question=str(record["question"]),
        choices=tuple(str(c) for c in choices),
        answer=answer,
        hint=str(record.get("hint") or ""),
        image=image,
        subject=str(record.get("subject") or ""),
        grade=str(record.get("grade") or ""),
        topic=str(record.get("topic") or ""),
        category=str(record.get("category") or ""),
        skill=str(record.get("skill") or ""),
        lecture=str(record.get("lecture") or ""),
        solution=str(record.get("solution") or ""),
        split=split,
        caption=caption,
        task=str(record.get("task") or ""),
        image_missing=image_missing,
        image_bytes=image_bytes,
    )


def load_official(root: Path, split: str, *, image_placeholder: bool = False) -> list[Problem]:
    """Load one split of the official layout, in pid_splits.json order.

    Args:
        root: the folder holding problems.json and pid_splits.json.
        split: a key of pid_splits.json ("train", "val", "test", "minival", ...).
        image_placeholder: replace missing images by the documented blank image.

    Raises:
        FileNotFoundError: a required file is missing, or an image is (naming the first one).
        ValueError: bad JSON, unknown split, a pid without a problem, an answer out of range.
    """
    problems = read_json_file(root / PROBLEMS_FILE, "the ScienceQA problems {pid: {...}}")
    splits = read_json_file(root / SPLITS_FILE, "the ScienceQA splits {split: [pid, ...]}")
    if not isinstance(problems, dict):
        raise ValueError(f"{root / PROBLEMS_FILE}: expected a JSON object {{pid: problem}}")
    if not isinstance(splits, dict):
        raise ValueError(f"{root / SPLITS_FILE}: expected a JSON object {{split: [pid, ...]}}")
    if split not in splits:
        raise ValueError(f"{root / SPLITS_FILE}: no split {split!r}; the file has {sorted(splits)}")
    captions: dict[str, str] = {}
    if (root / CAPTIONS_FILE).is_file():
        raw = read_json_file(
            root / CAPTIONS_FILE, 'the ScienceQA captions {"captions": {pid: text}}'
        )
        captions = dict(raw.get("captions", {})) if isinstance(raw, dict) else {}

    if not isinstance(splits[split], list):
        raise ValueError(
            f"{root / SPLITS_FILE}: split {split!r} is {splits[split]!r}; expected a list of pids"
        )
    out: list[Problem] = []
    first_missing: Path | None = None
    n_missing = 0
    for pid in splits[split]:
        pid = str(pid)
        record = problems.get(pid)
        if record is None:
            raise ValueError(
                f"{root / SPLITS_FILE}: pid {pid!r} of split {split!r} is not in "
                f"{root / PROBLEMS_FILE}"
            )
        if not isinstance(record, dict):
            raise ValueError(
                f"{root / PROBLEMS_FILE}: problem {pid!r} is {record!r}; expected a JSON object"
            )
        own_split = str(record.get("split") or split)
        image: Path | None = None
        missing = False
        if record.get("image"):
            image = root / IMAGES_DIR / own_split / pid / str(record["image"])
            if not image.is_file():
                missing = True
                n_missing += 1
                first_missing = first_missing or image
        out.append(
            problem_from_record(
                pid,
                record,
                source=str(root / PROBLEMS_FILE),
                image=image,
                split=own_split,
                caption=str(captions.get(pid, "")),
                image_missing=missing,
            )
        )
    if first_missing is not None and not image_placeholder:
        raise FileNotFoundError(
            f"{first_missing}: image missing ({n_missing} of split {split!r} are missing). "
            f"Put the official images under {root / IMAGES_DIR}/<split>/<pid>/image.png, or set "
            f"data.image_placeholder=true to use a blank grey image instead (recorded with the run)"
        )
    return out


def detect_source_format(root: Path) -> str:
    """``official`` when problems.json exists, ``parquet`` when parquet files do, else an error."""
    if (root / PROBLEMS_FILE).is_file():
        return "official"
    if root.is_dir() and any(root.rglob("*.parquet")):
        return "parquet"
    raise FileNotFoundError(
        f"{root}: no ScienceQA found; expected {PROBLEMS_FILE} + {SPLITS_FILE} (official layout) "
        f"or one parquet file per split (Hugging Face export)"
    )


def load_scienceqa(
    root: str | os.PathLike[str],
    split: str,
    *,
    source_format: str = "auto",
    image_placeholder: bool = False,
) -> list[Problem]:
    """Load one split of ScienceQA from either common distribution.

    Args:
        root: the dataset folder.
        split: "train", "val", "test" (or "minival", ... in the official layout).
        source_format: "auto", "official" or "parquet".
        image_placeholder: replace missing images by the documented blank image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: ScienceQA folder does not exist")
    fmt = detect_source_format(root) if source_format == "auto" else source_format
    if fmt == "official":
        return load_official(root, split, image_placeholder=image_placeholder)
    if fmt == "parquet":
        from ablate.data.scienceqa_parquet import load_parquet

        return load_parquet(root, split)
    raise ValueError(f"source_format={source_format!r}; allowed: auto, official, parquet")


def count_placeholders(problems: list[Problem]) -> int:
    """How many problems use the placeholder image (to record with the run)."""
    return sum(p.image_missing for p in problems)


def cache_dir() -> Path:
    """Where generated data lives: ``$ABLATE_CACHE_DIR`` or ``~/.cache/ablate``."""
    env = os.environ.get("ABLATE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ablate"


def resolve_dataset_root(data: DataSpec) -> Path:
    """The folder to load ``data`` from; synthetic data is generated there on first use.

    Synthetic data goes to ``data.root`` or to a cache folder named by a hash of the synthetic
    spec, so runs with the same spec share it and a changed spec never reuses stale files.
    """
    if data.dataset == "scienceqa":
        if not data.root:
            raise ValueError(
                "data.root is not set; point it at a ScienceQA folder (official layout with "
                "problems.json, or the Hugging Face parquet export)"
            )
        root = Path(data.root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"data.root={data.root!r}: folder does not exist")
        return root
    from ablate.data.synthetic import GENERATOR_VERSION, write_synthetic_scienceqa

    if data.root:
        root = Path(data.root).expanduser()
    else:
        # the generator version is in the key: a changed generator never reuses stale files
        text = GENERATOR_VERSION + data.synthetic.model_dump_json()
        key = hashlib.sha256(text.encode()).hexdigest()[:12]
        root = cache_dir() / "synthetic-scienceqa" / key
    return write_synthetic_scienceqa(root, data.synthetic)
