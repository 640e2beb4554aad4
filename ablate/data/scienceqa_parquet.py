"""Load the Hugging Face parquet export of ScienceQA (derek-thomas/ScienceQA style).

That export has one parquet file per split (``data/train-00000-of-00001-*.parquet``,
``validation-*``, ``test-*``, or simply ``train.parquet`` ...) with the columns of problems.json
plus the image inlined: ``image`` (``{"bytes": ..., "path": ...}`` or null), ``question``,
``choices``, ``answer``, ``hint``, ``task``, ``grade``, ``subject``, ``topic``, ``category``,
``skill``, ``lecture``, ``solution``.

The export has no problem ids. A ``pid`` column is used when present; otherwise pids are
``"{split}-{row}"`` (row order of the file). Those are stable for one copy of the export, so runs,
predictions and scores made from it agree, but they are not the official numeric pids: score
official-format predictions against the official layout.
"""

from __future__ import annotations

from pathlib import Path

from ablate.data.problem import Problem, problem_from_record

SPLIT_ALIASES = {"val": ("val", "validation"), "validation": ("validation", "val")}


def split_files(root: Path, split: str) -> list[Path]:
    """The parquet files of ``split`` under ``root`` (sharded files in name order).

    Raises:
        FileNotFoundError: none found (the message lists the splits that were found).
    """
    names = SPLIT_ALIASES.get(split, (split,))
    files = sorted(root.rglob("*.parquet"))
    chosen = [
        f
        for f in files
        if any(
            f.stem == n or f.stem.startswith(f"{n}-") or f.stem.startswith(f"{n}_") for n in names
        )
    ]
    if not chosen:
        found = sorted({f.stem.split("-")[0].split("_")[0] for f in files})
        raise FileNotFoundError(
            f"{root}: no parquet file for split {split!r} (looked for {', '.join(names)}"
            f"[-*].parquet); found splits {found}"
        )
    return chosen


def load_parquet(root: Path, split: str) -> list[Problem]:
    """Load one split of the parquet export, in file and row order.

    Args:
        root: folder holding the parquet files (searched recursively).
        split: "train", "val" (or "validation"), "test".
    """
    import pyarrow.parquet as pq

    out: list[Problem] = []
    row = 0
    for path in split_files(root, split):
        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for a broken file
            raise ValueError(f"{path}: not a readable parquet file ({err})") from err
        missing = [c for c in ("question", "choices", "answer") if c not in table.column_names]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {missing}; expected the ScienceQA export columns "
                f"question, choices, answer, hint, image, subject, grade, ..."
            )
        for record in table.to_pylist():
            pid = str(record["pid"]) if record.get("pid") is not None else f"{split}-{row}"
            image = record.get("image")
            data = image.get("bytes") if isinstance(image, dict) else image
            if data is not None and not isinstance(data, bytes):
                raise ValueError(f"{path}: row {row} has an image that is not encoded bytes")
            out.append(
                problem_from_record(
                    pid,
                    record,
                    source=f"{path} (row {row})",
                    image=None,
                    split=split,
                    image_bytes=data or None,
                )
            )
            row += 1
    return out
