"""A small synthetic ScienceQA in the official on-disk layout, for the embedded tiny default.

The tiny default trains adapters between a frozen random-init vision tower and a frozen
random-init tiny LLM on two CPU cores in well under a minute, and must still *learn*. So the
questions are as learnable as they can be while keeping ScienceQA's three context kinds honest:

* image questions (IMG, no hint): the answer is only in the picture, e.g. "What color is the
  shape?" over a large solid-coloured shape. Choices are in a fixed order per template, so the
  model only has to map what it sees to a letter.
* image + hint questions (TXT and IMG overlap, as in the real data): the hint names the object,
  the picture gives the answer.
* text-context questions (TXT, no image): the answer follows only from the hint, through a cue
  word that is not among the options ("took the cup from the freezer" -> cold), so reading the
  hint is a bag-of-words feature a tiny frozen model can pick up.
* no-context questions (NO): fixed facts, answerable from the question alone.

Templates are spread over the three subjects and grades over both bands, so all eight columns of
the paper tables have questions. Texts are short (prompts of roughly 40-80 tokens); the lecture
is empty and the solution is the answer word ("Cold."), so QCM-ALE targets are about ten tokens
and the loss is not spent on explanation text the tiny model cannot use. Output is deterministic
in the :class:`~ablate.data.spec.SyntheticSpec` (byte-identical files for the same spec).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ablate.data.spec import SyntheticSpec

MARKER_FILE = "synthetic_spec.json"
GRADES = tuple(f"grade{i}" for i in range(1, 13))
NAMES = ("Ana", "Ben", "Kai", "Mia", "Omar", "Lena", "Raj", "Zoe")
Color = tuple[int, int, int]
COLORS: dict[str, Color] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
}
WARM: tuple[Color, ...] = ((225, 60, 25), (245, 140, 20))
COOL: tuple[Color, ...] = ((35, 90, 215), (25, 160, 170))


@dataclass(frozen=True)
class Item:
    """One generated question before it is written (the image is rendered separately)."""

    question: str
    choices: tuple[str, ...]
    answer: int
    hint: str
    subject: str
    topic: str
    skill: str
    image: Image.Image | None = None


Template = Callable[[random.Random, int], Item]


def jitter(rng: random.Random, color: Color, amount: int = 18) -> Color:
    """The colour shifted a little per channel, so images of one class are not identical."""
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in color)
    return (r, g, b)


def draw_shape(rng: random.Random, size: int, color: Color, background: Color) -> Image.Image:
    """A large circle or square (at least ~55% of the picture) of ``color``."""
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    margin = rng.randint(0, max(1, size // 8))
    box = (margin, margin, size - 1 - margin, size - 1 - margin)
    if rng.random() < 0.5:
        draw.ellipse(box, fill=color)
    else:
        draw.rectangle(box, fill=color)
    return img


def image_color(rng: random.Random, size: int) -> Item:
    """Natural science, image only: the colour of a big shape (4 choices, fixed order)."""
    names = tuple(COLORS)
    answer = rng.randrange(len(names))
    img = draw_shape(rng, size, jitter(rng, COLORS[names[answer]]), (235, 235, 235))
    return Item(
        "What color is the shape in the picture?", names, answer, "", "natural science",
        "physics", "Identify colors", img,
    )  # fmt: skip


def image_day_night(rng: random.Random, size: int) -> Item:
    """Social science, image only: a light sky with a sun or a dark sky with a moon."""
    answer = rng.randrange(2)
    day = ((135, 200, 240), (250, 220, 40))
    night = ((15, 20, 60), (235, 235, 235))
    sky, disc = day if answer == 0 else night
    img = Image.new("RGB", (size, size), jitter(rng, sky))
    r = size // 5
    cx, cy = rng.randint(r, size - r), rng.randint(r, size // 2)
    ImageDraw.Draw(img).ellipse((cx - r, cy - r, cx + r, cy + r), fill=disc)
    return Item(
        "Was this picture taken during the day or at night?", ("day", "night"), answer, "",
        "social science", "culture", "Read a picture", img,
    )  # fmt: skip


def image_warm_cool(rng: random.Random, size: int) -> Item:
    """Language science, image only: which adjective fits the picture's colours."""
    answer = rng.randrange(2)
    palette = WARM if answer == 0 else COOL
    img = draw_shape(rng, size, jitter(rng, rng.choice(palette)), jitter(rng, rng.choice(palette)))
    return Item(
        "Which word best describes the colors in the picture?", ("warm", "cool"), answer, "",
        "language science", "vocabulary", "Choose the describing word", img,
    )  # fmt: skip


