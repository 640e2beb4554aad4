"""What was recorded beside a result but never hashed into the run id.

Git sha and dirty flag of the code that ran, package versions, host and device. Capturing them is
cheap (two ``git`` calls once per process, metadata look-ups, no imports of the packages
themselves); the orchestrator computes the git part once and hands it to its workers through the
environment so a sweep of a thousand jobs does not call ``git`` a thousand times. The ``git``
calls never write to the user's repository (no index refresh, no ``index.lock``).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

GIT_SHA_ENV = "ABLATE_GIT_SHA"
GIT_DIRTY_ENV = "ABLATE_GIT_DIRTY"

# Distributions whose versions change results; looked up by metadata only (no import).
TRACKED_PACKAGES = (
    "ablate",
    "torch",
    "torchvision",
    "transformers",
    "open_clip_torch",
    "peft",
    "bitsandbytes",
    "numpy",
)


@dataclass(frozen=True)
class GitState:
    """The commit of the code that ran and whether the working tree had local changes."""

    sha: str | None
    dirty: bool | None


def _source_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def git_state() -> GitState:
    """The git state of the ``ablate`` source tree (from the environment if the parent set it).

    The environment is read on every call (an orchestrator's workers inherit it; a long-lived
    process may change it); only the git subprocesses are cached.

    Returns ``GitState(None, None)`` when the package is not in a git checkout or git is absent.
    """
    if GIT_SHA_ENV in os.environ:
        sha = os.environ[GIT_SHA_ENV] or None
        dirty_text = os.environ.get(GIT_DIRTY_ENV, "")
        dirty = {"1": True, "0": False}.get(dirty_text)
        return GitState(sha, dirty)
    return _git_state_from_checkout()


@lru_cache(maxsize=1)
def _git_state_from_checkout() -> GitState:
    return read_git_state(_source_root())


def read_git_state(root: Path) -> GitState:
    """The commit and dirty flag of the checkout at ``root``, without writing to it.

    ``git status`` refreshes the index's stat cache and writes it back under ``index.lock``
    when it can: a side effect on the user's repository that can make their own ``git commit``
    fail while a sweep starts. ``GIT_OPTIONAL_LOCKS=0`` turns that write off (the answer is the
    same; git only skips saving its refreshed cache). Uncached: :func:`git_state` caches it.
    """
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            env=env,
        )
        if sha.returncode != 0:
            return GitState(None, None)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired):
        return GitState(None, None)
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return GitState(sha.stdout.strip(), dirty)


def git_env() -> dict[str, str]:
    """Environment that passes this process's git state on to a worker."""
    state = git_state()
    dirty = "" if state.dirty is None else ("1" if state.dirty else "0")
    return {GIT_SHA_ENV: state.sha or "", GIT_DIRTY_ENV: dirty}


def package_versions() -> dict[str, str]:
    """Versions of Python, the result-relevant packages and, once torch is loaded, CUDA.

    ``cuda`` is torch's CUDA build (reports show it in their environment footer); it is read only
    if the process already imported torch (a worker has, the orchestrator need not).
    """
    versions = dict(_installed_versions())
    torch = sys.modules.get("torch")
    cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    if cuda:
        versions["cuda"] = str(cuda)
    return versions


@lru_cache(maxsize=1)
def _installed_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host_name() -> str:
    """Short host name of this machine."""
    return socket.gethostname().split(".")[0]


def device_name(device: str) -> str:
    """A human name for the device a job ran on: the GPU's name, or ``cpu``.

    Imports torch only if the job already did (a CPU job never pays for the import).
    """
    if not device.startswith("cuda"):
        return "cpu"
    torch = sys.modules.get("torch")
    if torch is None:
        return device
    try:
        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # noqa: BLE001 - a broken driver must not lose the record
        return device
    return device
