"""A results store filled with fixed records (and predictions) for the paper sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ablate.spec.sweep import load_sweep
from ablate.store.record import AttemptRecord, AttemptStatus, FailureKind
from ablate.store.results_store import ResultsStore

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "sweeps"
REPORTS = REPO / "reports"
VERSIONS = {"python": "3.11.9", "torch": "2.14.1", "transformers": "5.0.0"}
COLUMNS = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "Avg")


def fill_store(
    root: Path,
    sweep_file: str,
    *,
    scale: str | None = None,
    n_questions: int = 200,
    predictions: bool = True,
    skip: tuple[int, ...] = (),
    fail: tuple[int, ...] = (),
    device: str = "cpu",
    versions: dict[int, dict[str, str]] | None = None,
    extra: dict[int, dict[str, float]] | None = None,
) -> list:
    """Write one success record per planned run, accuracy fixed by its position.

    Run ``i`` answers question ``q`` correctly when ``(q * 7 + i * 3) % 10 < 8 - (i % 3)``, so rows
    differ in a known, paired way. ``skip`` leaves runs without records; ``fail`` gives them only
    a failed attempt. Every run records ``device`` and :data:`VERSIONS`, except the runs
    ``versions`` gives their own; ``extra`` adds metrics to the runs it names (time, speed).
    """
    sweep = load_sweep(SWEEPS / sweep_file, scale=scale)
    store = ResultsStore(root)
    for i, run in enumerate(sweep.runs):
        if i in skip:
            continue
        run_id = run.spec.run_id
        run_dir = root / sweep.name / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        base = dict(
            run_id=run_id,
            sweep=sweep.name,
            job="mmt",
            seed=run.spec.seed,
            axes=run.axes,
            spec=run.spec.to_dict(),
            started_at=1_700_000_000.0 + i,
            ended_at=1_700_000_100.0 + i,
            git_sha="abc",
            git_dirty=False,
            host="h",
            device=device,
            versions=(versions or {}).get(i, VERSIONS),
            executor="inline",
            run_dir=str(run_dir),
            record_id=f"{i:08x}",
        )
        if i in fail:
            store.write(
                AttemptRecord(
                    attempt=1,
                    status=AttemptStatus.FAILED,
                    failure_kind=FailureKind.OOM,
                    failure_reason="oom",
                    **base,
                )
            )
            continue
        correct = np.array([(q * 7 + i * 3) % 10 < 8 - (i % 3) for q in range(n_questions)])
        acc = 100.0 * correct.mean()
        metrics = {f"test/{c}": acc + 0.1 * k for k, c in enumerate(COLUMNS[:-1])}
        metrics["test/Avg"] = acc
        metrics["test/unparseable_pct"] = 0.5 * i
        metrics["train/effective_batch"] = float(run.spec.config.train.effective_batch)
        metrics["train/effective_lr"] = run.spec.config.train.effective_lr
        metrics.update((extra or {}).get(i, {}))
        if predictions:
            with (run_dir / "predictions_test.jsonl").open("w") as fh:
                for q, ok in enumerate(correct):
                    fh.write(
                        json.dumps(
                            {
                                "pid": str(q),
                                "pred": 0,
                                "raw": "x",
                                "parsed": True,
                                "correct": bool(ok),
                            }
                        )
                        + "\n"
                    )
        store.write(AttemptRecord(attempt=1, status=AttemptStatus.SUCCESS, metrics=metrics, **base))
    return sweep
