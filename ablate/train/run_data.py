"""The questions one run trains and evaluates on: loaded, encoded, counted.

Two steps, because they need different things: :func:`load_splits` needs only the data spec and
runs before the model is built (a bad data root fails in seconds, not after minutes of loading
weights); :func:`encode_splits` needs the model's tokenizer and visual-token count. The counts it
returns (truncated, dropped, placeholder images) go into the run's metrics, so a table row says
what its model actually saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.data.spec import DataSpec
from ablate.train.batches import EncodeStats, Example, encode_problems, trainable_examples

logger = logging.getLogger(__name__)


@dataclass
class RunData:
    """The run's splits: problems as loaded, examples as encoded, and the training samples.

    Attributes:
        root: the dataset folder the problems came from.
        problems: split -> problems (:mod:`ablate.data.scienceqa`'s records).
        examples: split -> encoded examples (filled by :func:`encode_splits`).
        train_examples: the training split's samples that have answer tokens to learn from.
        train_lengths: their token counts (the windows and micro-batch cuts read them).
        metrics: ``data/*`` counts for the run's record.
    """

    root: Path
    problems: dict[str, list[Any]]
    examples: dict[str, list[Example]] = field(default_factory=dict)
    train_examples: list[Example] = field(default_factory=list)
    train_lengths: list[int] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def load_splits(data: DataSpec) -> RunData:
    """Load the train, val and test problems of ``data`` (each split once).

    Raises:
        ValueError / FileNotFoundError: the data root is unset or lacks the split's files.
    """
    from ablate.data.scienceqa import load_scienceqa, resolve_dataset_root

    root = Path(resolve_dataset_root(data))
    problems = {
        split: load_scienceqa(
            root,
            split,
            source_format=data.source_format,
            image_placeholder=data.image_placeholder,
        )
        for split in dict.fromkeys((data.train_split, data.val_split, data.test_split))
    }
    return RunData(root=root, problems=problems)


def encode_splits(run_data: RunData, data: DataSpec, tokenizer: Any, n_visual: int) -> None:
    """Encode every split into the seed's token layout, in place; count what was cut.

    Raises:
        ValueError: the training split has no sample with an answer token left.
    """
    from ablate.data.encoding import build_layout
    from ablate.data.scienceqa import count_placeholders

    layout = build_layout(
        tokenizer,
        n_visual=n_visual,
        max_seq_len=data.max_seq_len,
        image_marker=data.image_marker,
        tokenize=data.tokenize,
    )
    stats: dict[str, EncodeStats] = {}
    for split, problems in run_data.problems.items():
        run_data.examples[split], stats[split] = encode_problems(
            problems, tokenizer, data.prompt, layout, drop_empty_because=data.drop_empty_because
        )
    train_stats = stats[data.train_split]
    if train_stats.truncated or train_stats.dropped:
        logger.warning(
            "%s: %d of %d sequences truncated to %d tokens, %d dropped (no answer left)",
            data.train_split,
            train_stats.truncated,
            train_stats.n,
            data.max_seq_len,
            train_stats.dropped,
        )
    run_data.train_examples = trainable_examples(run_data.examples[data.train_split])
    run_data.train_lengths = [len(e.input_ids) for e in run_data.train_examples]
    if not run_data.train_examples:
        raise ValueError(f"split {data.train_split!r} has no trainable sample")
    problems = run_data.problems
    run_data.metrics = {
        "data/truncated": float(train_stats.truncated),
        "data/dropped": float(train_stats.dropped),
        "data/prompts_truncated": float(sum(s.prompts_truncated for s in stats.values())),
        "data/n_train": float(len(run_data.train_examples)),
        "data/n_val": float(len(problems[data.val_split])),
        "data/n_test": float(len(problems[data.test_split])),
        "data/image_placeholder": float(data.image_placeholder),
        "data/placeholder_images": float(sum(count_placeholders(ps) for ps in problems.values())),
    }
