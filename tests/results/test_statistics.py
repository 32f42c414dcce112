"""rtflow's statistics against independent references: scipy's Wilson interval (`binomtest`), Fisher exact test,
chi-square test without continuity correction (the same p-value as the pooled two-proportion z-test) and
Mann-Whitney test; pass@k / pass^k against their definitions by enumeration."""

from __future__ import annotations

import itertools
import math

import pytest

from rtflow.results.statistics import (
    bootstrap_interval,
    fisher_exact,
    mann_whitney_u,
    pass_at_k,
    pass_hat_k,
    two_proportion_z,
    wilson_interval,
)

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference (dev extra)")


@pytest.mark.parametrize(("successes", "trials"), [(0, 1), (1, 1), (0, 20), (20, 20), (7, 20), (1, 3), (50, 97)])
def test_wilson_interval_matches_scipy(successes: int, trials: int) -> None:
    low, high = scipy_stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    interval = wilson_interval(successes, trials)
    assert interval.low == pytest.approx(low, abs=1e-12) and interval.high == pytest.approx(high, abs=1e-12)
    assert interval.estimate == successes / trials


def test_no_trials_is_the_whole_range() -> None:
    interval = wilson_interval(0, 0)
    assert (interval.low, interval.high) == (0.0, 1.0) and math.isnan(interval.estimate)


def _by_enumeration(outcomes: list[bool], k: int, every: bool) -> float:
    """pass@k (any) or pass^k (every) as the share of all k-subsets of the repeats: what the estimators estimate."""
    subsets = list(itertools.combinations(outcomes, k))
    hits = sum(1 for subset in subsets if (all(subset) if every else any(subset)))
    return hits / len(subsets)


@pytest.mark.parametrize(("trials", "successes"), [(1, 0), (1, 1), (5, 0), (5, 5), (6, 2), (8, 5), (10, 1)])
def test_pass_at_k_and_pass_hat_k_are_the_subset_shares(trials: int, successes: int) -> None:
    outcomes = [True] * successes + [False] * (trials - successes)
    for k in range(1, trials + 1):
        assert pass_at_k(trials, successes, k) == pytest.approx(_by_enumeration(outcomes, k, every=False))
        assert pass_hat_k(trials, successes, k) == pytest.approx(_by_enumeration(outcomes, k, every=True))


def test_k_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="k must be between 1 and"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="successes"):
        pass_hat_k(3, 4, 1)


@pytest.mark.parametrize(
    "table", [(8, 10, 2, 10), (0, 5, 5, 5), (10, 10, 10, 10), (1, 1, 0, 1), (3, 20, 9, 20), (0, 30, 0, 30)]
)
def test_fisher_exact_matches_scipy(table: tuple[int, int, int, int]) -> None:
    passed_a, trials_a, passed_b, trials_b = table
    reference = scipy_stats.fisher_exact(
        [[passed_a, trials_a - passed_a], [passed_b, trials_b - passed_b]], alternative="two-sided"
    ).pvalue
    assert fisher_exact(*table) == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("table", [(80, 100, 65, 100), (30, 200, 30, 200), (5, 40, 15, 40)])
def test_two_proportion_z_matches_the_chi_square_test(table: tuple[int, int, int, int]) -> None:
    passed_a, trials_a, passed_b, trials_b = table
    observed = [[passed_a, trials_a - passed_a], [passed_b, trials_b - passed_b]]
    reference = scipy_stats.chi2_contingency(observed, correction=False).pvalue
    assert two_proportion_z(*table) == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([310.0, 290, 305, 320, 298, 301], [350.0, 340, 360, 355, 348, 344, 351]),
        ([1.0, 2, 2, 3, 3, 3], [2.0, 3, 3, 4, 4, 5]),  # ties
        ([5.0], [7.0, 8, 9]),
    ],
)
def test_mann_whitney_matches_scipy(first: list[float], second: list[float]) -> None:
    reference = scipy_stats.mannwhitneyu(first, second, alternative="two-sided", method="asymptotic")
    u, p_value = mann_whitney_u(first, second)
    assert u == pytest.approx(reference.statistic) and p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate() -> None:
    values = [float(v) for v in range(100, 200, 3)]

    def median(sample: list[float]) -> float:
        ordered = sorted(sample)
        return ordered[len(ordered) // 2]

    first = bootstrap_interval(values, median, seed=7)
    assert first == bootstrap_interval(values, median, seed=7)
    assert first.low <= first.estimate <= first.high and first.high - first.low > 0


def test_bootstrap_percentiles_are_the_generic_bootstrap_of_a_percentile() -> None:
    from rtflow.results.statistics import bootstrap_percentiles, percentile

    values = [float(v) for v in (120, 95, 180, 101, 99, 400, 130, 88, 150, 97, 111, 105)]
    shares = (0.5, 0.95)
    fast = bootstrap_percentiles(values, shares, seed=3)
    for share, interval in zip(shares, fast, strict=True):
        assert interval == bootstrap_interval(values, lambda v, share=share: percentile(v, share) or 0.0, seed=3)
        assert interval.low <= interval.estimate <= interval.high
    with pytest.raises(ValueError):
        bootstrap_percentiles([], shares)
