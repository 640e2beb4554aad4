"""The uint8 image cache: resized bytes from memory or disk, never a corrupt or stale file."""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path

import numpy
import pytest
import torch
from PIL import Image

from ablate.data.image_cache import ImageCache, image_cache_key
from ablate.data.problem import Problem, load_image
from ablate.model.vision import ImageResize, get_vision_preset, image_resize_transform

SIDE = get_vision_preset("tiny-clip").image_size  # 64


def resizer(mode: str = "direct") -> ImageResize:
    return image_resize_transform(get_vision_preset("tiny-clip"), mode)


def write_png(path: Path, seed: int, size: tuple[int, int] = (90, 60)) -> Path:
    """A noisy RGB PNG at ``path`` (the official layout's images/<split>/<pid>/image.png)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.numpy()).save(path)
    return path


def problem(pid: str, image: Path | None = None, **fields) -> Problem:
    return Problem(pid=pid, question="?", choices=("a", "b"), answer=0, hint="", image=image,
                   subject="natural science", grade="grade1", **fields)  # fmt: skip


@pytest.fixture
def problems(tmp_path: Path) -> list[Problem]:
    root = tmp_path / "scienceqa" / "images" / "train"
    return [problem(str(pid), write_png(root / str(pid) / "image.png", pid)) for pid in range(4)]


def expected(p: Problem, mode: str = "direct") -> torch.Tensor:
    return resizer(mode)(load_image(p))


def cache_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.npy"))


@pytest.mark.parametrize("mode", ["direct", "crop"])
def test_memory_tier_returns_the_resized_bytes_and_decodes_once(problems, mode):
    cache = ImageCache(resizer(mode))
    for p in problems:
        first = cache(p)
        assert first.dtype == torch.uint8 and first.shape == (3, SIDE, SIDE)
        assert torch.equal(first, expected(p, mode))
        assert cache(p) is first
    assert cache.stats() == {
        "memory_hits": 4, "disk_hits": 0, "misses": 4, "rewrites": 0, "disk_writes": 0,
        "write_errors": 0, "memory_images": 4, "memory_bytes": 4 * 3 * SIDE * SIDE,
    }  # fmt: skip


@pytest.mark.parametrize("mode", ["direct", "crop"])
def test_a_fresh_instance_reads_the_same_bytes_from_disk(problems, tmp_path, mode):
    first = ImageCache(resizer(mode), tmp_path / "cache")
    decoded = [first(p) for p in problems]
    files = cache_files(tmp_path / "cache")
    assert len(files) == 4 and first.stats()["disk_writes"] == 4
    assert all(f.parent.name == image_cache_key(resizer(mode)) for f in files)
    assert torch.equal(torch.from_numpy(numpy.load(files[0])), decoded[0])  # plain .npy
    second = ImageCache(resizer(mode), tmp_path / "cache")
    for p, image in zip(problems, decoded, strict=True):
        assert torch.equal(second(p), image)
    stats = second.stats()
    assert (stats["disk_hits"], stats["misses"], stats["disk_writes"]) == (4, 0, 0)
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # no temp file left behind


def corrupt_truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def corrupt_one_pixel(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01  # a single flipped bit in the pixels: only the checksum sees it
    path.write_bytes(bytes(data))


def corrupt_other_shape(path: Path) -> None:
    numpy.save(path, numpy.zeros((3, SIDE // 2, SIDE // 2), dtype=numpy.uint8))


def corrupt_float(path: Path) -> None:
    numpy.save(path, numpy.zeros((3, SIDE, SIDE), dtype=numpy.float32))


def corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not an array")


def corrupt_too_long(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


@pytest.mark.parametrize("mode", ["direct", "crop"])
@pytest.mark.parametrize(
    "corrupt",
    [
        corrupt_truncated,
        corrupt_one_pixel,
        corrupt_other_shape,
        corrupt_float,
        corrupt_garbage,
        corrupt_too_long,
    ],  # fmt: skip
)
def test_a_corrupt_or_wrong_shape_file_is_never_returned_and_is_rewritten(
    problems, tmp_path, mode, corrupt, caplog
):
    p = problems[0]
    ImageCache(resizer(mode), tmp_path)(p)
    (path,) = cache_files(tmp_path)
    corrupt(path)
    cache = ImageCache(resizer(mode), tmp_path)
    with caplog.at_level(logging.WARNING, logger="ablate.data.image_cache"):
        image = cache(p)
    assert torch.equal(image, expected(p, mode))
    assert (cache.stats()["rewrites"], cache.stats()["disk_writes"]) == (1, 1)
    assert "rewriting" in caplog.text
    again = ImageCache(resizer(mode), tmp_path)
    assert torch.equal(again(p), image) and again.stats()["disk_hits"] == 1


def test_keys_keep_modes_sides_and_datasets_apart(tmp_path):
    """Same pid, other resize mode, side or dataset: other files, never each other's bytes."""
    a = problem("7", write_png(tmp_path / "a" / "images" / "train" / "7" / "image.png", 1))
    b = problem("7", write_png(tmp_path / "b" / "images" / "train" / "7" / "image.png", 2))
    resizers = [resizer("direct"), resizer("crop"), ImageResize(32, "direct")]
    assert len({image_cache_key(r) for r in resizers}) == 3
    for r in resizers:
        for p in (a, b):
            assert torch.equal(ImageCache(r, tmp_path / "cache")(p), r(load_image(p)))
    assert len(cache_files(tmp_path / "cache")) == 6
    for r in resizers:  # read back from disk by fresh instances: each its own bytes
        for p in (a, b):
            cache = ImageCache(r, tmp_path / "cache")
            assert torch.equal(cache(p), r(load_image(p))) and cache.stats()["disk_hits"] == 1


