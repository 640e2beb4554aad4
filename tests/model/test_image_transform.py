"""Image transforms as in LaVIN's code: direct (S, S) resize, CLIP stats train, ImageNet eval."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from ablate.model.spec import ModelSpec
from ablate.model.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_MEAN,
    OPENAI_STD,
    get_vision_preset,
    image_statistics,
    image_transform,
)

RED, GREY, BLUE = (255, 0, 0), (128, 128, 128), (0, 0, 255)


def wide_diagram(width: int = 128, height: int = 64) -> Image.Image:
    """A 2:1 image: left quarter pure red, right quarter pure blue, grey between."""
    image = Image.new("RGB", (width, height), GREY)
    quarter = width // 4
    image.paste(RED, (0, 0, quarter, height))
    image.paste(BLUE, (width - quarter, 0, width, height))
    return image


def unnormalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """(3, H, W) normalised tensor -> RGB in [0, 1]."""
    return x * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]


def edge_colours(x: torch.Tensor, mean, std) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean RGB of the 4 leftmost and the 4 rightmost columns."""
    rgb = unnormalise(x, mean, std)
    return rgb[:, :, :4].mean(dim=(1, 2)), rgb[:, :, -4:].mean(dim=(1, 2))


def is_colour(rgb: torch.Tensor, colour) -> bool:
    return bool(torch.allclose(rgb, torch.tensor(colour, dtype=rgb.dtype) / 255, atol=0.05))


def test_direct_resize_keeps_both_edges_of_a_wide_image_and_crop_loses_them():
    preset = get_vision_preset("tiny-diht")
    image = wide_diagram()
    direct = image_transform(preset, "direct", OPENAI_MEAN, OPENAI_STD)(image)
    left, right = edge_colours(direct, OPENAI_MEAN, OPENAI_STD)
    assert is_colour(left, RED) and is_colour(right, BLUE)
    crop = image_transform(preset, "crop", OPENAI_MEAN, OPENAI_STD)(image)
    left, right = edge_colours(crop, OPENAI_MEAN, OPENAI_STD)
    assert is_colour(left, GREY) and is_colour(right, GREY)  # the centre crop drops the sides


@pytest.mark.parametrize("resize", ["direct", "crop"])
@pytest.mark.parametrize("size", [(128, 64), (40, 90), (7, 7)])
def test_output_is_square_at_the_tower_side_for_any_input(resize, size):
    preset = get_vision_preset("tiny-clip")
    out = image_transform(preset, resize, IMAGENET_MEAN, IMAGENET_STD)(Image.new("RGB", size))
    assert out.shape == (3, preset.image_size, preset.image_size) and out.dtype == torch.float32


def test_direct_resize_converts_grey_and_rgba_images_to_rgb():
    transform = image_transform(get_vision_preset("tiny-clip"), "direct")
    for mode in ("L", "RGBA", "P"):
        assert transform(Image.new(mode, (30, 20))).shape[0] == 3


def test_unknown_resize_or_norm_is_an_error():
    preset = get_vision_preset("tiny-clip")
    with pytest.raises(ValueError, match="image_resize 'pad'"):
        image_transform(preset, "pad")
    with pytest.raises(ValueError, match="image_norm 'laion'"):
        image_statistics("laion", "train")
    with pytest.raises(ValueError, match="role 'test'"):
        image_statistics("seed", "test")
    with pytest.raises(ValueError, match="image_resize"):
        ModelSpec(image_resize="pad")
    with pytest.raises(ValueError, match="image_norm"):
        ModelSpec(image_norm="laion")


def test_image_statistics_seed_trains_with_clip_and_evaluates_with_imagenet():
    clip, imagenet = (OPENAI_MEAN, OPENAI_STD), (IMAGENET_MEAN, IMAGENET_STD)
    assert image_statistics("seed", "train") == clip
    assert image_statistics("seed", "eval") == imagenet
    for role in ("train", "eval"):
        assert image_statistics("clip", role) == clip
        assert image_statistics("imagenet", role) == imagenet
        assert image_statistics("clip", role, get_vision_preset("diht-vit-l14-336")) == clip


def test_spec_defaults_reproduce_the_seed_code():
    spec = ModelSpec()
    assert (spec.image_resize, spec.image_norm) == ("direct", "seed")
    fields = ModelSpec.model_fields
    assert "LaVIN" in fields["image_resize"].description
    assert "eval.py" in fields["image_norm"].description


def test_model_transforms_and_record_hold_the_statistics_actually_used(make_model):
    mm = make_model({"name": "bottleneck"})  # tiny_spec: image_resize=direct, image_norm=seed
    grey = Image.new("RGB", (96, 48), GREY)
    for transform, mean, std in (
        (mm.image_transform, OPENAI_MEAN, OPENAI_STD),
        (mm.eval_image_transform, IMAGENET_MEAN, IMAGENET_STD),
    ):
        expected = (128 / 255 - torch.tensor(mean)) / torch.tensor(std)
        out = transform(grey)
        assert out.shape == (3, mm.image_size, mm.image_size)
        assert torch.allclose(out.mean(dim=(1, 2)), expected, atol=1e-3)
        left, right = edge_colours(transform(wide_diagram()), mean, std)
        assert is_colour(left, RED) and is_colour(right, BLUE)  # no centre crop
    record = mm.record()
    assert (record["image_resize"], record["image_norm"]) == ("direct", "seed")
    assert record["image_mean_train"] == list(OPENAI_MEAN)
    assert record["image_std_train"] == list(OPENAI_STD)
    assert record["image_mean_eval"] == list(IMAGENET_MEAN)
    assert record["image_std_eval"] == list(IMAGENET_STD)
    assert "image_mean" not in record and "image_std" not in record
