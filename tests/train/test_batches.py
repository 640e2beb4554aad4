import pytest
import torch

from ablate.data.encoding import IGNORE_INDEX
from ablate.data.scienceqa import load_scienceqa
from ablate.model.twins import build_twin_tokenizer
from ablate.train.batches import (
    collate_prompts,
    collate_train,
    encode_problems,
    epoch_batches,
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_twin_tokenizer()


@pytest.fixture(scope="module")
def problems(scienceqa_sample):
    return load_scienceqa(scienceqa_sample, "val", image_placeholder=True)[:40]


def test_labels_cover_answer_tokens_and_eos_only(tokenizer, problems):
    examples, stats = encode_problems(problems, tokenizer, "qcm-ale", 4096)
    assert stats.truncated == 0 and stats.dropped == 0
    for example in examples:
        n_prompt = len(example.prompt_ids)
        assert example.input_ids[:n_prompt] == example.prompt_ids
        assert example.input_ids[0] == tokenizer.bos_token_id
        assert example.input_ids[-1] == tokenizer.eos_token_id
        assert all(label == IGNORE_INDEX for label in example.labels[:n_prompt])
        assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    target = tokenizer.decode([t for t in examples[0].labels if t != IGNORE_INDEX])
    assert target.lstrip().startswith("The answer is")


def test_truncation_is_counted_and_prompts_keep_their_end(tokenizer, problems):
    examples, stats = encode_problems(problems, tokenizer, "qcm-ale", 48)
    assert stats.truncated > 0
    assert all(len(e.input_ids) <= 48 and len(e.prompt_ids) <= 48 for e in examples)
    full, _ = encode_problems(problems, tokenizer, "qcm-ale", 4096)
    for short, long in zip(examples, full, strict=True):
        assert short.prompt_ids[0] == tokenizer.bos_token_id
        assert short.prompt_ids[-3:] == long.prompt_ids[-3:]  # "Response:" survives
    assert stats.dropped == sum(all(lab == IGNORE_INDEX for lab in e.labels) for e in examples)


def test_epoch_batches_deterministic_complete_and_length_grouped():
    lengths = [
        int(x) for x in torch.randint(5, 500, (1000,), generator=torch.Generator().manual_seed(0))
    ]
    a = epoch_batches(lengths, 8, seed=3, epoch=1, length_grouped=True)
    b = epoch_batches(lengths, 8, seed=3, epoch=1, length_grouped=True)
    c = epoch_batches(lengths, 8, seed=3, epoch=2, length_grouped=True)
    d = epoch_batches(lengths, 8, seed=4, epoch=1, length_grouped=True)
    assert a == b and a != c and a != d
    assert sorted(i for batch in a for i in batch) == list(range(1000))

    def padding(batches):
        return sum(
            len(bt) * max(lengths[i] for i in bt) - sum(lengths[i] for i in bt) for bt in batches
        )

    plain = epoch_batches(lengths, 8, seed=3, epoch=1, length_grouped=False)
    assert padding(a) < 0.2 * padding(plain)


def test_collate_pads_right_for_training_and_left_for_generation(tokenizer, problems):
    examples, _ = encode_problems(problems[:4], tokenizer, "qcm-ale", 4096)

    def loader(problem):
        return torch.zeros(3, 8, 8)

    pad = tokenizer.pad_token_id
    batch = collate_train(examples, pad, loader)
    lengths = [len(e.input_ids) for e in examples]
    assert batch["input_ids"].shape == (4, max(lengths))
    for row, n in enumerate(lengths):
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (max(lengths) - n)
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()
        assert batch["input_ids"][row, :n].tolist() == list(examples[row].input_ids)
    prompts = collate_prompts(examples, pad, loader)
    width = max(len(e.prompt_ids) for e in examples)
    for row, example in enumerate(examples):
        n = len(example.prompt_ids)
        assert prompts["input_ids"][row, width - n :].tolist() == list(example.prompt_ids)
        assert prompts["attention_mask"][row].tolist() == [0] * (width - n) + [1] * n
    assert batch["has_image"].tolist() == [e.has_image for e in examples]
    if any(e.has_image for e in examples):
        assert batch["images"].shape == (4, 3, 8, 8)
    else:
        assert batch["images"] is None
