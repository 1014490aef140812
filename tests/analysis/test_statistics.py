"""dpo_study.analysis.statistics against values computed by hand on small fixtures."""

import math

import pytest

from dpo_study.analysis.statistics import Change, Estimate, bootstrap_interval, rate, sign_test


def test_sign_test_is_the_exact_binomial_on_the_prompts_that_moved():
    # 5 of 5 moved up: p = 2 * 0.5**5.
    assert sign_test([1, 1, 1, 1, 1]) == pytest.approx(0.0625)
    # 8 up, 1 down (ties dropped): p = 2 * (C(9,0) + C(9,1)) / 2**9 = 20/512.
    assert sign_test([1] * 8 + [-1] + [0, 0]) == pytest.approx(20 / 512)
    assert sign_test([0, 0, 0]) == 1.0  # nothing moved: nothing to test
    assert sign_test([1, -1]) == 1.0


def test_bootstrap_interval_matches_the_enumerated_resampling_distribution():
    # Resamples of (1, 0, 0): the mean is k/3 with k ~ Binomial(3, 1/3): P(0) = 8/27, P(1/3) = 12/27,
    # P(2/3) = 6/27, P(1) = 1/27 = 3.7%. The 2.5% quantile is 0; the 97.5% quantile is 1 (P(<= 2/3) = 96.3%).
    assert bootstrap_interval([1, 0, 0]) == (0.0, 1.0)
    assert bootstrap_interval([1, 1, 1]) == (1.0, 1.0)  # every resample has mean 1
    assert all(math.isnan(v) for v in bootstrap_interval([]))


def test_seed_interval_is_students_t_from_three_seeds():
    e = Estimate.of([0.8, 0.9, 1.0])
    assert (e.mean, e.sd, e.n) == (pytest.approx(0.9), pytest.approx(0.1), 3)
    # t(0.975, 2) = 4.302653; half-width = 4.302653 * 0.1 / sqrt(3) = 0.248414.
    low, high = e.interval
    assert low == pytest.approx(0.9 - 0.248414, abs=1e-6) and high == pytest.approx(0.9 + 0.248414, abs=1e-6)
    assert str(e) == "0.9 ± 0.1 (n=3; 95% CI 0.652 to 1.15)"
    assert all(math.isnan(v) for v in Estimate.of([0.8, 0.9]).interval)  # two seeds: no interval
    assert str(Estimate.of([0.5])) == "0.5"


def test_paired_change_leaves_out_pairs_with_an_invalid_side():
    before = [0, 0, 0, 0, 0, 0, 0, 1, math.nan]
    after = [1, 1, 1, 1, 1, 1, 1, 1, 1]
    change = Change.paired(before, after)
    assert (change.prompts, change.excluded) == (8, 1)
    assert change.difference == pytest.approx(7 / 8)
    assert change.p_value == pytest.approx(2 * 0.5**7)  # 7 moved, all up
    assert change.low > 0 and change.is_effect


def test_an_interval_over_two_prompts_is_no_effect():
    change = Change.paired([0, 0], [1, 1])
    assert (change.low, change.high) == (1.0, 1.0) and change.interval_excludes_zero
    assert change.p_value == pytest.approx(0.5) and not change.is_effect


def test_rate_is_the_share_of_true_among_known_values():
    assert rate([True, False, None, True]) == pytest.approx(2 / 3)
    assert math.isnan(rate([None, None]))


def test_floating_noise_around_zero_prints_as_zero():
    """A percentile bootstrap of rate differences can end at -2.2e-17 instead of 0; the findings
    printed it as such ("[−2.22e−17, +1]")."""
    from dpo_study.analysis.labels import fmt

    assert fmt(-2.220446049250313e-17, signed=True) == "+0" and fmt(1e-13) == "0" and fmt(-0.0) == "0"
    assert fmt(1e-4) == "0.0001" and fmt(-0.286, signed=True) == "−0.286" and fmt(1234.5) == "1234"
