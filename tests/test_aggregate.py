"""The rliable-style aggregate statistics (cardio/aggregate.py) against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cardio import aggregate


def test_normalise_maps_random_to_0_and_reference_to_1() -> None:
    np.testing.assert_allclose(aggregate.normalise([20.0, 500.0, 260.0], low=20.0, high=500.0), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(aggregate.normalise(-300.0, low=-500.0, high=-100.0), 0.5)  # negative returns
    with pytest.raises(ValueError, match="low == high"):
        aggregate.normalise(1.0, 3.0, 3.0)


def test_iqm_trims_a_quarter_of_all_runs_and_tasks() -> None:
    scores = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 100.0]])  # 8 scores: 2 cut at each end
    assert aggregate.iqm(scores) == (3 + 4 + 5 + 6) / 4
    assert aggregate.mean(scores) == (1 + 2 + 3 + 4 + 5 + 6 + 7 + 100) / 8
    assert aggregate.median(scores) == np.median([(1 + 3 + 5 + 7) / 4, (2 + 4 + 6 + 100) / 4])


def test_optimality_gap_counts_the_shortfall_only() -> None:
    scores = np.array([[0.5, 1.2], [0.9, 0.3]])  # 1.2 counts as 1: no credit above the reference
    assert aggregate.optimality_gap(scores) == pytest.approx(1 - (0.5 + 1.0 + 0.9 + 0.3) / 4)
    assert aggregate.optimality_gap(scores, gamma=0.5) == pytest.approx(0.5 - (0.5 + 0.5 + 0.5 + 0.3) / 4)


def test_probability_of_improvement_averages_pairwise_wins_over_tasks_ties_half() -> None:
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 1.0]])
    # task 0: pairs (1,2) (1,2) (3,2) (3,2) -> 2 wins of 4; task 1: (5,5) (5,1) (5,5) (5,1) -> 2 wins, 2 ties
    assert aggregate.probability_of_improvement(x, y) == pytest.approx((2 / 4 + (2 + 0.5 * 2) / 4) / 2)
    assert aggregate.probability_of_improvement(y, x) == pytest.approx(1 - (2 / 4 + 3 / 4) / 2)  # P(Y>X)=1-P(X>Y)
    with pytest.raises(ValueError, match="same tasks"):
        aggregate.probability_of_improvement(x, y[:, :1])


def test_performance_profile_is_the_fraction_above_tau_averaged_over_tasks() -> None:
    scores = np.array([[0.1, 0.6], [0.7, 0.9]])
    # tau 0.5: task 0 has 1 of 2 above, task 1 has 2 of 2 -> 0.75; tau 0.8: 0 and 1/2 -> 0.25
    profile = aggregate.performance_profile(scores, np.array([0.0, 0.5, 0.8, 1.0]))
    np.testing.assert_allclose(profile, [1, 0.75, 0.25, 0])


def test_the_bootstrap_resamples_runs_within_each_task() -> None:
    scores = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    rng = np.random.default_rng(0)
    for _ in range(50):
        sample = aggregate.stratified_resample(scores, rng)
        assert set(sample[:, 0]) <= {0.0, 1.0, 2.0} and set(sample[:, 1]) <= {10.0, 11.0, 12.0}
    # negative control: resampling whole rows would keep each row's pair; stratified sampling breaks pairs
    rows = {tuple(r) for _ in range(50) for r in aggregate.stratified_resample(scores, rng)}
    assert rows - {tuple(r) for r in scores}


def test_intervals_bracket_the_point_and_vanish_when_runs_agree() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(0.5, 0.2, size=(10, 3))
    point, low, high = aggregate.interval(aggregate.iqm, scores, reps=500)
    assert low < point < high and high - low < 0.5
    assert aggregate.interval(aggregate.iqm, scores, reps=500)[1] == low  # seeded: reproducible
    same = np.full((5, 2), 0.7)
    np.testing.assert_allclose(aggregate.interval(aggregate.iqm, same, reps=100), [0.7, 0.7, 0.7])
    poi, lo, hi = aggregate.interval(aggregate.probability_of_improvement, scores + 1.0, scores, reps=200)
    assert poi == lo == hi == 1.0  # every run of X above every run of Y, in every resample
    taus = np.linspace(0, 1, 5)
    profile, lo_p, hi_p = aggregate.interval(lambda s: aggregate.performance_profile(s, taus), scores, reps=200)
    assert profile.shape == lo_p.shape == hi_p.shape == (5,) and np.all(lo_p <= profile) and np.all(profile <= hi_p)
