"""Helpers for tracking tests: sweep files of the numpy ``track-fit`` job."""

from __future__ import annotations

import textwrap
from pathlib import Path

import track_job  # noqa: F401  (registers track-fit in this process)

from ablate.spec.sweep import load_sweep


def make_sweep(tmp_path: Path, name: str = "trk", *, seeds=(0, 1, 2), scale=None, **fit):
    lines = "".join(f"    {k}: {v}\n" for k, v in fit.items())
    body = f"name: {name}\nbase:\n  job: track-fit\n" + (f"  fit:\n{lines}" if lines else "")
    body += f"seeds: [{', '.join(map(str, seeds))}]\n"
    body += "scales:\n  tiny: {fit.steps: 3}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(body))
    return load_sweep(path, scale=scale)
