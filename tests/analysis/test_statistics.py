"""dpo_study.analysis.statistics against values computed by hand on small fixtures."""

import math

import pytest

import numpy as np
import pandas as pd

from dpo_study.analysis.statistics import MIN_PROMPTS, Change, Estimate, _run_means, bootstrap_interval, rate


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
    # Resamples of eight differences (seven 1s, one 0): the 0 is drawn K ~ Binomial(8, 1/8) times; the mean
    # (8 - K)/8 is at most 4/8 with P(K >= 4) = 1.1% and at most 5/8 with P(K >= 3) = 6.7%, so the 2.5%
    # quantile is 5/8; it is 1 with P(K = 0) = 34%, so the 97.5% quantile is 1.
    assert (change.low, change.high) == (pytest.approx(0.625), 1.0)
    assert change.is_effect and change.needed() is None


def test_prompts_that_all_moved_are_not_established_below_the_minimum():
    """A bootstrap over prompts that all moved gives the interval [1, 1] whatever their number; two (or
    five) prompts cannot tell a change from chance (2 · 0.5^5 > 0.05), so the procedure asks for MIN_PROMPTS."""
    few = Change.paired([0] * (MIN_PROMPTS - 1), [1] * (MIN_PROMPTS - 1))
    assert (few.low, few.high) == (1.0, 1.0) and few.interval_excludes_zero and not few.is_effect
    assert few.needed() == (MIN_PROMPTS, 1)
    assert Change.paired([0] * MIN_PROMPTS, [1] * MIN_PROMPTS).is_effect


def test_seeds_are_resampled_beside_the_prompts():
    """Every one of 10 prompts moved by 2/3 on average, but one of the three seeds of side b moved none:
    over prompts alone the interval would be [2/3, 2/3]; drawing the seeds too, all three draws are that
    seed with P = 1/27 = 3.7% > 2.5%, so the interval reaches 0 and the change is not established."""
    a = pd.DataFrame(np.zeros((10, 3)))
    b = pd.DataFrame({"s1": np.ones(10), "s2": np.ones(10), "s3": np.zeros(10)})
    change = Change.of(a, b, spread=True)
    assert change.difference == pytest.approx(2 / 3)
    assert (change.low, change.high) == (0.0, 1.0) and not change.is_effect
    assert (change.seeds_a, change.seeds_b) == (3, 3)
    assert change.prompt_variance == pytest.approx(0, abs=1e-12) and change.seed_variance > 0.05
    prompts, seeds = change.needed()  # the seeds' spread dominates: more seeds, the same prompts
    assert prompts == 10 and seeds > 3


@pytest.mark.parametrize("runs", [1, 2, 3])
def test_resampled_run_means_are_the_mean_of_each_draws_valid_values(runs):
    """Per resample and prompt, the mean over the drawn runs of the valid values (a run drawn twice
    counts twice), NaN where none is valid: checked against the draws taken one by one."""
    rng = np.random.default_rng(runs)
    table = rng.random((7, runs)).round(2)
    table[rng.random(table.shape) < 0.3] = np.nan
    prompts, seeds = rng.integers(0, 7, (50, 7)), rng.integers(0, runs, (50, runs))
    expected = np.full((50, 7), np.nan)
    for r in range(50):
        for i, prompt in enumerate(prompts[r]):
            drawn = [table[prompt, run] for run in seeds[r] if not np.isnan(table[prompt, run])]
            expected[r, i] = sum(drawn) / len(drawn) if drawn else np.nan
    np.testing.assert_allclose(_run_means(table, prompts, seeds), expected, rtol=1e-12, equal_nan=True)


def test_needed_prompts_scale_with_the_squared_ratio_of_half_width_to_difference():
    rng = np.random.default_rng(0)
    a = pd.DataFrame(np.zeros((20, 1)))
    b = pd.DataFrame((rng.random((20, 1)) < 0.2).astype(float))
    change = Change.of(a, b, spread=True)
    assert not change.is_effect or change.low > 0
    if not change.is_effect:
        half = (change.high - change.low) / 2
        assert change.needed() == (math.ceil(20 * (half / change.difference) ** 2 * 1.1), 1)


def test_rows_are_matched_by_prompt_id_and_a_prompt_needs_a_valid_answer_on_both_sides():
    a = pd.DataFrame({"r1": [0.0, 1.0, math.nan]}, index=["p1", "p2", "p3"])
    b = pd.DataFrame({"r1": [1.0, math.nan, 1.0], "r2": [math.nan, math.nan, 0.0]}, index=["p3", "p2", "p1"])
    change = Change.of(a, b)
    # p1: 0 -> mean(1, 0)... p1 is b's third row: (1, 0) -> 0.5; p2: no valid answer on side b; p3: a is NaN.
    assert (change.prompts, change.excluded) == (1, 2)
    assert change.difference == pytest.approx(0.5)


def test_rate_is_the_share_of_true_among_known_values():
    assert rate([True, False, None, True]) == pytest.approx(2 / 3)
    assert math.isnan(rate([None, None]))


def test_floating_noise_around_zero_prints_as_zero():
    """A percentile bootstrap of rate differences can end at -2.2e-17 instead of 0; the findings
    printed it as such ("[−2.22e−17, +1]")."""
    from dpo_study.analysis.labels import fmt

    assert fmt(-2.220446049250313e-17, signed=True) == "+0" and fmt(1e-13) == "0" and fmt(-0.0) == "0"
    assert fmt(1e-4) == "0.0001" and fmt(-0.286, signed=True) == "−0.286" and fmt(1234.5) == "1234"


def test_docs_state_the_procedure_with_its_constants():
    from conftest import REPO
    from dpo_study.analysis.statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE

    text = " ".join((REPO / "docs/measures.md").read_text().split())
    assert f"two-way bootstrap ({BOOTSTRAP_RESAMPLES:,} seeded resamples)" in text
    assert f"its {round(100 * CONFIDENCE)}% percentile interval excludes 0 over at least {MIN_PROMPTS} prompts" in text
