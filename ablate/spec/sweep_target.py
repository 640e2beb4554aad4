"""How a command line names a sweep: a path or a bare name, and ``--set key=value`` overrides.

Every command that takes a sweep file (``sweep``, ``plan``, ``status``, ``tune``, ``report``)
accepts a bare name as well: ``ablate sweep table3`` reads ``sweeps/table3.yaml``, as
``ablate report table3`` always did. A file that is not there is refused with the nearest sweep
name (``did you mean sweeps/table3.yaml?``).

``--set train.lr=0.01`` (repeatable) overrides one field of every run, applied after the file
and its ``--scale`` block, as if the file had written it: the value is read as YAML (``0.01`` a
number, ``[0.9, 0.95]`` a list, ``true`` a boolean), validated like the file's values and hashed
into the run id the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ablate.errors import SpecError

#: Where bare sweep names are looked up (relative to the working directory).
SWEEPS_DIR = Path("sweeps")
#: Where ``--set`` values are said to come from in errors.
SET_ORIGIN = "--set"


def resolve_sweep_path(target: str | Path) -> Path:
    """The sweep file ``target`` names: itself, or ``sweeps/<name>.yaml`` for a bare name.

    Raises:
        SpecError: neither exists; the message names the nearest sweep file, if any is close.
    """
    path = Path(target)
    if path.is_file():
        return path
    if path.suffix == "" and len(path.parts) == 1:
        candidate = SWEEPS_DIR / f"{path.name}.yaml"
        if candidate.is_file():
            return candidate
    nearest = nearest_sweep(path)
    hint = f" (did you mean {nearest}?)" if nearest else ""
    looked = f"; also looked for {SWEEPS_DIR / f'{path.name}.yaml'}" if not path.suffix else ""
    raise SpecError(f"file not found{looked}{hint}", file=path)


def nearest_sweep(path: Path) -> str | None:
    """The sweep file whose name is closest to ``path``'s, in its folder or in ``sweeps/``."""
    folders = {SWEEPS_DIR}
    if path.parent != Path(".") and path.parent.is_dir():
        folders.add(path.parent)
    files = [f for folder in folders if folder.is_dir() for f in sorted(folder.glob("*.yaml"))]
    by_stem = {f.stem: f for f in reversed(files)}  # the target's own folder wins a tie
    close = difflib.get_close_matches(path.stem, list(by_stem), n=1, cutoff=0.6)
    return str(by_stem[close[0]]) if close else None


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["train.lr=0.01", ...]`` as ``{"train.lr": 0.01}``, each value read as YAML.

    Raises:
        SpecError: an item without ``=``, an empty key, or a value that is not YAML.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise SpecError(
                "expected KEY=VALUE with a dotted key, e.g. --set train.lr=0.01",
                file=SET_ORIGIN,
                value=item,
            )
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise SpecError(f"the value is not YAML: {problem}", file=SET_ORIGIN, key=key) from None
    return out
