"""The ``data`` section of a run spec: which ScienceQA copy, which prompt, which splits.

No torch here: specs are validated by the CLI and the orchestrator, which must stay light.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.spec.base import SpecModel, nonsemantic


class SyntheticSpec(SpecModel):
    """Size and seed of the synthetic ScienceQA twin used by the embedded tiny default.

    The generator is deterministic in these fields, so they are all semantic: two runs with the
    same synthetic spec train and evaluate on byte-identical data.
    """

    n_train: int = Field(600, ge=1)
    """Number of training questions."""
    n_val: int = Field(150, ge=1)
    """Number of validation questions."""
    n_test: int = Field(150, ge=1)
    """Number of test questions."""
    seed: int = 0
    """Seed of the generator (independent of the training seed)."""
    image_size: int = Field(64, ge=8, le=1024)
    """Height of the PNG images, in pixels."""
    aspect: float = Field(2.0, ge=0.25, le=8.0)
    """Width / height of the images: wide by default, like many ScienceQA diagrams, so the tiny
    default exercises the real resize on non-square pictures."""


class DataSpec(SpecModel):
    """Where the questions come from and how they are turned into prompts."""

    dataset: Literal["scienceqa", "synthetic"] = "scienceqa"
    """``scienceqa``: a real copy at ``root``; ``synthetic``: generated on first use."""
    root: str | None = nonsemantic()
    """ScienceQA folder (official layout or HF parquet export); for synthetic data, where to
    write it (default: a cache folder keyed by the synthetic spec)."""
    source_format: Literal["auto", "official", "parquet"] = "auto"
    """``official``: problems.json + pid_splits.json + images/; ``parquet``: the Hugging Face
    export (one parquet per split); ``auto``: official if problems.json exists, else parquet."""
    prompt: Literal["qcm-ale", "cqm-a"] = "qcm-ale"
    """LaVIN's QCM-ALE (question, context, options -> answer, lecture, explanation) or LLaVA's
    CQM-A (context, question, options -> answer)."""
    max_seq_len: int = Field(512, ge=8)
    """The whole LLM input (u_m, BOS, marker, visual tokens, prompt, target, EOS) is cut to this
    length on the right, as the seed code does."""
    image_marker: bool = True
    """The seed's layout: ``"Image: "`` before the visual tokens and ``"Image: N/A"`` for
    text-only questions (LaVIN ``engine.py``); False drops both markers."""
    tokenize: Literal["joint", "split"] = "joint"
    """``joint``: prompt and target tokenized as one string, the prompt's own length masked (the
    seed's ``util/datasets.py``); ``split``: tokenized apart and concatenated."""
    drop_empty_because: bool = False
    """The seed keeps a dangling "BECAUSE:" when a problem has neither lecture nor solution (its
    code meant to drop it but assigns the result to an unused variable); True drops it."""
    train_split: str = "train"
    """Split the adapters are trained on."""
    val_split: str = "val"
    """Split used for validation accuracy during / after training."""
    test_split: str = "test"
    """Split reported in the paper tables."""
    image_placeholder: bool = False
    """Opt-in: a missing image becomes a documented blank (mid-grey) image instead of an error.
    It changes what the model sees, so it is part of the run id and recorded with the run."""
    synthetic: SyntheticSpec = SyntheticSpec()
    """Generator settings, used when ``dataset`` is ``synthetic``."""
