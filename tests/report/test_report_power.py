"""MDD and seeds needed against values worked out by hand (plain Python, no numpy variances)."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from ablate.report.power import (
    Z_SUM,
    Power,
    SeedNoise,
    fmt_seeds,
    paired_power,
    paper_power,
    pool_run_noise,
    pool_seed_noise,
    seeds_to_resolve,
)

Z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)  # 1.959964 + 0.841621


def var1(xs):
    """Sample variance (n - 1), by hand."""
    mean = sum(xs) / len(xs)
    return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)


def test_z_sum_is_alpha_005_power_08():
    z_sum = Z_SUM
    assert z_sum == pytest.approx(2.801585, abs=1e-6)
    assert z_sum == pytest.approx(Z, rel=1e-12)


def test_single_seeds_mdd_is_mcnemars_variance():
    # 100 questions: 10 only the row got right (b), 4 only the reference (c), 86 concordant
    row = np.array([1] * 10 + [0] * 4 + [1] * 50 + [0] * 36, dtype=bool)
    ref = np.array([0] * 10 + [1] * 4 + [1] * 50 + [0] * 36, dtype=bool)
    # by hand: D in {+1 x10, -1 x4, 0 x86}; Var = (14 - 100 * 0.06^2) / 99; SE = sqrt(Var / 100)
    expected = 100 * Z * math.sqrt((14 - 100 * 0.06**2) / 99 / 100)
    assert expected == pytest.approx(10.399, abs=1e-3)
    power = paired_power(row[None], ref[None], 6.0, None)
    assert power.mdd == pytest.approx(expected, rel=1e-9)
    assert (power.seeds_needed, power.reason) == (None, "unknown")  # one seed: no seed noise
    assert fmt_seeds(power) == "?"


# two seeds per row on four questions (then tiled), accuracies 0.75/0.5 and 0.25/0.5
ROW = [[1, 1, 1, 0], [1, 1, 0, 0]]
REF = [[1, 0, 0, 0], [1, 0, 1, 0]]


def test_pooled_seed_noise_by_hand():
    noise = pool_seed_noise([np.array(ROW), np.array(REF), np.array([[1, 0, 1, 1]])])
    # run variance: var(0.75, 0.5) = var(0.25, 0.5) = 0.03125; the one-seed row adds nothing
    assert noise.run_var == pytest.approx(0.03125)
    # per-answer variance across seeds: one question of four flips in each row -> 0.5 / 4
    assert noise.flip_var == pytest.approx(0.125)
    assert noise.dof == 2
    assert noise.run_std_pp == pytest.approx(100 * math.sqrt(0.03125))
    assert pool_seed_noise([np.array([ROW[0]]), np.array([REF[0]])]) is None


@pytest.mark.parametrize("tiles", [1, 100])
def test_paired_power_with_seed_noise_by_hand(tiles):
    row, ref = np.tile(ROW, tiles), np.tile(REF, tiles)
    n_q = 4 * tiles
    noise = pool_seed_noise([row, ref])
    # seed-averaged paired difference per question: [0, 1, 0, 0] tiled
    paired = [0.0, 1.0, 0.0, 0.0] * tiles
    sigma2 = max(0.0, var1(paired) - 0.125 / 2 - 0.125 / 2)  # less the flips averaging leaves
    questions = sigma2 / n_q
    total = questions + 0.03125 / 2 + 0.03125 / 2
    delta = 100 * (0.625 - 0.375)
    power = paired_power(row, ref, delta, noise)
    assert power.mdd == pytest.approx(100 * Z * math.sqrt(total), rel=1e-9)
    budget = (delta / 100 / Z) ** 2 - questions
    if budget <= 0:
        assert (power.seeds_needed, power.reason) == (None, "never")
        assert fmt_seeds(power) == "∞"
    else:
        n = math.ceil(2 * 0.03125 / budget)
        assert (power.seeds_needed, power.reason) == (n, "ok")
    if tiles == 1:  # four questions: sigma2 = 0.125 -> MDD 70.04, and no seeds resolve 25 points
        assert power.mdd == pytest.approx(70.04, abs=0.01) and power.reason == "never"
    else:  # 400 questions: MDD 49.65 at two seeds; nine seeds per row resolve 25 points
        assert power.mdd == pytest.approx(49.65, abs=0.01) and power.seeds_needed == 9


def test_seeds_to_resolve_is_the_smallest_n():
    # run std 0.3 points, 1e-6 of variance from the questions, delta 0.5 points
    fixed, per_seed = 1e-6, 2 * 0.003**2
    n, reason = seeds_to_resolve(0.5, fixed, per_seed)
    assert (n, reason) == (9, "ok")

    def mdd(k):
        return 100 * Z * math.sqrt(fixed + per_seed / k)

    assert mdd(9) <= 0.5 < mdd(8)
    assert seeds_to_resolve(-0.5, fixed, per_seed) == (9, "ok")  # the sign does not matter
    assert seeds_to_resolve(0.0, fixed, per_seed) == (None, "never")
    assert seeds_to_resolve(0.2, 1e-5, per_seed) == (None, "never")  # questions alone: 0.89 pts
    assert seeds_to_resolve(50.0, 0.0, per_seed) == (1, "ok")


def test_paper_power_by_hand():
    noise = SeedNoise(run_var=1e-4, flip_var=0.0, dof=4)  # run std 1 point
    # ours over 3 runs against the paper's one run: Var = v / 3 + v
    power = paper_power(3, -5.0, noise)
    assert power.mdd == pytest.approx(100 * Z * math.sqrt(1e-4 / 3 + 1e-4), rel=1e-9)
    assert power.mdd == pytest.approx(3.235, abs=1e-3)
    assert power.seeds_needed == 1
    assert paper_power(3, 3.0, noise).seeds_needed == math.ceil(1e-4 / ((0.03 / Z) ** 2 - 1e-4))
    assert paper_power(3, 3.0, noise).seeds_needed == 7
    assert paper_power(3, 2.0, noise).reason == "never"  # the paper's own run is noisier
    assert paper_power(3, 2.0, None) is None


def test_run_noise_from_accuracies_alone():
    noise = pool_run_noise([[80.0, 70.0, 60.0], [50.0], [90.0, 92.0]])
    # (2 * var(0.8, 0.7, 0.6) + 1 * var(0.9, 0.92)) / 3 = (2 * 0.01 + 0.0002) / 3
    assert noise.run_var == pytest.approx((2 * 0.01 + 0.0002) / 3)
    assert noise.dof == 3 and noise.flip_var is None
    assert pool_run_noise([[70.0], []]) is None
    with pytest.raises(ValueError, match="flip variance"):
        paired_power(np.ones((2, 3)), np.zeros((2, 3)), 100.0, noise)


def test_fmt_seeds():
    assert fmt_seeds(None) == "?"
    assert fmt_seeds(Power(1.0, 12, "ok")) == "12"
    assert fmt_seeds(Power(1.0, 5000, "ok")) == ">999"
    assert fmt_seeds(Power(1.0, None, "never")) == "∞"


def test_paired_power_rejects_unpaired_arrays():
    with pytest.raises(ValueError, match="differ in questions"):
        paired_power(np.ones((1, 3)), np.ones((1, 4)), 1.0, None)
