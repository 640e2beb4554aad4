"""The official-layout loader: the real-schema sample, the placeholder opt-in and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.data.problem import PLACEHOLDER_COLOR, PLACEHOLDER_SIZE, load_image
from ablate.data.scienceqa import (
    count_placeholders,
    load_scienceqa,
    resolve_dataset_root,
)
from ablate.data.spec import DataSpec, SyntheticSpec


def record(**overrides):
    base = {
        "question": "Which is a fruit?",
        "choices": ["apple", "stone"],
        "answer": 0,
        "hint": "",
        "image": None,
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "biology",
        "category": "Plants",
        "skill": "Identify fruits",
        "lecture": "Fruits grow on plants.",
        "solution": "An apple is a fruit.",
        "split": "train",
    }
    base.update(overrides)
    return base


def write_official(root: Path, problems: dict, splits: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    return root


def test_sample_splits_load_in_split_file_order_with_real_schema(scienceqa_sample):
    SAMPLE = scienceqa_sample
    splits = json.loads((SAMPLE / "pid_splits.json").read_text())
    for split, expected in (("train", 1041), ("val", 371), ("test", 361)):
        problems = load_scienceqa(SAMPLE, split, image_placeholder=True)
        assert len(problems) == expected
        assert [p.pid for p in problems] == [str(x) for x in splits[split]]
    test = load_scienceqa(SAMPLE, "test", image_placeholder=True)
    assert count_placeholders(test) == 167  # the sample README: 167 test problems have images
    assert {p.subject for p in test} == {"natural science", "social science", "language science"}
    assert all(0 <= p.answer < len(p.choices) for p in test)
    assert any(p.caption for p in test)  # captions.json is read


def test_sample_without_images_names_the_first_missing_image(scienceqa_sample):
    SAMPLE = scienceqa_sample
    test = json.loads((SAMPLE / "pid_splits.json").read_text())["test"]
    problems = json.loads((SAMPLE / "problems.json").read_text())
    first = next(str(pid) for pid in test if problems[str(pid)]["image"])
    expected = SAMPLE / "images" / "test" / first / "image.png"
    with pytest.raises(FileNotFoundError) as err:
        load_scienceqa(SAMPLE, "test")
    message = str(err.value)
    assert message.startswith(str(expected))
    assert "167 of split 'test'" in message and "image_placeholder" in message


def test_placeholder_image_is_documented_grey_and_real_images_load(tmp_path):
    root = write_official(
        tmp_path / "sqa",
        {"1": record(image="image.png"), "2": record(image="image.png"), "3": record()},
        {"train": ["1", "2", "3"]},
    )
    from PIL import Image

    (root / "images" / "train" / "2").mkdir(parents=True)
    Image.new("RGB", (5, 5), (1, 2, 3)).save(root / "images" / "train" / "2" / "image.png")
    p1, p2, p3 = load_scienceqa(root, "train", image_placeholder=True)
    assert p1.image_missing and not p2.image_missing and p3.image is None
    grey = load_image(p1)
    assert grey.size == (PLACEHOLDER_SIZE, PLACEHOLDER_SIZE)
    assert grey.getpixel((0, 0)) == PLACEHOLDER_COLOR
    assert load_image(p2).getpixel((0, 0)) == (1, 2, 3)
    assert load_image(p3) is None
    assert p1.has_image and p2.has_image and not p3.has_image


def test_missing_problems_file_is_named(tmp_path):
    root = tmp_path / "sqa"
    root.mkdir()
    (root / "pid_splits.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"problems\.json: missing"):
        load_scienceqa(root, "train", source_format="official")


def test_empty_folder_explains_both_layouts(tmp_path):
    with pytest.raises(FileNotFoundError, match="official layout.*parquet"):
        load_scienceqa(tmp_path, "train")


def test_bad_json_names_file_and_position(tmp_path):
    root = write_official(tmp_path / "sqa", {"1": record()}, {"train": ["1"]})
    (root / "problems.json").write_text('{"1": {"question": "x",,}}')
    with pytest.raises(ValueError, match=r"problems\.json: not valid JSON .*line 1, column"):
        load_scienceqa(root, "train")


def test_pid_in_splits_but_not_in_problems(tmp_path):
    root = write_official(tmp_path / "sqa", {"1": record()}, {"train": ["1", "77"]})
    with pytest.raises(ValueError, match=r"pid '77' of split 'train' is not in .*problems\.json"):
        load_scienceqa(root, "train")


@pytest.mark.parametrize("answer", [2, -1, "0", True])
def test_answer_index_out_of_range(tmp_path, answer):
    root = write_official(tmp_path / "sqa", {"1": record(answer=answer)}, {"train": ["1"]})
    with pytest.raises(ValueError, match=r"problem '1' has answer=.*allowed 0\.\.1"):
        load_scienceqa(root, "train")


def test_unknown_split_lists_the_splits_there(tmp_path):
    root = write_official(tmp_path / "sqa", {"1": record()}, {"train": ["1"], "val": []})
    with pytest.raises(ValueError, match=r"no split 'test'; the file has \['train', 'val'\]"):
        load_scienceqa(root, "test")


def test_missing_required_field(tmp_path):
    rec = record()
    del rec["choices"]
    root = write_official(tmp_path / "sqa", {"1": rec}, {"train": ["1"]})
    with pytest.raises(ValueError, match="problem '1' has no 'choices' field"):
        load_scienceqa(root, "train")


def test_resolve_root_needs_a_root_for_real_data():
    with pytest.raises(ValueError, match="data.root is not set"):
        resolve_dataset_root(DataSpec())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_dataset_root(DataSpec(root="/nonexistent/sqa"))


def test_resolve_root_generates_synthetic_data_in_the_cache_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE_DIR", str(tmp_path / "cache"))
    spec = DataSpec(dataset="synthetic", synthetic=SyntheticSpec(n_train=8, n_val=4, n_test=4))
    root = resolve_dataset_root(spec)
    assert root.parent.parent == tmp_path / "cache"
    stamp = (root / "problems.json").stat().st_mtime_ns
    assert resolve_dataset_root(spec) == root
    assert (root / "problems.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert len(load_scienceqa(root, "val")) == 4
    other = DataSpec(dataset="synthetic", synthetic=SyntheticSpec(n_train=8, n_val=4, seed=1))
    assert resolve_dataset_root(other) != root
