"""Vision towers (open_clip presets and tiny twins): their loading and the [cls]-tap wrapper.

The presets are data in :mod:`ablate.model.presets`.

Image features are the [cls] token after every ``tap_every``-th block (ViT-L/14: blocks 4, 8, ...,
24 give 6 tokens of width 1024); ``ln_post`` and the projection are not used. Only the vision
tower is kept: weights are loaded strict into the full open_clip model (so a checkpoint that does
not fit is an error, not a silent partial load) and the text tower is dropped right after.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablate.model import twins
from ablate.model.presets import OPENAI_MEAN, OPENAI_STD, VisionPreset, vision_preset
from ablate.model.spec import ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

# timm's IMAGENET_DEFAULT_MEAN/STD: what LaVIN's eval.py normalises with (its training used CLIP's)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def get_vision_preset(name: str) -> VisionPreset:
    """Look up a vision preset; unknown names raise ValueError listing the allowed ones."""
    preset = vision_preset(name)
    if preset.twin_config is not None:
        twins.register_vision_twin_config(preset.model_name, preset.twin_config)
    return preset


def tap_indices(num_blocks: int, tap_every: int) -> list[int]:
    """0-based indices of the blocks whose [cls] output is tapped (after blocks k, 2k, ...)."""
    taps = list(range(tap_every - 1, num_blocks, tap_every))
    if not taps:
        raise ValueError(f"tap_every={tap_every} exceeds the tower's {num_blocks} blocks")
    return taps


Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


def image_statistics(norm: str, role: str, preset: VisionPreset | None = None) -> Stats:
    """The (mean, std) that normalise images of ``role`` under ``ModelSpec.image_norm``.

    LaVIN's code trains with the OpenAI CLIP statistics (``util/datasets.py``, under the name
    IMAGENET_DEFAULT_*) but evaluates with timm's real ImageNet ones (``eval.py``); ``seed`` keeps
    that mismatch because the paper's numbers came from it.

    Args:
        norm: ``seed``, ``clip`` or ``imagenet``.
        role: ``train`` or ``eval``.
        preset: the tower whose own statistics ``clip`` means (OpenAI CLIP's when None).

    Raises:
        ValueError: unknown ``norm`` or ``role``.
    """
    if role not in ("train", "eval"):
        raise ValueError(f"unknown image role {role!r}; allowed: train, eval")
    clip = (preset.mean, preset.std) if preset is not None else (OPENAI_MEAN, OPENAI_STD)
    if norm == "clip" or (norm == "seed" and role == "train"):
        return clip
    if norm in ("imagenet", "seed"):
        return IMAGENET_MEAN, IMAGENET_STD
    raise ValueError(f"unknown image_norm {norm!r}; allowed: seed, clip, imagenet")


def image_resize_transform(preset: VisionPreset, resize: str = "direct") -> ImageResize:
    """PIL image -> uint8 (3, S, S): the decoded, resized pixels, before any float maths.

    Split from the normalisation so the bytes can be cached (4x smaller than fp32, and the same
    bytes serve both the train and the eval statistics) and normalised on the GPU
    (:func:`normalize_images`).

    Args:
        preset: the vision preset (gives S).
        resize: ``direct`` or ``crop`` (see :class:`ImageResize`).

    Raises:
        ValueError: unknown ``resize``.
    """
    return ImageResize(preset.image_size, resize)


class ImageResize:
    """PIL image -> uint8 (3, S, S), exactly the bytes PIL's resize produced.

    ``direct`` squeezes the whole image to (S, S) with bicubic resampling, as LaVIN's code does,
    so a wide diagram keeps its edges; ``crop`` is open_clip's eval transform (shortest side to S,
    centre crop), which drops the sides of non-square images. ``crop`` is built from torchvision
    in open_clip's order (resize, crop, then RGB), so its output equals open_clip's own transform
    for every image mode, not only RGB.

    Args:
        size: the side S.
        mode: ``direct`` or ``crop``.

    Raises:
        ValueError: unknown ``mode``.
    """

    def __init__(self, size: int, mode: str = "direct") -> None:
        from torchvision import transforms

        bicubic = transforms.InterpolationMode.BICUBIC
        if mode == "direct":
            steps = [
                _to_rgb,  # first: PIL resizes palette images with nearest, whatever is asked
                transforms.Resize((size, size), interpolation=bicubic),
            ]
        elif mode == "crop":
            steps = [
                transforms.Resize(size, interpolation=bicubic),
                transforms.CenterCrop((size, size)),
                _to_rgb,
            ]
        else:
            raise ValueError(f"unknown image_resize {mode!r}; allowed: direct, crop")
        self.size = size
        self.mode = mode
        self._steps = transforms.Compose([*steps, transforms.PILToTensor()])

    def __call__(self, image: Any) -> torch.Tensor:
        """The resized image: PIL (any mode, any size) -> uint8 (3, S, S)."""
        return self._steps(image)

    def __repr__(self) -> str:
        return f"ImageResize(size={self.size}, mode={self.mode!r})"


def normalize_images(
    images: torch.Tensor,
    mean: tuple[float, float, float] = OPENAI_MEAN,
    std: tuple[float, float, float] = OPENAI_STD,
) -> torch.Tensor:
    """uint8 images (N, 3, S, S) (or one (3, S, S)), on any device -> normalised float32.

    The ops are ToTensor's and Normalize's (divide by 255, subtract the mean, divide by the std,
    all in float32), so the result equals the old composed PIL transform bit for bit. The 255 is
    a tensor on the images' device, not a Python number: CUDA turns division by a Python scalar
    into a multiplication by its reciprocal, which differs in the last bit for half the bytes.

    Args:
        images: uint8 tensor (..., 3, S, S).
        mean: per-channel mean (see :func:`image_statistics`).
        std: per-channel standard deviation.

    Raises:
        ValueError: ``images`` is not uint8 (already normalised images would be silently wrong).
    """
    import torch

    if images.dtype != torch.uint8:
        raise ValueError(f"normalize_images expects uint8 images, got {images.dtype}")
    scale, mean_t, std_t = _normalize_constants(images.device, tuple(mean), tuple(std))
    x = images.float().div(scale)  # (..., 3, S, S) in [0, 1]
    return x.sub(mean_t).div(std_t)


@functools.lru_cache(maxsize=32)
def _normalize_constants(
    device: torch.device, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """255 (0-d), mean and std (3, 1, 1) as float32 on ``device``, made once per device.

    Made once because copying a new host tensor to the GPU waits for the GPU: once per
    micro-batch would be a host sync in the hot path.
    """
    import torch

    scale = torch.tensor(255.0, dtype=torch.float32, device=device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(3, 1, 1)
    return scale, mean_t, std_t


def image_transform(
    preset: VisionPreset,
    resize: str = "direct",
    mean: tuple[float, float, float] = OPENAI_MEAN,
    std: tuple[float, float, float] = OPENAI_STD,
) -> Callable[[Any], torch.Tensor]:
    """PIL image -> (3, S, S) float tensor normalised by mean/std, all on the CPU.

    The composition of :func:`image_resize_transform` and :func:`normalize_images`, for callers
    that want one float image at a time.

    Args:
        preset: the vision preset (gives S).
        resize: ``direct`` or ``crop`` (see :class:`ImageResize`).
        mean: per-channel mean (see :func:`image_statistics`).
        std: per-channel standard deviation.

    Raises:
        ValueError: unknown ``resize``.
    """
    from torchvision import transforms

    normalize = functools.partial(normalize_images, mean=mean, std=std)
    return transforms.Compose([image_resize_transform(preset, resize), normalize])


def _to_rgb(image: Any) -> Any:
    """Grey, palette and RGBA images -> RGB (ToTensor would otherwise give 1 or 4 channels)."""
    return image.convert("RGB")


def twin_vision_file(name: str) -> Path:
    """The twin's checkpoint file (its real format), written on first use."""
    preset = get_vision_preset(name)
    prefix = "module." if preset.checkpoint_format == "alip" else ""
    folder = twins.materialise(
        name,
        lambda out: twins.write_vision_twin(
            lambda: open_clip_model(
                VisionPreset("twin", preset.model_name, False, 0, "open_clip", preset.width)
            ),
            preset.model_name,
            preset.file_name,
            prefix,
            out,
        ),
    )
    return folder / preset.file_name


