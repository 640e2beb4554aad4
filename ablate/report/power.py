"""How small a difference a row could detect, and how many seeds would resolve the one it shows.

A p-value above 0.05 says "not shown", not "no effect": a reviewer's next questions are how large a
difference the experiment could have detected and how many seeds it would take. This module
answers both for a paired comparison of two rows on the same questions.

Noise model (accuracies as fractions here, percentage points in the outputs). A row's estimate
``d`` (mean accuracy of its S runs minus that of the reference's T runs, on the same Q questions)
varies because the questions are a sample (a question-level effect ``delta_q`` with variance
``sigma2_D``) and because seeds vary (the run-to-run variance ``v`` of one run's accuracy on a
fixed test set). By the law of total variance::

    Var(d) = sigma2_D / Q + v / S + v / T

``v`` and the mean per-answer flip variance ``w`` (how often a reseeded run changes one answer)
are pooled over every row with two or more seeds (one seed noise for the table: the rows differ in
an adapter, not in the training loop). ``sigma2_D`` is the variance over questions of the
seed-averaged paired difference, less the flips that seed averaging leaves in it (``w/S + w/T``).
With one seed everywhere neither ``v`` nor ``w`` is observable; the variance is then the paired
per-question variance ``Var_q(x_q - y_q) / Q`` (McNemar's), exact when a reseeded run flips answers
independently across questions, and the seeds needed stay unknown.

The minimum detectable difference (MDD) is ``(z_{1-alpha/2} + z_{power}) * sqrt(Var(d))``: the
smallest true difference a two-sided test at ``alpha`` = 0.05 finds with 80% power. The seeds
needed are the smallest ``n`` (per row, for the row and the reference alike) with
``MDD(n) <= |d|``; none exists when the question part alone exceeds ``(|d| / z)^2`` (more seeds do
not help: the test set is too small for that delta).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05
POWER = 0.80
Z_SUM = float(scipy_stats.norm.ppf(1.0 - ALPHA / 2.0) + scipy_stats.norm.ppf(POWER))  # 2.8016
MAX_SEEDS = 999  # more than this is shown as ">999": no one runs it


@dataclass(frozen=True)
class SeedNoise:
    """Seed noise pooled over the rows of a table that have two or more seeds.

    Attributes:
        run_var: variance of one run's accuracy across seeds on the fixed test set (fraction^2).
        flip_var: mean over questions of one answer's variance across seeds (fraction^2);
            ``None`` when pooled from run accuracies alone (no per-question predictions).
        dof: degrees of freedom pooled (sum of seeds - 1 over the rows).
    """

    run_var: float
    flip_var: float | None
    dof: int

    @property
    def run_std_pp(self) -> float:
        """Run-to-run standard deviation of accuracy, in percentage points."""
        return 100.0 * math.sqrt(self.run_var)


@dataclass(frozen=True)
class Power:
    """What a paired comparison of a row against the reference could resolve.

    Attributes:
        mdd: minimum detectable difference at the rows' seeds (percentage points).
        seeds_needed: seeds per row that would resolve the observed delta; ``None`` with
            ``reason`` saying why there is no number.
        reason: ``ok``, ``never`` (the questions alone are too noisy, or the delta is 0) or
            ``unknown`` (one seed everywhere: seed noise is not observable).
    """

    mdd: float
    seeds_needed: int | None
    reason: str


def pool_seed_noise(matrices: list[np.ndarray]) -> SeedNoise | None:
    """Pool run-to-run and per-answer seed variance over rows with two or more seeds.

    Args:
        matrices: one (seeds, questions) 0/1 correctness array per row.

    Returns:
        The pooled noise (each row weighted by its seeds - 1), or ``None`` when no row has two
        seeds.
    """
    run_sum = flip_sum = 0.0
    dof = 0
    for matrix in matrices:
        matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
        n_seeds = matrix.shape[0]
        if n_seeds < 2 or matrix.shape[1] == 0:
            continue
        run_sum += (n_seeds - 1) * float(matrix.mean(axis=1).var(ddof=1))
        flip_sum += (n_seeds - 1) * float(matrix.var(axis=0, ddof=1).mean())
        dof += n_seeds - 1
    if dof == 0:
        return None
    return SeedNoise(run_sum / dof, flip_sum / dof, dof)


def pool_run_noise(accuracies: list[list[float]]) -> SeedNoise | None:
    """Pool the run-to-run variance of accuracy (percent per run) over rows with two or more runs.

    For comparisons where question sampling cancels (ours against the paper on the same test
    set), run accuracies are all that is needed, so per-question predictions are not.
    """
    run_sum = 0.0
    dof = 0
    for values in accuracies:
        if len(values) < 2:
            continue
        run_sum += (len(values) - 1) * float(np.var(np.asarray(values) / 100.0, ddof=1))
        dof += len(values) - 1
    return SeedNoise(run_sum / dof, None, dof) if dof else None


def question_variance(
    row: np.ndarray, reference: np.ndarray, noise: SeedNoise | None
) -> tuple[float, float]:
    """The variance of the paired difference that questions cause, and its total at these seeds.

    Args:
        row: (S, Q) 0/1 correctness of the row's runs.
        reference: (T, Q) 0/1 correctness of the reference's runs, same questions and order.
        noise: pooled seed noise, or ``None`` when it is not observable.

    Returns:
        ``(sigma2_D / Q, Var(d))`` in fraction^2. Without ``noise`` both are the paired
        per-question variance ``Var_q(x_q - y_q) / Q`` (the first is then an upper bound).
    """
    row = np.atleast_2d(np.asarray(row, dtype=float))
    reference = np.atleast_2d(np.asarray(reference, dtype=float))
    if row.shape[1] != reference.shape[1]:
        raise ValueError(f"paired arrays differ in questions: {row.shape} vs {reference.shape}")
    n_questions = row.shape[1]
    if n_questions < 2:
        raise ValueError("a paired variance needs at least two questions")
    paired = row.mean(axis=0) - reference.mean(axis=0)  # (Q,)
    var_d = float(paired.var(ddof=1))
    s, t = row.shape[0], reference.shape[0]
    if noise is None:
        return var_d / n_questions, var_d / n_questions
    if noise.flip_var is None:
        raise ValueError("a paired variance needs the per-answer flip variance (predictions)")
    sigma2 = max(0.0, var_d - noise.flip_var / s - noise.flip_var / t)
    questions = sigma2 / n_questions
    return questions, questions + noise.run_var / s + noise.run_var / t


def mdd_pp(variance: float) -> float:
    """The minimum detectable difference (percentage points) of an estimate with this variance."""
    return 100.0 * Z_SUM * math.sqrt(max(variance, 0.0))


def seeds_to_resolve(
    delta_pp: float, fixed_var: float, per_seed_var: float
) -> tuple[int | None, str]:
    """Smallest ``n`` with ``Z_SUM * sqrt(fixed_var + per_seed_var / n) <= |delta|``.

    Args:
        delta_pp: the observed difference (percentage points).
        fixed_var: the variance seeds cannot reduce (fraction^2).
        per_seed_var: the variance one seed contributes, divided by ``n`` seeds (fraction^2).

    Returns:
        ``(n, "ok")``, or ``(None, "never")`` when no number of seeds gets there.
    """
    budget = (abs(delta_pp) / 100.0 / Z_SUM) ** 2 - fixed_var
    if delta_pp == 0.0 or budget <= 0.0:
        return None, "never"
    # a hair of slack so an exact boundary (budget * n == per_seed_var) is not pushed up by rounding
    n = max(1, math.ceil(per_seed_var / budget - 1e-9))
    return n, "ok"


def paired_power(
    row: np.ndarray, reference: np.ndarray, delta_pp: float, noise: SeedNoise | None
) -> Power:
    """MDD at the rows' seeds and the seeds that would resolve ``delta_pp`` (paired, per question).

    Args:
        row: (S, Q) 0/1 correctness of the row's runs.
        reference: (T, Q) 0/1 correctness of the reference's runs on the same questions.
        delta_pp: the observed difference row - reference (percentage points).
        noise: seed noise pooled over the table (:func:`pool_seed_noise`), or ``None``.
    """
    questions, total = question_variance(row, reference, noise)
    mdd = mdd_pp(total)
    if noise is None:
        return Power(mdd, None, "unknown")
    n, reason = seeds_to_resolve(delta_pp, questions, 2.0 * noise.run_var)
    return Power(mdd, n, reason)


def paper_power(n_runs: int, delta_pp: float, noise: SeedNoise | None) -> Power | None:
    """MDD and seeds needed for ours minus the paper's single run, on the same test questions.

    Both sides answered the same questions, so question sampling cancels; what is left is the
    seed noise of our ``n_runs`` and of the paper's one run (taken to be ours: the same recipe).

    Returns:
        ``None`` when seed noise is not observable (one seed everywhere).
    """
    if noise is None or n_runs < 1:
        return None
    mdd = mdd_pp(noise.run_var / n_runs + noise.run_var)
    n, reason = seeds_to_resolve(delta_pp, noise.run_var, noise.run_var)
    return Power(mdd, n, reason)


def fmt_seeds(power: Power | None) -> str:
    """``12``, ``>999``, ``∞`` (never resolvable on this test set) or ``?`` (unknown)."""
    if power is None or power.reason == "unknown":
        return "?"
    if power.seeds_needed is None:
        return "∞"
    return f">{MAX_SEEDS}" if power.seeds_needed > MAX_SEEDS else str(power.seeds_needed)
