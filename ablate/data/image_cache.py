"""Decoded, resized uint8 images by problem id: in memory, and optionally on disk.

Why: decoding a ScienceQA PNG and resizing it to 336 px costs milliseconds per image on the CPU,
every epoch, and the resized bytes never change. They are kept as uint8 (3, S, S), 4x smaller than
fp32 and the same bytes for the train and the eval statistics; the GPU normalises them
(:func:`ablate.model.vision.normalize_images`), bit-identical to the old float transform.

Two tiers:

* memory: a dict pid -> tensor in this process, optionally capped by ``max_bytes``. A DataLoader
  worker has its own copy, so with workers the disk tier is the one they share.
* disk: ``<directory>/<key>/<pid>-<source>.npy``, written atomically (temp file in the same
  folder, fsync, rename: :func:`~ablate.store.files.write_atomic`), so worker processes and
  later runs share one decode per image.
  ``key`` names what the bytes depend on besides the source image (resize mode, side S, the
  Pillow and torchvision versions that resample), so two presets never share files.
  ``<source>`` is a hash of where the image comes from: the file's absolute path, size and
  modification time, or the embedded bytes of the parquet export. A replaced image file, or
  another dataset with the same pids, therefore never reads stale bytes.

Each file is a plain ``.npy`` (``numpy.load`` reads it) followed by a CRC-32 of the pixels. A file
that does not match, byte for byte, the header of a (3, S, S) uint8 array, the expected length and
the checksum is treated as absent and rewritten: a corrupt or wrong-shape file is never returned.
The opt-in placeholder of a missing image is cached in memory only, so a run after the real
images arrive decodes them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ablate.store.files import write_atomic

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ablate.data.problem import Problem

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bumped whenever the file layout or what the bytes mean changes: old folders are not read."""

_SAFE_PID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CRC_BYTES = 4


class ImageResizer(Protocol):
    """PIL image -> uint8 (3, size, size); :class:`ablate.model.vision.ImageResize` is one."""

    size: int
    mode: str

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """The resized image, uint8 (3, size, size)."""
        ...


def image_cache_key(resize: ImageResizer) -> str:
    """The disk folder name for images made by ``resize``: everything their bytes depend on.

    The source image is not in it (it is in each file name); the resampling code is, through the
    Pillow and torchvision versions, because a new resampler may produce other bytes.
    """
    import PIL
    import torchvision

    pillow = PIL.__version__.split("+")[0]
    vision = torchvision.__version__.split("+")[0]
    return f"{resize.mode}-{resize.size}px-pillow{pillow}-torchvision{vision}-v{CACHE_FORMAT}"


def source_stamp(problem: Problem) -> str | None:
    """A short hash of where ``problem``'s image comes from; None for the placeholder.

    A file is named by its absolute path, size and modification time (one ``stat``, no read);
    embedded bytes by their content.
    """
    if problem.image_missing:
        return None
    digest = hashlib.blake2b(digest_size=8)
    if problem.image_bytes is not None:
        digest.update(b"bytes:")
        digest.update(problem.image_bytes)
    else:
        assert problem.image is not None
        stat = os.stat(problem.image)
        path = os.path.abspath(problem.image)
        digest.update(f"file:{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _npy_header(size: int) -> bytes:
    """The exact ``.npy`` header numpy writes for a C-ordered uint8 (3, size, size) array."""
    import numpy as np

    out = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (3, size, size)}
    np.lib.format.write_array_header_1_0(out, header)
    return out.getvalue()