def image_hint_object(rng: random.Random, size: int) -> Item:
    """Natural science, hint and image: the hint names the object, the picture gives its colour."""
    names = ("red", "green", "blue")
    answer = rng.randrange(len(names))
    thing = rng.choice(("ball", "box", "leaf", "cup"))
    img = draw_shape(rng, size, jitter(rng, COLORS[names[answer]]), (250, 250, 250))
    return Item(
        f"What color is the {thing}?", names, answer, f"The picture shows a {thing}.",
        "natural science", "physics", "Identify colors", img,
    )  # fmt: skip


def text_temperature(rng: random.Random, size: int) -> Item:
    """Natural science, hint only: the hint says where a thing was; hot or cold follows."""
    answer = rng.randrange(2)
    name, thing = rng.choice(NAMES), rng.choice(("pot", "stone", "spoon", "cup"))
    place = rng.choice((("stove", "oven", "fire"), ("freezer", "snow", "fridge"))[answer])
    return Item(
        f"Was the {thing} hot or cold?", ("hot", "cold"), answer,
        f"{name} took the {thing} from the {place}.", "natural science", "physics",
        "Compare temperatures",
    )  # fmt: skip


def text_job(rng: random.Random, size: int) -> Item:
    """Social science, hint only: where someone works tells their job (4 choices, fixed order)."""
    jobs = ("doctor", "farmer", "teacher", "baker")
    places = ("hospital", "farm", "school", "bakery")
    answer = rng.randrange(len(jobs))
    name = rng.choice(NAMES)
    return Item(
        f"What is {name}'s job?", jobs, answer, f"{name} works at the {places[answer]}.",
        "social science", "economics", "Identify jobs",
    )  # fmt: skip


def text_feeling(rng: random.Random, size: int) -> Item:
    """Language science, hint only: what someone did tells how they feel (3 choices)."""
    feelings = ("happy", "sad", "angry")
    actions = (("smiled", "laughed"), ("cried", "wept"), ("yelled", "shouted"))
    answer = rng.randrange(len(feelings))
    name = rng.choice(NAMES)
    return Item(
        f"How does {name} feel?", feelings, answer, f"{name} {rng.choice(actions[answer])}.",
        "language science", "reading", "Infer feelings",
    )  # fmt: skip


FACTS: tuple[tuple[str, str, tuple[str, ...], int], ...] = (
    ("natural science", "Which animal has feathers?", ("fish", "bird", "frog", "cow"), 1),
    ("natural science", "Which of these is a liquid?", ("rock", "wood", "water"), 2),
    ("natural science", "Which planet do we live on?", ("Mars", "Venus", "Jupiter", "Earth"), 3),
    ("natural science", "What do plants need to make food?", ("sunlight", "sand"), 0),
    ("social science", "Which of these is a continent?", ("Ohio", "Asia", "Paris", "Nile"), 1),
    ("social science", "How many days are in a week?", ("seven", "six", "five"), 0),
    ("social science", "Who helps sick people get well?", ("a baker", "a pilot", "a doctor"), 2),
    ("social science", "What do people use money for?", ("to buy things", "to sleep"), 0),
    ("language science", "Which word rhymes with cat?", ("dog", "sun", "cup", "hat"), 3),
    ("language science", "Which word is a verb?", ("blue", "run", "table", "soft"), 1),
    ("language science", "Which word is the opposite of hot?", ("warm", "cold"), 1),
    ("language science", "Which word starts with the letter b?", ("ball", "tree", "moon"), 0),
)


