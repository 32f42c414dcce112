"""The statistics verdicts across repeats and runs are made of: pass rates with intervals, pass@k and pass^k,
and tests of whether two runs differ.

Each is a closed formula or an exact sum, small enough to read and to check against a reference (the tests hold
them to scipy's and statsmodels' values), so rtflow does not carry a scientific stack at run time:

- `wilson_interval`: the Wilson score interval of a pass rate (good at 0 of N and N of N, where the normal
  approximation collapses to a point);
- `pass_at_k` and `pass_hat_k`: the unbiased estimators, from N repeats of which C passed, of the chance that at
  least one of k tries passes (pass@k, Chen et al. 2021) and that all k pass (pass^k, Yao et al. 2024);
- `fisher_exact`: two-sided Fisher's exact test of two pass counts (what small counts need);
- `two_proportion_z`: the pooled two-proportion z-test (for large counts);
- `mann_whitney_u`: the Mann-Whitney U test of two samples (latency, cost), with the tie-corrected normal
  approximation and continuity correction, as scipy's `method="asymptotic"`;
- `bootstrap_interval`: a seeded percentile bootstrap interval of any statistic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Interval",
    "bootstrap_interval",
    "bootstrap_percentiles",
    "fisher_exact",
    "mann_whitney_u",
    "pass_at_k",
    "pass_hat_k",
    "percentile",
    "two_proportion_z",
    "wilson_interval",
]

Z_95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal distribution."""


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Interval:
    """The Wilson score interval of `successes` of `trials` (the whole [0, 1] when there are no trials)."""
    _check_counts(successes, trials)
    if trials == 0:
        return Interval(math.nan, 0.0, 1.0)
    rate = successes / trials
    z2 = z * z
    centre = (rate + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(rate * (1 - rate) / trials + z2 / (4 * trials * trials))
    return Interval(rate, max(0.0, centre - half), min(1.0, centre + half))


def pass_at_k(trials: int, successes: int, k: int) -> float:
    """The unbiased estimate of pass@k: the chance that at least one of k tries passes, from `successes` of
    `trials` repeats (1 - C(n-c, k) / C(n, k))."""
    _check_counts(successes, trials)
    if not 1 <= k <= trials:
        raise ValueError(f"k must be between 1 and the number of repeats ({trials}), got {k}")
    if trials - successes < k:
        return 1.0
    return 1.0 - math.comb(trials - successes, k) / math.comb(trials, k)


def pass_hat_k(trials: int, successes: int, k: int) -> float:
    """The unbiased estimate of pass^k: the chance that all of k tries pass (C(c, k) / C(n, k))."""
    _check_counts(successes, trials)
    if not 1 <= k <= trials:
        raise ValueError(f"k must be between 1 and the number of repeats ({trials}), got {k}")
    return math.comb(successes, k) / math.comb(trials, k)


def fisher_exact(passed_a: int, trials_a: int, passed_b: int, trials_b: int) -> float:
    """The two-sided p-value of Fisher's exact test that two pass rates are the same: the sum of the
    probabilities of every table with the same margins that is no more likely than the one observed."""
    _check_counts(passed_a, trials_a)
    _check_counts(passed_b, trials_b)
    passed = passed_a + passed_b
    total = trials_a + trials_b
    low, high = max(0, passed - trials_b), min(passed, trials_a)
    denominator = math.comb(total, passed)

    def probability(x: int) -> float:
        return math.comb(trials_a, x) * math.comb(trials_b, passed - x) / denominator

    observed = probability(passed_a)
    # A relative tolerance, as scipy uses, so tables as likely as the observed one count despite rounding.
    p_value = sum(p for x in range(low, high + 1) if (p := probability(x)) <= observed * (1 + 1e-7))
    return min(1.0, p_value)


def _normal_two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z(passed_a: int, trials_a: int, passed_b: int, trials_b: int) -> float:
    """The two-sided p-value of the pooled two-proportion z-test (1.0 when the pooled rate is 0 or 1)."""
    _check_counts(passed_a, trials_a)
    _check_counts(passed_b, trials_b)
    if not trials_a or not trials_b:
        return 1.0
    pooled = (passed_a + passed_b) / (trials_a + trials_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    if spread == 0:
        return 1.0
    return _normal_two_sided((passed_a / trials_a - passed_b / trials_b) / spread)


def _ranks(values: Sequence[float]) -> list[float]:
    """Average ranks (1-based), ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda index: values[index])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """(U of `first`, two-sided p-value) of the Mann-Whitney U test, tie-corrected normal approximation with
    continuity correction (scipy's `mannwhitneyu(..., method="asymptotic")`)."""
    n1, n2 = len(first), len(second)
    if not n1 or not n2:
        raise ValueError("both samples need at least one value")
    ranks = _ranks([*first, *second])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    total = n1 + n2
    ties: dict[float, int] = {}
    for value in [*first, *second]:
        ties[value] = ties.get(value, 0) + 1
    tie_term = sum(count**3 - count for count in ties.values()) / (total * (total - 1)) if total > 1 else 0.0
    variance = n1 * n2 / 12 * ((total + 1) - tie_term)
    if variance <= 0:
        return u1, 1.0
    mean = n1 * n2 / 2
    u = max(u1, n1 * n2 - u1)
    z = (u - mean - 0.5) / math.sqrt(variance)
    return u1, min(1.0, 2 * (0.5 * math.erfc(z / math.sqrt(2))))


def bootstrap_interval(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float],
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """A percentile bootstrap interval of `statistic` over `values`, seeded so a report says the same each time."""
    import numpy as np

    if not values:
        raise ValueError("a bootstrap needs at least one value")
    generator = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    picks = generator.integers(0, len(data), size=(resamples, len(data)))
    estimates = sorted(statistic(data[row].tolist()) for row in picks)
    tail = (1 - level) / 2
    low = estimates[math.floor(tail * (resamples - 1))]
    high = estimates[math.ceil((1 - tail) * (resamples - 1))]
    return Interval(statistic(list(values)), low, high)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (`share` in 0..1) of `values`: a value some turn really had; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def bootstrap_percentiles(
    values: Sequence[float], shares: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> list[Interval]:
    """For each share, `bootstrap_interval(values, lambda v: percentile(v, share))`, every resample at once: the
    same picks and so the same intervals, without a Python call per resample (a summary takes these for each
    repeated conversation), and one set of resamples for all the shares."""
    import numpy as np

    if not values:
        raise ValueError("a bootstrap needs at least one value")
    generator = np.random.default_rng(seed)
    data = np.asarray(values, dtype=float)
    picks = generator.integers(0, len(data), size=(resamples, len(data)))
    resampled = np.sort(data[picks], axis=1)
    tail = (1 - level) / 2
    intervals: list[Interval] = []
    for share in shares:
        rank = max(1, math.ceil(share * len(data)))
        estimates = np.sort(resampled[:, rank - 1])
        estimate = percentile(values, share)
        assert estimate is not None
        low = float(estimates[math.floor(tail * (resamples - 1))])
        high = float(estimates[math.ceil((1 - tail) * (resamples - 1))])
        intervals.append(Interval(estimate, low, high))
    return intervals