class ImageCache:
    """A problem's decoded, resized image as uint8 (3, S, S), decoded once.

    Lookups go memory, then disk, then decode (:func:`ablate.data.problem.load_image`) and
    resize. The memory tier keeps the first images that fit in ``max_bytes`` and never evicts:
    epochs visit images in random order, so least-recently-used eviction would hit no more
    often and would cost bookkeeping on every lookup. One instance serves one dataset (the memory
    tier is keyed by pid alone).

    Pickling (DataLoader workers under ``spawn``) copies the settings, not the memory tier or the
    counters: a worker would otherwise be sent gigabytes, and its counts would be counted twice.

    Args:
        resize: PIL image -> uint8 (3, S, S) (:func:`ablate.model.vision.image_resize_transform`).
        directory: root of the disk tier (files go under ``directory / key``); None: memory only.
            ``ablate.data.scienceqa.cache_dir() / "images"`` is the natural choice.
        max_bytes: cap of the memory tier in bytes (None: no cap; 0: no memory tier). ScienceQA's
            ~10,300 images take ~3.3 GiB at 336 px, per process: with DataLoader workers and a
            ``directory``, 0 is usually right (the page cache keeps the files in memory once).

    Raises:
        ValueError: negative ``max_bytes``.
    """

    def __init__(
        self,
        resize: ImageResizer,
        directory: str | os.PathLike[str] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: must be >= 0 (or None for no cap)")
        self.resize = resize
        self.size = int(resize.size)
        self.key = image_cache_key(resize)
        self.folder = Path(directory) / self.key if directory is not None else None
        self.max_bytes = max_bytes
        self._header = _npy_header(self.size)
        self._n_pixels = 3 * self.size * self.size
        self._memory: dict[str, torch.Tensor] = {}
        self._memory_bytes = 0
        self._counts = dict.fromkeys(
            ("memory_hits", "disk_hits", "misses", "rewrites", "disk_writes", "write_errors"), 0
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memory"], state["_memory_bytes"] = {}, 0
        state["_counts"] = dict.fromkeys(self._counts, 0)
        return state

    def __call__(self, problem: Problem) -> torch.Tensor:
        """The image of ``problem`` as uint8 (3, S, S); treat it as read-only (it is shared).

        Raises:
            ValueError: the problem has no image (the message names its pid).
        """
        if not problem.has_image:
            raise ValueError(f"problem {problem.pid} has no image to load")
        image = self._memory.get(problem.pid)
        if image is not None:
            self._counts["memory_hits"] += 1
            return image
        stamp = source_stamp(problem) if self.folder is not None else None
        path = self.folder / f"{_file_pid(problem.pid)}-{stamp}.npy" if stamp else None
        image = self._read(path) if path is not None else None
        if image is not None:
            self._counts["disk_hits"] += 1
        else:
            image = self._decode(problem)
            self._counts["misses"] += 1
            if path is not None:
                self._write(path, image)
        self._remember(problem.pid, image)
        return image

    def stats(self) -> dict[str, int]:
        """This process's counts, for the run record (workers count apart; see the class doc).

        Keys: ``memory_hits``, ``disk_hits``, ``misses`` (decoded and resized), ``rewrites``
        (corrupt or wrong-shape files replaced), ``disk_writes``, ``write_errors``,
        ``memory_images``, ``memory_bytes``.
        """
        return {
            **self._counts,
            "memory_images": len(self._memory),
            "memory_bytes": self._memory_bytes,
        }

    def _decode(self, problem: Problem) -> torch.Tensor:
        import torch

        from ablate.data.problem import load_image

        pil = load_image(problem)
        assert pil is not None  # has_image was checked
        image = self.resize(pil)  # (3, S, S) uint8
        expected = (3, self.size, self.size)
        if tuple(image.shape) != expected or image.dtype != torch.uint8:
            raise ValueError(
                f"resize {self.resize!r} gave {tuple(image.shape)} {image.dtype} for problem "
                f"{problem.pid}; the image cache expects uint8 {expected}"
            )
        return image.contiguous()

    def _remember(self, pid: str, image: torch.Tensor) -> None:
        size = image.numel()
        if self.max_bytes is not None and self._memory_bytes + size > self.max_bytes:
            return
        self._memory[pid] = image
        self._memory_bytes += size

    def _read(self, path: Path) -> torch.Tensor | None:
        """The image stored at ``path``, or None when it is absent, short, long or corrupt."""
        import torch

        expected = len(self._header) + self._n_pixels + _CRC_BYTES
        data = bytearray(expected + 1)  # one spare byte tells a too-long file
        try:
            with path.open("rb") as fh:
                n = fh.readinto(data)
        except FileNotFoundError:
            return None
        except OSError as err:
            logger.warning("image cache: cannot read %s (%s); decoding again", path, err)
            self._counts["rewrites"] += 1
            return None
        view = memoryview(data)
        start, stop = len(self._header), len(self._header) + self._n_pixels
        valid = (
            n == expected
            and view[:start] == self._header
            and int.from_bytes(view[stop:expected], "little") == zlib.crc32(view[start:stop])
        )
        if not valid:
            logger.warning("image cache: %s is corrupt or of another shape; rewriting it", path)
            self._counts["rewrites"] += 1
            return None
        pixels = torch.frombuffer(data, dtype=torch.uint8, offset=start, count=self._n_pixels)
        return pixels.view(3, self.size, self.size)

    def _write(self, path: Path, image: torch.Tensor) -> None:
        """Write atomically; a failure (disk full, read-only) is logged and the run goes on."""
        pixels = memoryview(image.numpy()).cast("B")
        crc = zlib.crc32(pixels).to_bytes(_CRC_BYTES, "little")
        try:
            write_atomic(path, b"".join((self._header, pixels, crc)))
            self._counts["disk_writes"] += 1
        except OSError as err:
            self._counts["write_errors"] += 1
            if self._counts["write_errors"] == 1:
                logger.warning("image cache: cannot write %s (%s); continuing uncached", path, err)


def _file_pid(pid: str) -> str:
    """``pid`` itself when it is a safe file name part, else a hash of it."""
    if _SAFE_PID.fullmatch(pid):
        return pid
    return "h" + hashlib.blake2b(pid.encode(), digest_size=8).hexdigest()
