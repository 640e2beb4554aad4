"""Image transforms as in LaVIN's code: direct (S, S) resize, CLIP stats train, ImageNet eval."""

from __future__ import annotations

import numpy
import pytest
import torch
from PIL import Image

from ablate.model.build import model_record
from ablate.model.spec import ModelSpec
from ablate.model.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_MEAN,
    OPENAI_STD,
    _to_rgb,
    get_vision_preset,
    image_resize_transform,
    image_statistics,
    image_transform,
    normalize_images,
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
    record = model_record(mm)
    assert (record["image_resize"], record["image_norm"]) == ("direct", "seed")
    assert record["image_mean_train"] == list(OPENAI_MEAN)
    assert record["image_std_train"] == list(OPENAI_STD)
    assert record["image_mean_eval"] == list(IMAGENET_MEAN)
    assert record["image_std_eval"] == list(IMAGENET_STD)
    assert "image_mean" not in record and "image_std" not in record


# --- the split: uint8 resize (cacheable) + normalisation (on any device), bit-identical ---

STATS = {"clip": (OPENAI_MEAN, OPENAI_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}


def noisy_images() -> list[Image.Image]:
    """Random pixels (every byte value occurs) in the modes and shapes the transforms meet."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for mode, (height, width) in (("RGB", (90, 130)), ("RGBA", (131, 47)), ("P", (64, 64)),
                                  ("L", (20, 300)), ("RGB", (7, 7))):  # fmt: skip
        pixels = torch.randint(0, 256, (height, width, 3), generator=generator, dtype=torch.uint8)
        out.append(Image.fromarray(pixels.numpy()).convert(mode))
    return out


def old_direct_transform(size: int, mean, std):
    """The composed transform as it was before the split (ToTensor + Normalize on the CPU)."""
    from torchvision import transforms

    return transforms.Compose([
        _to_rgb,
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])  # fmt: skip


def open_clip_eval_transform(size: int, mean, std):
    import open_clip

    return open_clip.image_transform(size, is_train=False, mean=mean, std=std)


REFERENCES = {"direct": old_direct_transform, "crop": open_clip_eval_transform}


@pytest.mark.parametrize("resize", ["direct", "crop"])
@pytest.mark.parametrize("stats", ["clip", "imagenet"])
@pytest.mark.parametrize("preset_name", ["tiny-clip", "clip-vit-l14-336"])
def test_composed_transform_equals_the_reference_bit_for_bit(resize, stats, preset_name):
    preset = get_vision_preset(preset_name)
    mean, std = STATS[stats]
    reference = REFERENCES[resize](preset.image_size, mean, std)
    composed = image_transform(preset, resize, mean, std)
    for image in noisy_images():
        assert torch.equal(composed(image), reference(image)), (image.mode, image.size)


@pytest.mark.parametrize("resize", ["direct", "crop"])
@pytest.mark.parametrize("stats", ["clip", "imagenet"])
def test_batched_normalisation_of_cached_bytes_equals_the_reference(resize, stats):
    preset = get_vision_preset("tiny-clip")
    mean, std = STATS[stats]
    reference = REFERENCES[resize](preset.image_size, mean, std)
    to_bytes = image_resize_transform(preset, resize)
    images = noisy_images()
    uint8 = torch.stack([to_bytes(image) for image in images])  # (N, 3, S, S)
    assert uint8.dtype == torch.uint8 and uint8.shape == (len(images), 3, 64, 64)
    assert torch.equal(
        normalize_images(uint8, mean, std), torch.stack([reference(i) for i in images])
    )


def test_every_byte_value_normalises_like_totensor_and_normalize():
    from torchvision import transforms

    every = torch.arange(256, dtype=torch.uint8).repeat(3, 1).view(3, 16, 16)  # (3, 16, 16)
    for mean, std in STATS.values():
        pil = Image.fromarray(every.permute(1, 2, 0).numpy())
        expected = transforms.Normalize(mean, std)(transforms.ToTensor()(pil))
        assert torch.equal(normalize_images(every, mean, std), expected)


def test_direct_resize_gives_the_bytes_pil_produced():
    """uint8 out of PIL's own uint8 resize: caching these bytes loses nothing.

    (``crop`` is pinned by the equality with open_clip's float transform above: byte -> float is
    one-to-one, so equal floats mean equal bytes.)
    """
    preset = get_vision_preset("tiny-clip")
    for image in noisy_images():
        out = image_resize_transform(preset, "direct")(image)
        resized = image.convert("RGB").resize((64, 64), Image.Resampling.BICUBIC)
        assert out.dtype == torch.uint8 and out.shape == (3, 64, 64)
        assert torch.equal(out, torch.from_numpy(numpy.array(resized)).permute(2, 0, 1))


def test_normalize_images_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        normalize_images(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="image_resize 'pad'"):
        image_resize_transform(get_vision_preset("tiny-clip"), "pad")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("stats", ["clip", "imagenet"])
def test_normalisation_on_the_gpu_equals_the_cpu_bit_for_bit(stats):
    """CUDA divides by a Python scalar through its reciprocal; the 255 must be a tensor."""
    mean, std = STATS[stats]
    every = torch.arange(256, dtype=torch.uint8).repeat(3, 1).view(1, 3, 16, 16)  # (1, 3, 16, 16)
    on_gpu = normalize_images(every.cuda(), mean, std).cpu()
    assert torch.equal(on_gpu, normalize_images(every, mean, std))
