"""Tiny twins: small, seeded stand-ins for the real backbones, saved in the real formats.

A twin has the real classes (``LlamaForCausalLM``, open_clip ``VisionTransformer``) at a few layers
and a small width, so every code path (saving, loading, quantising, adapting) runs on a CPU in
seconds. Twins are materialised on first use into ``$ABLATE_TWIN_DIR`` (default
``~/.cache/ablate/twins``) from a fixed seed, written to a temporary folder and renamed into place
so two workers never see half a twin, and then loaded back through the same loading code as real
weights (:mod:`ablate.model.llm`, :mod:`ablate.model.vision`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

TWIN_VERSION = "v2"  # v2: LLM final norm scaled x8; vision twins seeded by name
TWIN_SEED = 1234

# A small embedded corpus: English/science words and the ScienceQA prompt templates, so the twin
# tokenizer splits prompts into sensible pieces. Deterministic: the BPE trainer sees it in order.
_CORPUS = """
Question: Which of these states is farthest north? Context: N/A Options: (A) West Virginia (B)
Louisiana (C) Arizona (D) Oklahoma Response: The answer is A. BECAUSE: Maps have four cardinal
directions, or main directions. Those directions are north, south, east, and west.
Question: Identify the question that Tom's experiment can best answer. Context: The passage below
describes an experiment. Options: (A) Do ping pong balls stop rolling along the ground sooner after
being launched from a 30 angle or a 45 angle? (B) Do ping pong balls travel farther when launched
from a 30 angle compared to a 45 angle? Response: The answer is B. BECAUSE: Experiments can be
designed to answer specific questions.
Question: Which word would you find on a dictionary page? Context: N/A Options: (A) cattle (B)
cell (C) chemistry Response: The answer is C. BECAUSE: Guide words appear on each page of a
dictionary. They tell you the first word and last word on the page.
Question: What is the name of the colony shown? Context: Image: N/A Options: (A) Maryland (B) New
Hampshire (C) Rhode Island (D) Vermont Response: The answer is B. BECAUSE: The colony is New
Hampshire. During the colonial era, New Hampshire and New York both claimed the territory.
Question: Which tense does the sentence use? Options: (A) past tense (B) present tense (C) future
tense Response: The answer is A. BECAUSE: Present tense verbs tell you about something that is
happening now. Past tense verbs tell you about something that has already happened.
Question: Is the following trait inherited or acquired? Context: Image: N/A Options: (A) acquired
(B) inherited Response: The answer is B. BECAUSE: Organisms, including people, have both inherited
and acquired traits. Inherited traits are passed from biological parents to their offspring.
Question: Compare the motion of two ships. Which ship was moving at a higher speed? Options: (A) a
ship that moved 200 kilometers in 10 hours (B) a ship that moved 165 kilometers in 10 hours
Response: The answer is A. BECAUSE: An object's speed tells you how fast the object is moving.
Speed depends on both distance and time. Distance tells you how far the object has moved.
Question: Select the solid. Options: (A) rain (B) water in a fishbowl (C) hammer Response: The
answer is C. BECAUSE: Solid, liquid, and gas are states of matter. Matter is anything that takes
up space. A solid has a size and shape of its own.
Question: Which material is this spatula made of? Options: (A) rubber (B) cotton Response: The
answer is A. BECAUSE: A material is a type of matter. Wood, glass, metal, and plastic are common
materials. Some objects are made of just one material.
Question: Which animal's mouth is also adapted for bottom feeding? Context: Sturgeons eat
invertebrates, plants, and small fish. Options: (A) armored catfish (B) discus Response: The answer
is A. BECAUSE: An adaptation is an inherited trait that helps an organism survive or reproduce.
Magnets can pull or push on each other without touching. Energy, force, gravity, temperature,
weather, climate, ecosystem, photosynthesis, cell, molecule, atom, element, compound, mixture,
solution, chemical change, physical change, evaporation, condensation, volcano, earthquake, planet,
moon, sun, star, orbit, mammal, reptile, amphibian, bird, fish, insect, plant, seed, root, leaf,
flower, fruit, habitat, food chain, predator, prey, population, economics, supply, demand, map,
continent, ocean, river, mountain, desert, forest, grammar, noun, verb, adjective, sentence, poem,
figurative language, punctuation, 0 1 2 3 4 5 6 7 8 9 10 100 1000 kilograms grams meters liters.
"""


def twin_root() -> Path:
    """Folder the twins live in: ``$ABLATE_TWIN_DIR`` or ``~/.cache/ablate/twins``."""
    root = os.environ.get("ABLATE_TWIN_DIR") or str(Path.home() / ".cache" / "ablate" / "twins")
    return Path(root).expanduser()


def materialise(name: str, write: Callable[[Path], None]) -> Path:
    """Return ``<twin_root>/<name>-<version>``, writing it once with ``write(tmp_dir)``.

    The folder is written under a temporary name and renamed into place: a reader sees a complete
    twin or none, and when two workers race, the loser's copy is discarded.
    """
    final = twin_root() / f"{name}-{TWIN_VERSION}"
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_twin_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer trained on the embedded corpus, as a transformers fast tokenizer.

    Like LLaMA's tokenizer it adds BOS (and not EOS) when ``add_special_tokens`` is on.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.split("\n"), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="right",
    )


def write_llm_twin(preset_config: dict, out: Path) -> None:
    """Write a random-init ``LlamaForCausalLM`` twin and its tokenizer with ``save_pretrained``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_twin_tokenizer()
    config = LlamaConfig(
        **preset_config,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        torch.manual_seed(TWIN_SEED)
        model = LlamaForCausalLM(config)
        with torch.no_grad():
            # A pretrained LM is confident; a random 0.02-std head reading a normalised state is
            # not (no token gets past ~1%), and a frozen twin then cannot learn to answer.
            model.model.norm.weight.mul_(8.0)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def register_vision_twin_config(model_name: str, config: dict) -> None:
    """Register an open_clip model config under ``model_name`` (idempotent)."""
    from open_clip.factory import _MODEL_CONFIGS

    _MODEL_CONFIGS.setdefault(model_name, config)


def write_vision_twin(model_name: str, file_name: str, key_prefix: str, out: Path) -> None:
    """Write a random-init open_clip CLIP twin's full state dict (text tower included) to a file.

    ``key_prefix`` mimics the real checkpoint's format (ALIP: ``module.``).
    """
    import torch

    from ablate.model.vision import VisionPreset, _open_clip_model

    with torch.random.fork_rng(devices=[]):  # the caller's RNG stream is left untouched
        # seeded by name: twins of different towers (DIHT, ALIP) are different networks
        torch.manual_seed(TWIN_SEED + zlib.crc32(model_name.encode()) % 10_000)
        clip = _open_clip_model(VisionPreset("twin", model_name, False, 0, "open_clip"))
    state = {f"{key_prefix}{k}": v for k, v in clip.state_dict().items()}
    torch.save(state, out / file_name)
