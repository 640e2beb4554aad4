"""Tiny ``mmt`` specs for the recipe tests: tiny twins, a small synthetic ScienceQA, a short run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ablate.jobs.context import JobContext
from ablate.jobs.mmt import scale_mmt
from ablate.spec.run_spec import RunSpec, build_run_spec


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Twins and synthetic data go to a session folder (never the user's cache)."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("ablate-cache")
    mp.setenv("ABLATE_TWIN_DIR", str(root / "twins"))
    mp.setenv("ABLATE_CACHE_DIR", str(root / "cache"))
    yield
    mp.undo()


SMALL: dict[str, Any] = {
    "job": "mmt",
    "seed": 0,
    "model": {"llm": "llama2-7b", "vision": "diht-vit-l14-336"},
    "adapter": {"name": "bottleneck", "dim": 16, "groups": 2},
    "data": {"synthetic": {"n_train": 32, "n_val": 12, "n_test": 12, "image_size": 32}},
    "train": {
        "epochs": 2,
        "batch_size": 4,
        "accumulation": 2,
        "lr": 1e-2,
        "lr_mode": "absolute",
        "warmup_epochs": 0.5,
        "eval_every_epoch_max_questions": 4,
    },
    "eval": {"max_new_tokens": 6, "batch_size": 8},
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def build_tiny_spec(**overrides: Any) -> RunSpec:
    """The small tiny-scale spec with nested overrides (``train={"epochs": 3}``, ``seed=1``)."""
    data = _merge(SMALL, overrides)
    sections = {k: v for k, v in data.items() if k not in ("job", "seed")}
    return build_run_spec({"job": "mmt", "seed": data["seed"], **scale_mmt(sections, "tiny")})


def build_ctx(run_dir: Path, *, attempt: int = 1, stop_after: int | None = None) -> JobContext:
    """A context whose stop flag turns true on its ``stop_after``-th query (None: never)."""
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return stop_after is not None and calls["n"] >= stop_after

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics: list[tuple[int, dict[str, float]]] = []
    ctx = JobContext(
        run_dir=run_dir, attempt=attempt, metric_sink=lambda s, m: metrics.append((s, m))
    )
    ctx.stop_flag = stop
    ctx.logged = metrics  # type: ignore[attr-defined]
    return ctx


@pytest.fixture(scope="session")
def tiny_spec():
    """``tiny_spec(**overrides) -> RunSpec`` (see :func:`build_tiny_spec`)."""
    return build_tiny_spec


@pytest.fixture(scope="session")
def make_ctx():
    """``make_ctx(run_dir, attempt=1, stop_after=None) -> JobContext`` (see :func:`build_ctx`)."""
    return build_ctx
