"""Model facts of the seed code: where V' goes, the neck's init, and the inert modality token."""

from __future__ import annotations

import math

import torch
from model_helpers import text_batch

from ablate.model.build import model_record
from ablate.model.multimodal import IGNORE_INDEX
from ablate.model.sizing import describe_model
from ablate.model.spec import ModelSpec

PROMPTS = ["Image: Question: Which is north? Response: The answer is A.", "Image: N/A Q? A."]


def test_visual_tokens_go_after_the_marker(make_model):
    torch.manual_seed(0)
    mm = make_model({"name": "bottleneck"})
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS)
    images, has_image = torch.randn(2, 3, 64, 64), torch.tensor([True, False])
    at = torch.tensor([3, 3])  # e.g. BOS + a two-token marker
    batch = mm.lay_out(ids, mask, labels, has_image, at)
    embeds = mm.embed_layout(batch, images[:1])
    n = len(mm.taps)
    emb = mm.llm.get_input_embeddings().weight
    assert torch.equal(embeds[0, :3], emb[ids[0, :3]])  # BOS + marker first (u_m is apart)
    torch.testing.assert_close(embeds[0, 3 : 3 + n], mm.encode_images(images[:1])[0])
    assert torch.equal(embeds[0, 3 + n], emb[ids[0, 3]])  # then the prompt
    length = int(mask[0].sum())
    assert batch.visual_index.tolist() == list(range(3, 3 + n))
    assert batch.answer_target.tolist()[: length - 1] == labels[0, 1:length].tolist()
    assert batch.answer_index.tolist()[2] == 2 + n  # the marker's last token predicts past V'
    width = embeds.shape[1]
    assert torch.equal(embeds[1, : int(mask[1].sum())], emb[ids[1, : int(mask[1].sum())]])
    assert width == max(length + n, int(mask[1].sum()))
    assert all(label != IGNORE_INDEX for label in batch.answer_target.tolist())


def test_neck_is_initialised_as_the_seeds_adapter_mlp(make_model):
    torch.manual_seed(0)
    neck = make_model({"name": "bottleneck"}).neck
    for proj in (neck.proj_in, neck.proj_out):
        fan_out, fan_in = proj.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # xavier-uniform
        assert torch.count_nonzero(proj.bias) == 0
        assert proj.weight.abs().max() <= bound
        assert proj.weight.abs().max() > 0.9 * bound  # not PyTorch's default 1/sqrt(fan_in) bound
        assert math.isclose(proj.weight.std().item(), bound / math.sqrt(3), rel_tol=0.15)


def _u_m_grad(mm) -> torch.Tensor:
    mm.train()
    ids, mask, labels = text_batch(mm.tokenizer, PROMPTS)
    labels[:, 0] = IGNORE_INDEX  # BOS is prompt: never a target (u_m's output would predict it)
    out = mm(ids, mask, labels, torch.randn(2, 3, 64, 64), torch.tensor([True, False]))
    out.loss.backward()
    return mm.modality.embedding.weight.grad


def test_u_m_is_inert_under_the_bottleneck_adapter_and_read_by_routers(make_model):
    torch.manual_seed(0)
    ba = make_model({"name": "bottleneck"})
    assert ba.modality_token_inert
    grad = _u_m_grad(ba)
    assert grad is None or torch.count_nonzero(grad) == 0  # exactly zero, as in the seed
    record = model_record(ba)
    assert record["modality_token_inert"] is True
    assert record["trainable_params"] - record["trainable_params_effective"] == 2 * 128

    router = make_model({"name": "router"})
    with torch.no_grad():  # non-zero experts: at init their zero outputs hide the routing weights
        for name, p in router.named_parameters():
            if ".conv_B." in name or ".conv_D." in name:
                p.normal_(0, 0.02)
    assert not router.modality_token_inert
    assert torch.count_nonzero(_u_m_grad(router)) > 0
    assert (
        model_record(router)["trainable_params_effective"]
        == model_record(router)["trainable_params"]
    )


def test_plan_reports_u_m_inert_at_real_shape():
    row = describe_model(ModelSpec(), {"name": "bottleneck", "dim": 16, "groups": 2})
    assert row["trainable_params"] == 3_314_688
    assert row["trainable_effective"] == 3_314_688 - 8_192
    assert row["inert"] == "u_m (8,192)"
    routed = describe_model(ModelSpec(), {"name": "router", "dim": 8})
    assert routed["inert"] == "" and routed["trainable_effective"] == routed["trainable_params"]


def test_conv1x1_as_a_matmul_equals_the_grouped_convolution():
    """Adapters keep Conv1d parameters (the seed's shapes) but compute them as a matmul."""
    import torch.nn.functional as F

    from ablate.model.adapters.base import Conv1x1

    torch.manual_seed(0)
    for groups in (1, 2, 4):
        conv = Conv1x1(64, 16, groups=groups)
        torch.nn.init.normal_(conv.bias)
        x = torch.randn(3, 7, 64, requires_grad=True)
        ref = F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, groups=groups).transpose(1, 2)
        torch.testing.assert_close(conv(x), ref)
        (gx,) = torch.autograd.grad(conv(x).square().sum(), x)
        (rx,) = torch.autograd.grad(ref.square().sum(), x)
        torch.testing.assert_close(gx, rx)