def test_a_replaced_image_file_is_decoded_again(problems, tmp_path):
    p = problems[0]
    old = ImageCache(resizer(), tmp_path / "cache")(p)
    assert p.image is not None
    write_png(p.image, seed=99)
    stat = p.image.stat()
    os.utime(p.image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    fresh = ImageCache(resizer(), tmp_path / "cache")
    new = fresh(p)
    assert fresh.stats()["misses"] == 1 and not torch.equal(new, old)
    assert torch.equal(new, expected(p))


def test_embedded_parquet_bytes_are_cached_by_content(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (50, 80), (10, 200, 30)).save(buffer, format="PNG")
    p = problem("train-0", None, image_bytes=buffer.getvalue())
    first = ImageCache(resizer(), tmp_path)
    assert torch.equal(first(p), expected(p))
    second = ImageCache(resizer(), tmp_path)
    assert torch.equal(second(p), expected(p)) and second.stats()["disk_hits"] == 1


def test_the_placeholder_stays_in_memory_so_real_images_replace_it(tmp_path):
    p = problem("3", tmp_path / "images" / "train" / "3" / "image.png", image_missing=True)
    cache = ImageCache(resizer(), tmp_path / "cache")
    assert torch.equal(cache(p), expected(p))
    assert cache_files(tmp_path / "cache") == [] and cache.stats()["memory_images"] == 1


def test_a_problem_without_image_is_an_error_naming_it():
    with pytest.raises(ValueError, match="problem 42 has no image"):
        ImageCache(resizer())(problem("42"))


def test_max_bytes_caps_the_memory_tier(problems, tmp_path):
    one = 3 * SIDE * SIDE
    capped = ImageCache(resizer(), max_bytes=2 * one + 1)
    for p in problems:
        capped(p)
    assert (capped.stats()["memory_images"], capped.stats()["memory_bytes"]) == (2, 2 * one)
    none = ImageCache(resizer(), tmp_path, max_bytes=0)
    for p in problems + problems:
        assert torch.equal(none(p), expected(p))
    stats = none.stats()
    assert (stats["memory_images"], stats["misses"], stats["disk_hits"]) == (0, 4, 4)
    with pytest.raises(ValueError, match="max_bytes=-1"):
        ImageCache(resizer(), max_bytes=-1)


def test_an_unwritable_directory_is_logged_and_the_run_goes_on(problems, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    cache = ImageCache(resizer(), blocker)
    with caplog.at_level(logging.WARNING, logger="ablate.data.image_cache"):
        images = [cache(p) for p in problems]
    assert all(torch.equal(i, expected(p)) for i, p in zip(images, problems, strict=True))
    assert cache.stats()["write_errors"] == 4 and caplog.text.count("cannot write") == 1


def test_pickling_keeps_the_settings_and_leaves_the_memory_behind(problems, tmp_path):
    cache = ImageCache(resizer("crop"), tmp_path, max_bytes=10**9)
    cache(problems[0])
    copy = pickle.loads(pickle.dumps(cache))
    assert (copy.key, copy.folder, copy.max_bytes) == (cache.key, cache.folder, cache.max_bytes)
    assert copy.stats()["memory_images"] == 0 and copy.stats()["misses"] == 0
    assert torch.equal(copy(problems[0]), cache(problems[0]))
    assert copy.stats()["disk_hits"] == 1


class Problems(torch.utils.data.Dataset):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def __len__(self) -> int:
        return len(self.problems)

    def __getitem__(self, index: int) -> Problem:
        return self.problems[index]


def test_two_dataloader_workers_share_the_disk_tier(problems, tmp_path):
    cache = ImageCache(resizer(), tmp_path / "cache")
    loader = torch.utils.data.DataLoader(
        Problems(problems * 2),
        batch_size=2,
        num_workers=2,
        collate_fn=lambda batch: torch.stack([cache(p) for p in batch]),  # (B, 3, S, S)
    )
    got = torch.cat(list(loader))
    want = torch.stack([expected(p) for p in problems * 2])
    assert got.dtype == torch.uint8 and torch.equal(got, want)
    assert len(cache_files(tmp_path / "cache")) == 4
    reader = ImageCache(resizer(), tmp_path / "cache")
    assert all(torch.equal(reader(p), expected(p)) for p in problems)
    assert (reader.stats()["disk_hits"], reader.stats()["misses"]) == (4, 0)
