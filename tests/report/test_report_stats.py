import math
from fractions import Fraction

import numpy as np
import pytest

from ablate.report.stats import (
    binomial_two_sided_p,
    mcnemar_exact,
    mean_std,
    paired_bootstrap_p,
    question_bootstrap,
    seed_bootstrap_ci,
)


@pytest.mark.parametrize(
    "k,n",
    [(0, 1), (0, 5), (1, 9), (3, 10), (5, 10), (12, 40), (90, 200), (1000, 2100), (2000, 4241)],
)
def test_exact_binomial_doubles_the_smaller_tail(k, n):
    # independent reference: the exact tail in integers (Fraction), doubled
    tail = Fraction(sum(math.comb(n, i) for i in range(min(k, n - k) + 1)), 2**n)
    assert binomial_two_sided_p(k, n) == pytest.approx(float(min(1, 2 * tail)), rel=1e-9)


def test_binomial_edge_cases():
    assert binomial_two_sided_p(0, 0) == 1.0
    assert binomial_two_sided_p(0, 6) == pytest.approx(2 / 64)
    assert binomial_two_sided_p(6, 6) == pytest.approx(2 / 64)


def test_mcnemar_counts_discordant_pairs():
    row = np.array([1, 1, 1, 0, 0, 1, 1, 1], dtype=bool)
    ref = np.array([1, 0, 0, 0, 1, 0, 1, 0], dtype=bool)
    test = mcnemar_exact(row, ref)
    assert (test.b, test.c) == (4, 1)
    assert test.p_value == pytest.approx(binomial_two_sided_p(1, 5))
    assert test.diff == pytest.approx(100 * 3 / 8)
    assert mcnemar_exact(row, row).p_value == 1.0


def test_mcnemar_rejects_unpaired_shapes():
    with pytest.raises(ValueError, match="shape"):
        mcnemar_exact(np.ones(3), np.ones(4))


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    ref = rng.random((2, 1000)) < 0.7
    better = ref.copy()
    better[:, :300] = True  # about +9 points on the same questions
    strong = paired_bootstrap_p(better, ref)
    assert strong.method == "paired-bootstrap"
    assert strong.p_value < 0.01 and strong.diff > 0
    assert paired_bootstrap_p(ref, ref).p_value == 1.0
    noise = paired_bootstrap_p(rng.random((2, 1000)) < 0.7, rng.random((2, 1000)) < 0.7)
    assert noise.p_value > 0.01
    assert paired_bootstrap_p(better, ref).p_value == strong.p_value  # deterministic


def test_seed_bootstrap_interval_brackets_the_mean():
    assert seed_bootstrap_ci([88.0]) is None
    ci = seed_bootstrap_ci([88.0, 89.0, 90.0])
    assert ci is not None and ci.method == "seeds"
    assert 88.0 <= ci.low <= 89.0 <= ci.high <= 90.0


def test_question_bootstrap_narrows_with_more_questions():
    small = question_bootstrap(np.arange(100) % 5 != 0)  # 80%
    large = question_bootstrap(np.arange(4000) % 5 != 0)
    assert small.low < 80.0 < small.high
    assert large.low < 80.0 < large.high
    assert (large.high - large.low) < (small.high - small.low) / 3


def test_mean_std():
    assert mean_std([1.0]) == (1.0, None)
    mean, std = mean_std([1.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(np.sqrt(2.0))
    with pytest.raises(ValueError):
        mean_std([])


def test_several_seeds_widen_the_interval_to_the_seed_spread():
    q = np.arange(600)
    seeds = np.array([(q * 7 + i * 3) % 10 < 8 - i for i in range(3)])  # 80, 70, 60 %
    both = question_bootstrap(seeds)
    assert both.method == "seeds+questions"
    one = question_bootstrap(seeds[:1])
    assert one.method == "questions"
    assert (both.high - both.low) > 8.0 > (one.high - one.low)
    assert both.low < 70.0 < both.high


def test_pattern_resample_matches_index_resampling():
    from ablate.report.stats import _question_resample

    rng = np.random.default_rng(5)
    correct = rng.random((2, 500)) < np.array([[0.8], [0.6]])
    per_run = _question_resample(correct, 4000, np.random.default_rng(0))  # (B, 2)
    idx = np.random.default_rng(1).integers(0, 500, size=(4000, 500))
    direct = correct[:, idx].mean(axis=2).T * 100  # (B, 2)
    assert per_run.mean(axis=0) == pytest.approx(direct.mean(axis=0), abs=0.3)
    assert per_run.std(axis=0) == pytest.approx(direct.std(axis=0), rel=0.1)
    # the two runs stay paired: their correlation survives the resample
    corr = np.corrcoef(per_run.T)[0, 1]
    assert corr == pytest.approx(np.corrcoef(direct.T)[0, 1], abs=0.1)