def no_context_fact(rng: random.Random, size: int) -> Item:
    """Any subject, no context: one of a fixed set of facts, answer fixed per question."""
    subject, question, choices, answer = rng.choice(FACTS)
    return Item(
        question, choices, answer, "", subject, "facts", "Recall a fact",
    )  # fmt: skip


TEMPLATES: tuple[tuple[Template, float], ...] = (
    (image_color, 0.15),
    (image_day_night, 0.10),
    (image_warm_cool, 0.10),
    (image_hint_object, 0.10),
    (text_temperature, 0.10),
    (text_job, 0.10),
    (text_feeling, 0.10),
    (no_context_fact, 0.25),
)
"""Templates and their shares: 45% with an image, 40% with a hint, 25% with neither."""


def generate_split(rng: random.Random, n: int, size: int) -> list[Item]:
    """``n`` questions drawn from :data:`TEMPLATES` by their shares."""
    funcs = [t for t, _ in TEMPLATES]
    weights = [w for _, w in TEMPLATES]
    return [rng.choices(funcs, weights)[0](rng, size) for _ in range(n)]


def render_dataset(out: Path, spec: SyntheticSpec) -> None:
    """Write problems.json, pid_splits.json and images/ for ``spec`` into ``out``."""
    problems: dict[str, dict[str, object]] = {}
    splits: dict[str, list[str]] = {}
    pid = 0
    for index, (split, n) in enumerate(
        (("train", spec.n_train), ("val", spec.n_val), ("test", spec.n_test))
    ):
        rng = random.Random(spec.seed * 1_000_003 + index)
        splits[split] = []
        for item in generate_split(rng, n, spec.image_size):
            pid += 1
            key = str(pid)
            splits[split].append(key)
            problems[key] = {
                "question": item.question,
                "choices": list(item.choices),
                "answer": item.answer,
                "hint": item.hint,
                "image": "image.png" if item.image is not None else None,
                "task": "closed choice",
                "grade": rng.choice(GRADES),
                "subject": item.subject,
                "topic": item.topic,
                "category": item.topic.capitalize(),
                "skill": item.skill,
                "lecture": "",
                "solution": item.choices[item.answer].capitalize() + ".",
                "split": split,
            }
            if item.image is not None:
                folder = out / "images" / split / key
                folder.mkdir(parents=True)
                item.image.save(folder / "image.png", format="PNG", optimize=False)
    (out / "problems.json").write_text(json.dumps(problems, indent=1) + "\n", encoding="utf-8")
    (out / "pid_splits.json").write_text(json.dumps(splits, indent=1) + "\n", encoding="utf-8")
    (out / MARKER_FILE).write_text(spec.model_dump_json(indent=1) + "\n", encoding="utf-8")


def write_synthetic_scienceqa(root: str | os.PathLike[str], spec: SyntheticSpec) -> Path:
    """Generate the synthetic dataset at ``root`` unless it is already there for ``spec``.

    The data is rendered into a temporary sibling folder and renamed into place, so concurrent
    runs of a sweep never see a half-written dataset; the loser of a race keeps the winner's
    (identical) copy.

    Args:
        root: target folder; must be absent, or hold a synthetic dataset made from ``spec``.
        spec: sizes, seed and image size.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    marker = root / MARKER_FILE
    if marker.is_file():
        found = SyntheticSpec.model_validate_json(marker.read_text(encoding="utf-8"))
        if found == spec:
            return root
        raise ValueError(
            f"{root}: holds synthetic data for {found.model_dump()}, not {spec.model_dump()}; "
            f"choose another data.root or delete the folder"
        )
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root}: exists and is not a synthetic ScienceQA folder; not touching it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        render_dataset(tmp, spec)
        if root.exists():
            root.rmdir()  # empty (checked above)
        os.replace(tmp, root)
    except OSError:
        if not marker.is_file():  # not a lost race: a real failure
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
