"""Benchmark: decode + resize per image vs a read from the uint8 image cache (memory, disk).

    python bench/bench_image_cache.py [--images 40] [--repeats 5] [--side 336]

No official ScienceQA images are on this machine (../shared/data/scienceqa-sample has none), so
the images are synthetic in the real format: RGB PNGs under ``images/train/<pid>/image.png``, at
sizes seen in ScienceQA (300x230 to 1024x768), half flat-colour diagrams with text (they compress
well, like most ScienceQA figures), half photo-like (smooth colour + noise: large PNGs, slow to
decode). Each figure is the median over ``--repeats`` passes of the mean time per image over the
set; the disk reads find the files in the page cache (a cold read adds the drive's latency).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from ablate.data.image_cache import ImageCache
from ablate.data.problem import Problem, load_image
from ablate.model.vision import ImageResize, normalize_images

SIZES = [(302, 232), (640, 480), (750, 429), (1024, 768), (400, 300), (512, 512)]


def diagram(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x, y, x + rng.randrange(10, 120), y + rng.randrange(10, 120))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=colour, outline="black")
        draw.text((rng.randrange(size[0]), rng.randrange(size[1])), "label", fill="black")
    return image


def photo(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    width, height = size
    generator = torch.Generator().manual_seed(rng.randrange(2**31))
    ys = torch.linspace(0, 1, height)[:, None, None]
    xs = torch.linspace(0, 1, width)[None, :, None]
    base = torch.tensor([rng.random() for _ in range(3)]) * 255
    smooth = base * (0.5 + 0.5 * ys) * (0.7 + 0.3 * xs)  # (H, W, 3)
    noise = torch.randn(height, width, 3, generator=generator) * 20
    pixels = (smooth + noise).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(pixels.numpy())


def write_dataset(root: Path, n: int) -> list[Problem]:
    rng = random.Random(0)
    problems = []
    for pid in range(n):
        make = diagram if pid % 2 == 0 else photo
        path = root / "images" / "train" / str(pid) / "image.png"
        path.parent.mkdir(parents=True)
        make(rng, SIZES[pid % len(SIZES)]).save(path)
        problems.append(Problem(str(pid), "?", ("a", "b"), 0, "", path, "natural science", "g1"))
    return problems


def per_image_ms(run: Callable[[], None], n: int, repeats: int) -> float:
    """Median over ``repeats`` of the mean milliseconds per image of one pass."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(times)


def bench_mode(problems: list[Problem], mode: str, side: int, work: Path, repeats: int) -> None:
    resize = ImageResize(side, mode)
    n = len(problems)

    def decode_resize() -> None:
        for p in problems:
            resize(load_image(p))

    def first_pass_with_disk_write() -> None:  # a miss: decode, resize, atomic fsync'd write
        cache = ImageCache(resize, Path(tempfile.mkdtemp(dir=work)), max_bytes=0)
        for p in problems:
            cache(p)

    folder = work / f"shared-{mode}"
    warm = ImageCache(resize, folder)
    for p in problems:
        warm(p)

    def memory_hits() -> None:
        for p in problems:
            warm(p)

    def disk_hits() -> None:  # a fresh process's view: no memory tier, files on disk
        cache = ImageCache(resize, folder, max_bytes=0)
        for p in problems:
            cache(p)

    batch = torch.stack([warm(p) for p in problems])  # (N, 3, S, S) uint8

    def normalise_cpu() -> None:
        normalize_images(batch)

    rows = [
        ("decode + resize (PIL -> uint8)", decode_resize),
        ("miss: + atomic disk write", first_pass_with_disk_write),
        ("hit: memory", memory_hits),
        ("hit: disk (fresh instance)", disk_hits),
        ("normalise on CPU (batched)", normalise_cpu),
    ]
    base = None
    print(f"\n{mode} resize to {side}x{side}, {n} images, median of {repeats}:")
    for name, run in rows:
        ms = per_image_ms(run, n, repeats)
        base = base or ms
        print(f"  {name:32s} {ms * 1e3:10.1f} us/image   speed-up vs decode {base / ms:9.1f}x")
    assert all(torch.equal(warm(p), resize(load_image(p))) for p in problems)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--side", type=int, default=336)
    parser.add_argument("--modes", default="direct,crop")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker's view: one core per worker
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        problems = write_dataset(work / "scienceqa", args.images)
        png = sum(p.image.stat().st_size for p in problems if p.image) / len(problems)
        print(f"{len(problems)} synthetic ScienceQA-format PNGs, mean file {png / 1024:.0f} KiB")
        uint8 = 3 * args.side * args.side
        print(f"per image: uint8 {uint8 / 1024:.0f} KiB vs fp32 {4 * uint8 / 1024:.0f} KiB; "
              f"ScienceQA's ~10,332 images: {10_332 * uint8 / 2**30:.2f} GiB uint8")  # fmt: skip
        for mode in args.modes.split(","):
            bench_mode(problems, mode, args.side, work, args.repeats)


if __name__ == "__main__":
    main()
