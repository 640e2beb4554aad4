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
a documented blank image instead (see :data:`ablate.data.problem.PLACEHOLDER_COLOR`), which the
run records.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ablate.data.problem import Problem, problem_from_record
from ablate.json_input import read_json_file

if TYPE_CHECKING:
    from ablate.data.spec import DataSpec

PROBLEMS_FILE = "problems.json"
SPLITS_FILE = "pid_splits.json"
CAPTIONS_FILE = "captions.json"
IMAGES_DIR = "images"


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
            from ablate.errors import ConfigError

            raise ConfigError(
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
