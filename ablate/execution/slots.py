"""Slots a local executor leases to jobs: one GPU each, or N CPU slots on a machine without GPUs.

GPU discovery never imports torch (planning and ``ablate status`` stay fast and a CUDA driver
problem cannot crash the orchestrator): it honours ``CUDA_VISIBLE_DEVICES`` when set, else asks
``nvidia-smi -L``. Leasing is plain bookkeeping over a list of device ids, so it is tested with a
fake device list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SMI_LINE = re.compile(r"^GPU (\d+):")


def parse_visible_devices(value: str) -> list[str]:
    """Device ids listed in a ``CUDA_VISIBLE_DEVICES`` value.

    Returns ``[]`` when it hides all GPUs (``""`` or ``-1``, as CUDA reads them), else the listed
    ids (indices or UUIDs) in order. CUDA stops at the first invalid entry; so do we (``-1``
    hides the ones after it).
    """
    devices = []
    for raw in value.split(","):
        item = raw.strip()
        if not item or item.startswith("-"):
            break
        devices.append(item)
    return devices


def parse_nvidia_smi(output: str) -> list[str]:
    """GPU indices from ``nvidia-smi -L`` output (``GPU 0: NVIDIA H100 ... (UUID: ...)``)."""
    return [m.group(1) for line in output.splitlines() if (m := _SMI_LINE.match(line.strip()))]


def discover_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """Ids of the GPUs this process may use (empty on a CPU-only machine).

    ``CUDA_VISIBLE_DEVICES`` wins when set (the ids are passed through as written, so a job sees
    exactly the device it was given); otherwise every GPU ``nvidia-smi -L`` lists.
    """
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return parse_visible_devices(environ["CUDA_VISIBLE_DEVICES"])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        result = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(result.stdout) if result.returncode == 0 else []


@dataclass(frozen=True)
class Slot:
    """One place a job can run.

    Attributes:
        kind: ``gpu`` or ``cpu``.
        ident: the GPU id (as ``CUDA_VISIBLE_DEVICES`` names it) or the CPU slot number.
    """

    kind: str
    ident: str

    @property
    def label(self) -> str:
        """``gpu:0`` / ``cpu:1``."""
        return f"{self.kind}:{self.ident}"

    def env(self, threads: int | None = None) -> dict[str, str]:
        """Environment a job in this slot runs with: its GPU only, or no GPU at all.

        Args:
            threads: CPU threads per job (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``), so that N
                parallel CPU jobs do not each spawn one thread per core.
        """
        env = {"CUDA_VISIBLE_DEVICES": self.ident if self.kind == "gpu" else ""}
        env["ABLATE_DEVICE"] = "cuda" if self.kind == "gpu" else "cpu"
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
            env["MKL_NUM_THREADS"] = str(threads)
        return env


class SlotPool:
    """Leases slots to jobs, one job per slot, lowest free slot first.

    Args:
        slots: the slots to lease (order = preference).
    """

    def __init__(self, slots: Sequence[Slot]) -> None:
        if not slots:
            raise ValueError("a slot pool needs at least one slot")
        labels = [s.label for s in slots]
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate slots: {labels}")
        self._slots = list(slots)
        self._leased: set[Slot] = set()

    @classmethod
    def for_devices(cls, gpus: Sequence[str], cpu_slots: int) -> SlotPool:
        """One slot per GPU if there are GPUs, else ``cpu_slots`` CPU slots."""
        if gpus:
            return cls([Slot("gpu", str(g)) for g in gpus])
        if cpu_slots < 1:
            raise ValueError(f"cpu_slots must be >= 1 without GPUs, got {cpu_slots}")
        return cls([Slot("cpu", str(i)) for i in range(cpu_slots)])

    @property
    def size(self) -> int:
        """Number of slots."""
        return len(self._slots)

    @property
    def kind(self) -> str:
        """``gpu`` or ``cpu`` (a pool holds one kind)."""
        return self._slots[0].kind

    def free(self) -> int:
        """Slots not leased."""
        return len(self._slots) - len(self._leased)

    def leased(self) -> list[Slot]:
        """Slots currently leased, in pool order."""
        return [s for s in self._slots if s in self._leased]

    def lease(self) -> Slot:
        """Take the first free slot.

        Raises:
            RuntimeError: every slot is leased (the caller should have checked :meth:`free`).
        """
        for slot in self._slots:
            if slot not in self._leased:
                self._leased.add(slot)
                return slot
        raise RuntimeError(f"all {len(self._slots)} slots are leased")

    def release(self, slot: Slot) -> None:
        """Give a slot back.

        Raises:
            ValueError: the slot was not leased (a double release is a bookkeeping bug).
        """
        if slot not in self._leased:
            raise ValueError(f"slot {slot.label} is not leased")
        self._leased.remove(slot)


def resolve_device() -> str:
    """``cuda`` or ``cpu`` for a job here, without importing torch.

    The local executor sets ``ABLATE_DEVICE`` per slot; elsewhere (inline, a SLURM step) a visible
    GPU means ``cuda``.
    """
    chosen = os.environ.get("ABLATE_DEVICE")
    if chosen:
        return chosen
    return "cuda" if discover_gpus() else "cpu"
