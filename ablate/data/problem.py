"""One ScienceQA question as every layer reads it, whatever file it came from.

:class:`Problem` is what the loaders build (:mod:`ablate.data.scienceqa` from the official
layout, :mod:`ablate.data.scienceqa_parquet` from the HF export), prompts format, the image cache
decodes (:func:`load_image`) and scoring groups. :func:`problem_from_record` validates one
``problems.json``-style record the same way for both formats, so a broken copy fails on load with
a message naming the file, the problem and the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

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
