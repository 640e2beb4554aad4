"""The statistics of one table row, and of a row against the reference row.

:mod:`ablate.report.stats` and :mod:`ablate.report.power` compute on arrays; this module turns a
row's runs into those arrays (per-question correctness aligned on the questions both rows
answered) and keeps the results together, so the table builders only format them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablate.report.collect import RowRuns
from ablate.report.power import Power, SeedNoise, paired_power, pool_seed_noise
from ablate.report.stats import (
    Interval,
    PairedTest,
    mcnemar_exact,
    mean_std,
    paired_bootstrap_p,
    question_bootstrap,
    seed_bootstrap_ci,
)


@dataclass
class RowStats:
    """The statistics of one row of results."""

    mean: float | None = None
    std: float | None = None
    n: int = 0
    interval: Interval | None = None
    test: PairedTest | None = None
    correctness: tuple[list[str], np.ndarray] | None = None
    power: Power | None = None


def row_stats(row: RowRuns | None, metric: str, *, with_questions: bool = True) -> RowStats:
    """Mean, std, n and the 95% interval of ``metric`` over a row's runs."""
    if row is None:
        return RowStats()
    values = row.values(metric)
    if not values:
        return RowStats()
    mean, std = mean_std(values)
    stats = RowStats(mean=mean, std=std, n=len(values))
    if with_questions:
        stats.correctness = row.correctness_matrix()
    if stats.correctness is not None:
        stats.interval = question_bootstrap(stats.correctness[1])
    else:
        stats.interval = seed_bootstrap_ci(values)
    return stats


def paired_arrays(row: RowStats, reference: RowStats) -> tuple[np.ndarray, np.ndarray] | None:
    """The two rows' correctness on the questions both answered, in the same order."""
    if row.correctness is None or reference.correctness is None:
        return None
    pids_a, mat_a = row.correctness
    pids_b, mat_b = reference.correctness
    common = sorted(set(pids_a) & set(pids_b))
    if not common:
        return None
    pos_a = {p: i for i, p in enumerate(pids_a)}
    pos_b = {p: i for i, p in enumerate(pids_b)}
    a = mat_a[:, [pos_a[p] for p in common]]  # (seeds_a, Q)
    b = mat_b[:, [pos_b[p] for p in common]]  # (seeds_b, Q)
    return a, b


def paired_test(row: RowStats, reference: RowStats) -> PairedTest | None:
    """Test a row against the reference row on the questions both answered."""
    pair = paired_arrays(row, reference)
    if pair is None:
        return None
    a, b = pair
    if a.shape[0] == 1 and b.shape[0] == 1:
        return mcnemar_exact(a[0], b[0])
    return paired_bootstrap_p(a, b)


def row_power(row: RowStats, reference: RowStats, noise: SeedNoise | None) -> Power | None:
    """MDD and seeds needed of a row against the reference (needs its paired test first)."""
    pair = paired_arrays(row, reference)
    if pair is None or row.test is None or pair[0].shape[1] < 2:
        return None
    return paired_power(pair[0], pair[1], row.test.diff, noise)


def table_noise(stats: list[RowStats]) -> SeedNoise | None:
    """Seed noise pooled over the rows with per-question predictions and two or more seeds."""
    return pool_seed_noise([st.correctness[1] for st in stats if st.correctness is not None])
