"""Twins saved in the real formats load back through the real loading code; clear errors."""

import pytest
import torch
from PIL import Image

from ablate.model.build import model_record
from ablate.model.llm import llm_config, load_llm, twin_llm_dir
from ablate.model.spec import ModelSpec
from ablate.model.twins import build_twin_tokenizer
from ablate.model.vision import (
    get_vision_preset,
    load_vision_tower,
    read_state_dict,
    tap_indices,
    twin_vision_file,
)


def test_llm_twin_is_a_transformers_directory_with_tokenizer(twin_dir):
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = twin_llm_dir("tiny-llama2")
    assert path.parent == twin_dir
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in path.iterdir()
    }
    tok = AutoTokenizer.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path)
    assert model.config.hidden_size == 128 and model.config.num_hidden_layers == 4
    assert model.config.rms_norm_eps == 1e-5 and model.config.max_position_embeddings == 4096
    assert llm_config("tiny-llama").rms_norm_eps == 1e-6
    ids = tok("Question: Which word? Response: The answer is A.").input_ids
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    assert model.config.vocab_size == len(tok)


def test_twin_tokenizer_is_the_real_llama2_sentencepiece_with_pad_unk():
    """The twins tokenize as the 7B runs do: SentencePiece pieces, BOS only, pad = unk."""
    a = build_twin_tokenizer()
    assert len(a) == 32000 and a.pad_token_id == a.unk_token_id == 0
    text = "Context: N/A Options: (A) rain (B) hammer Response: The answer is B. BECAUSE: solid"
    ids = a(text).input_ids
    assert ids[0] == a.bos_token_id and a.eos_token_id not in ids
    assert a.decode(ids, skip_special_tokens=True) == text
    assert a.convert_ids_to_tokens(ids[1:3]) == ["▁Context", ":"]


def test_twin_is_written_once():
    path = twin_llm_dir("tiny-llama")
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert twin_llm_dir("tiny-llama") == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


@pytest.mark.parametrize(
    "name, prefix", [("tiny-clip", ""), ("tiny-diht", ""), ("tiny-alip", "module.")]
)
def test_vision_twins_are_state_dict_files_in_their_formats(name, prefix):
    raw = torch.load(twin_vision_file(name), weights_only=True)
    assert all(k.startswith(prefix) for k in raw)
    assert any(k.startswith(prefix + "visual.transformer.") for k in raw)
    assert any(k.startswith(prefix + "transformer.") for k in raw)  # text tower is in the file
    clean = read_state_dict(twin_vision_file(name))
    assert not any(k.startswith("module.") for k in clean)
    visual = load_vision_tower(ModelSpec(vision=name))
    assert torch.equal(visual.conv1.weight, clean["visual.conv1.weight"])
    assert not hasattr(visual, "token_embedding")  # only the vision tower is kept
    assert not any(p.requires_grad for p in visual.parameters())


def test_vision_path_overrides_and_strict_load_rejects_a_wrong_tower(tmp_path):
    diht = ModelSpec(vision="tiny-diht", vision_path=str(twin_vision_file("tiny-diht")))
    assert len(load_vision_tower(diht).transformer.resblocks) == 12
    wrong = ModelSpec(vision="tiny-diht", vision_path=str(twin_vision_file("tiny-clip")))
    with pytest.raises(ValueError, match="does not fit vision preset 'tiny-diht'"):
        load_vision_tower(wrong)
    nested = tmp_path / "ckpt.pt"
    torch.save({"state_dict": torch.load(twin_vision_file("tiny-alip"))}, nested)
    assert load_vision_tower(ModelSpec(vision="tiny-alip", vision_path=str(nested))) is not None


def test_missing_llm_weights_give_one_clear_error(tmp_path):
    missing = tmp_path / "llama-2-7b-hf"
    with pytest.raises(FileNotFoundError) as err:
        load_llm(ModelSpec(llm="llama2-7b", llm_path=str(missing)))
    msg = str(err.value)
    assert "'llama2-7b'" in msg and str(missing) in msg and "model.llm_path:" in msg
    assert err.value.__cause__ is None  # no chained library traceback


def test_unreachable_hub_id_gives_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as err:
        load_llm(ModelSpec(llm="llama2-7b"))
    msg = str(err.value)
    assert "meta-llama/Llama-2-7b-hf" in msg and "model.llm_path:" in msg


def test_missing_vision_weights_give_one_clear_error(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="model.vision_path: /path/to/diht_vitl14_336px.pth"
    ):
        load_vision_tower(ModelSpec(vision="diht-vit-l14-336"))
    missing = str(tmp_path / "ALIP_YFCC15M_B32.pt")
    with pytest.raises(FileNotFoundError, match="'alip-vit-b32'.*no such file"):
        load_vision_tower(ModelSpec(vision="alip-vit-b32", vision_path=missing))


def test_unreachable_openai_tag_gives_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="'clip-vit-l14'.*openai.*model.vision_path"):
        load_vision_tower(ModelSpec(vision="clip-vit-l14"))


def test_presets_record_transform_and_taps():
    assert get_vision_preset("diht-vit-l14-336").image_size == 336
    assert get_vision_preset("clip-vit-l14").image_size == 224
    assert (
        get_vision_preset("clip-vit-l14").quick_gelu
        and not get_vision_preset("tiny-diht").quick_gelu
    )
    assert tap_indices(24, 4) == [3, 7, 11, 15, 19, 23]
    assert tap_indices(12, 4) == [3, 7, 11]
    with pytest.raises(ValueError, match="tap_every=13"):
        tap_indices(12, 13)


@pytest.mark.parametrize("llm, vision", [("tiny-llama", "tiny-clip"), ("tiny-llama2", "tiny-alip")])
def test_build_multimodal_model_end_to_end(llm, vision):
    from ablate.model.build import build_multimodal_model

    mm = build_multimodal_model(
        ModelSpec(llm=llm, vision=vision, precision="fp32"), {"name": "bottleneck"}
    )
    image = mm.image_transform(Image.new("RGB", (120, 90), (200, 30, 30)))
    assert image.shape == (3, mm.image_size, mm.image_size) == (3, 64, 64)
    enc = mm.tokenizer(
        ["Question: Select the solid. Response: The answer is C."], return_tensors="pt"
    )
    out = mm(enc.input_ids, enc.attention_mask, enc.input_ids, image[None], torch.tensor([True]))
    assert torch.isfinite(out.loss)
    assert mm.tokenizer.pad_token is not None
    record = model_record(mm)
    assert record["vision"] == vision and record["image_size"] == 64
    assert record["taps"] == [4, 8]  # tiny-clip and tiny-alip: 8 blocks, a tap every 4th
    assert record["trainable_params"] == sum(p.numel() for _, p in mm.trainable_named_parameters())


def test_writing_a_twin_leaves_the_global_rng_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_TWIN_DIR", str(tmp_path / "fresh"))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    twin_vision_file("tiny-clip")  # written now, from its own seed
    twin_llm_dir("tiny-llama")
    assert torch.equal(torch.rand(3), expected)


def test_twins_are_the_same_on_every_machine(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    first = load_file(twin_llm_dir("tiny-llama2") / "model.safetensors")
    first_vit = read_state_dict(twin_vision_file("tiny-diht"))
    monkeypatch.setenv("ABLATE_TWIN_DIR", str(tmp_path / "other-machine"))
    again = load_file(twin_llm_dir("tiny-llama2") / "model.safetensors")
    again_vit = read_state_dict(twin_vision_file("tiny-diht"))
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert all(torch.equal(first_vit[k], again_vit[k]) for k in first_vit)