def _missing_weights(spec: ModelSpec, path: str, reason: str) -> FileNotFoundError:
    preset = get_vision_preset(spec.vision)
    return FileNotFoundError(
        f"cannot load vision weights for preset {spec.vision!r} from {path!r}: {reason}. Point to "
        f"the checkpoint with `model.vision_path: /path/to/{preset.file_name}` in the run spec, "
        "or use a tiny twin (`model.vision: tiny-diht`)."
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a plain state dict with open_clip keys.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and strips a ``module.`` prefix (ALIP,
    DDP checkpoints).
    """
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


class _NoRandomInitWarning(logging.Filter):
    """Drop open_clip's "No pretrained weights loaded" warning: we load the weights ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def open_clip_model(preset: VisionPreset) -> nn.Module:
    """The full open_clip model of ``preset`` with random weights (a checkpoint is loaded next)."""
    import open_clip

    quiet = _NoRandomInitWarning()
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(
            preset.model_name, pretrained=None, force_quick_gelu=preset.quick_gelu
        )
    finally:
        logging.getLogger().removeFilter(quiet)


def load_vision_tower(spec: ModelSpec) -> nn.Module:
    """Load the frozen open_clip vision tower of ``spec`` (fp32, CPU; the caller casts and moves).

    Raises:
        FileNotFoundError: the checkpoint is missing or cannot be fetched (one message naming the
            preset, the path tried and how to point to weights).
        ValueError: the checkpoint does not fit the preset's architecture (strict load).
    """
    import open_clip

    preset = get_vision_preset(spec.vision)
    source = spec.vision_path
    if source is None and preset.twin:
        source = str(twin_vision_file(spec.vision))
    if source is None and preset.pretrained_tag is None:
        raise _missing_weights(spec, "<no vision_path set>", "the preset has no default weights")
    if source is not None and Path(source).expanduser().is_file():
        clip = open_clip_model(preset)
        state = read_state_dict(Path(source).expanduser())
        try:
            clip.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"checkpoint {source!r} does not fit vision preset {spec.vision!r} "
                f"({preset.model_name}): {str(err).splitlines()[0]}"
            ) from None
    else:
        tag = source or preset.pretrained_tag
        if source is not None and (source.startswith(("/", ".", "~")) or "/" in source):
            raise _missing_weights(spec, source, "no such file")
        try:
            clip = open_clip.create_model(
                preset.model_name, pretrained=tag, force_quick_gelu=preset.quick_gelu
            )
        except Exception as err:  # noqa: BLE001 - any download/lookup failure gets one message
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise _missing_weights(spec, f"open_clip pretrained tag {tag!r}", first) from None
    visual = clip.visual
    del clip  # the text tower is dropped
    visual.requires_grad_(False)
    visual.eval()
    return visual


def meta_vision_tower(name: str) -> nn.Module:
    """The vision tower at real shape on the meta device (no allocation, no text tower)."""
    import open_clip
    import torch
    from open_clip.model import _build_vision_tower

    preset = get_vision_preset(name)
    cfg = open_clip.get_model_config(preset.model_name)
    with torch.device("meta"):
        return _build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"], preset.quick_gelu)


def tower_width(visual: nn.Module) -> int:
    """Token width of an open_clip VisionTransformer (never hard-coded)."""
    return int(visual.transformer.width)


def tower_blocks(visual: nn.Module) -> list[nn.Module]:
    """The residual blocks of an open_clip VisionTransformer, in order."""
    return list(visual.transformer.resblocks)


def cls_taps(visual: nn.Module, images: torch.Tensor, taps: list[int]) -> torch.Tensor:
    """[cls] tokens after the tapped blocks: images (B, 3, H, W) -> (B, n_taps, width)."""
    import torch

    out = visual.forward_intermediates(
        images,
        indices=taps,
        stop_early=True,
        intermediates_only=True,
        output_fmt="NLC",
        output_extra_tokens=True,
    )
    return torch.cat(out["image_intermediates_prefix"], dim=1)  # n_taps x (B, 1, w) -> (B, n, w)
