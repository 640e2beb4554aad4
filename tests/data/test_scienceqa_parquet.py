"""The Hugging Face parquet export loads into the same Problem fields."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from ablate.data.problem import load_image
from ablate.data.prompts import build_prompt
from ablate.data.scienceqa import load_scienceqa


def png_bytes(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def row(question, answer=0, image=None, hint=""):
    return {
        "image": {"bytes": image, "path": None} if image is not None else None,
        "question": question,
        "choices": ["yes", "no"],
        "answer": answer,
        "hint": hint,
        "task": "yes or no",
        "grade": "grade8",
        "subject": "social science",
        "topic": "civics",
        "category": "Government",
        "skill": "Read",
        "lecture": "L.",
        "solution": "S.",
    }


def write_export(root: Path, split_rows: dict[str, list[dict]]) -> Path:
    (root / "data").mkdir(parents=True)
    for split, rows in split_rows.items():
        pq.write_table(
            pa.Table.from_pylist(rows), root / "data" / f"{split}-00000-of-00001.parquet"
        )
    return root


def test_parquet_export_loads_with_images_hints_and_stable_pids(tmp_path):
    red = png_bytes((255, 0, 0))
    root = write_export(
        tmp_path / "hf",
        {
            "train": [row("t0"), row("t1", 1)],
            "validation": [row("v0", 1, image=red, hint="H."), row("v1")],
            "test": [row("x0")],
        },
    )
    val = load_scienceqa(root, "val")  # "val" finds the "validation" file
    assert [p.pid for p in val] == ["val-0", "val-1"]
    first = val[0]
    assert first.has_image and first.has_hint and first.answer == 1 and first.grade == "grade8"
    assert load_image(first).getpixel((0, 0)) == (255, 0, 0)
    assert not val[1].has_image and load_image(val[1]) is None
    assert build_prompt(first).prompt.startswith("Question: v0\nContext: H.\n")
    assert len(load_scienceqa(root, "train", source_format="parquet")) == 2


def test_pid_column_is_used_when_present(tmp_path):
    root = write_export(tmp_path / "hf", {"test": [{**row("q"), "pid": 4242}]})
    assert load_scienceqa(root, "test")[0].pid == "4242"


def test_parquet_errors_name_file_split_and_row(tmp_path):
    root = write_export(tmp_path / "hf", {"train": [row("a"), row("b", answer=5)]})
    with pytest.raises(ValueError, match=r"train-00000-of-00001\.parquet \(row 1\).*answer=5"):
        load_scienceqa(root, "train")
    with pytest.raises(FileNotFoundError, match=r"no parquet file for split 'test'.*\['train'\]"):
        load_scienceqa(root, "test")
