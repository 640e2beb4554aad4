"""The synthetic ScienceQA: official layout, deterministic, honest context kinds, all columns."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from ablate.data.prompts import build_prompt
from ablate.data.scienceqa import load_scienceqa
from ablate.data.spec import SyntheticSpec
from ablate.data.synthetic import COLORS, NAMES, write_synthetic_scienceqa
from ablate.evaluation.scoring import COLUMNS, accuracy_table

SPEC = SyntheticSpec(n_train=300, n_val=120, n_test=120, seed=3, image_size=32)


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic_scienceqa(tmp_path_factory.mktemp("syn") / "sqa", SPEC)


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
    again = write_synthetic_scienceqa(tmp_path / "again", SPEC)
    assert digest(again) == digest(dataset)
    other = write_synthetic_scienceqa(tmp_path / "other", SPEC.model_copy(update={"seed": 4}))
    assert digest(other)["problems.json"] != digest(dataset)["problems.json"]


def test_official_layout_and_split_sizes(dataset):
    for split, n in (("train", 300), ("val", 120), ("test", 120)):
        problems = load_scienceqa(dataset, split)  # no placeholder: every image exists
        assert len(problems) == n
        assert all(p.split == split for p in problems)
        for p in problems:
            if p.image is not None:
                assert p.image == dataset / "images" / split / p.pid / "image.png"
                assert Image.open(p.image).size == (64, 32)  # 2:1, see test_images_are_wide


def test_every_column_has_questions_in_every_split(dataset):
    for split in ("train", "val", "test"):
        problems = load_scienceqa(dataset, split)
        table = accuracy_table(problems, {})
        assert all(table[f"n_{col}"] > 0 for col in COLUMNS), (split, table)
        kinds = Counter((p.has_hint, p.has_image) for p in problems)
        assert len(kinds) == 4  # hint+image, hint only, image only, neither


def anonymise(question: str) -> str:
    for name in NAMES:
        question = question.replace(name, "NAME")
    return question


def test_context_kinds_are_honest(dataset):
    """Image and hint questions cannot be answered from the text that is left; facts can."""
    problems = load_scienceqa(dataset, "train")
    answers_given: dict[tuple, set[int]] = {}
    for p in problems:
        answers_given.setdefault(("text", p.has_image, p.question, p.hint), set()).add(p.answer)
    for p in problems:
        given_text = answers_given[("text", p.has_image, p.question, p.hint)]
        if p.has_image:  # question + hint leave the answer open: the picture decides
            assert len(given_text) > 1, p
        elif p.has_hint:  # the hint decides, the question alone does not
            assert len(given_text) == 1
            template = anonymise(p.question)
            same_question = {q.answer for q in problems if anonymise(q.question) == template}
            assert len(same_question) > 1, p
        else:  # no context: a fixed fact, the question alone decides
            assert len(given_text) == 1


def test_colour_questions_are_answerable_from_the_picture(dataset):
    problems = [p for p in load_scienceqa(dataset, "train") if p.question.startswith("What color")]
    assert len(problems) > 30
    names = list(COLORS)
    for p in problems:
        centre = Image.open(p.image).convert("RGB").getpixel((16, 16))  # the shape covers it
        nearest = min(
            range(len(names)),
            key=lambda i: sum((m - c) ** 2 for m, c in zip(centre, COLORS[names[i]], strict=True)),
        )
        assert p.choices[p.answer] == names[nearest]


def test_answers_are_spread_over_letters_within_templates(dataset):
    problems = load_scienceqa(dataset, "train")
    for template in ("What color is the shape in the picture?", "What is NAME's job?"):
        chosen = [p for p in problems if anonymise(p.question) == template]
        counts = Counter(p.answer for p in chosen)
        assert len(counts) == len(chosen[0].choices)
        assert min(counts.values()) >= 0.4 * max(counts.values())


def test_prompts_are_short(dataset):
    for p in load_scienceqa(dataset, "val"):
        pair = build_prompt(p)
        assert len(pair.prompt.split()) <= 45 and len(pair.target.split()) <= 10


def test_existing_folder_for_another_spec_is_refused(dataset, tmp_path):
    assert write_synthetic_scienceqa(dataset, SPEC) == dataset
    with pytest.raises(ValueError, match="holds synthetic data for"):
        write_synthetic_scienceqa(dataset, SPEC.model_copy(update={"n_val": 5}))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a synthetic ScienceQA folder"):
        write_synthetic_scienceqa(tmp_path / "busy", SPEC)


def test_images_are_wide_so_the_real_resize_is_exercised(dataset):
    """2:1 pictures by default: a crop would cut their sides, the direct resize keeps them."""
    sizes = {Image.open(p).size for p in (dataset / "images").rglob("image.png")}
    assert sizes == {(64, 32)}
