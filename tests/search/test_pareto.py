"""Pareto math (growray.search.pareto) against brute force, hand-computed cases and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from growray.search.pareto import (
    crowding_distance,
    dominates,
    non_dominated_sort,
    pareto_front,
    rank_order,
    to_minimization,
)


def _brute_dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def _brute_fronts(rows: list[list[float]]) -> list[list[int]]:
    """Peel the non-dominated rows off again and again (O(n^3), obviously right)."""
    remaining = list(range(len(rows)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(_brute_dominates(rows[j], rows[i]) for j in remaining if j != i)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    n_obj = 2 if seed % 2 else 3
    n = int(rng.integers(1, 40))
    if seed % 3 == 0:  # few distinct integers: many ties and exact duplicates
        values = rng.integers(0, 4, size=(n, n_obj)).astype(float)
    else:
        values = rng.normal(size=(n, n_obj))
        dup = rng.integers(0, n, size=n // 4)  # copy some rows onto others
        values[rng.integers(0, n, size=dup.size)] = values[dup]
    modes = [str(m) for m in rng.choice(["min", "max"], size=n_obj)]
    minimized = [[-v if m == "max" else v for v, m in zip(row, modes)] for row in values.tolist()]
    return values, modes, minimized


@pytest.mark.parametrize("seed", range(50))
def test_sort_and_front_match_brute_force(seed):
    values, modes, minimized = _random_case(seed)
    expected = _brute_fronts(minimized)
    assert non_dominated_sort(values, modes) == expected
    assert pareto_front(values, modes) == expected[0]
    # list input gives the same answer as an array
    assert non_dominated_sort(values.tolist(), modes) == expected
    # duplicates share a front
    front_of = {i: k for k, front in enumerate(expected) for i in front}
    for i in range(len(values)):
        for j in range(len(values)):
            if np.array_equal(values[i], values[j]):
                assert front_of[i] == front_of[j]


@pytest.mark.parametrize("seed", range(50))
def test_rank_order_is_front_major_then_crowding(seed):
    values, modes, _ = _random_case(seed)
    fronts = non_dominated_sort(values, modes)
    order = rank_order(values, modes)
    assert sorted(order) == list(range(len(values)))
    pos = 0
    for front in fronts:
        block = order[pos : pos + len(front)]
        assert sorted(block) == front
        cd = dict(zip(front, crowding_distance(values, modes, front)))
        keys = [(-cd[i], i) for i in block]
        assert keys == sorted(keys)  # crowding descending, then index ascending
        pos += len(front)


def test_to_minimization_negates_max_columns():
    out = to_minimization([[1, 2], [3, -4]], ["min", "max"])
    assert out.dtype == float
    np.testing.assert_array_equal(out, [[1, -2], [3, 4]])
    assert to_minimization([], ["min", "max"]).shape == (0, 2)


def test_dominates():
    assert dominates([1, 2], [1, 3])
    assert not dominates([1, 3], [1, 2])
    assert not dominates([1, 2], [1, 2])  # equal: neither dominates
    assert not dominates([0, 3], [1, 2])  # trade-off
    assert not dominates([math.nan, 0], [1, 1])


def test_crowding_distance_hand_case():
    # min/min points on a trade-off curve; the second column as "max" of its negation
    values = [[0, -4], [1, -3], [2, -2], [4, 0]]
    cd = crowding_distance(values, ["min", "max"], [0, 1, 2, 3])
    # obj 0 (range 4): B (2-0)/4=0.5, C (4-1)/4=0.75; obj 1 (range 4): B (4-2)/4=0.5, C (3-0)/4=0.75
    np.testing.assert_allclose(cd, [math.inf, 1.0, 1.5, math.inf])
    # only the rows named in the front count (B's neighbours are now A and D: 4/4 + 4/4), in the order given
    np.testing.assert_allclose(crowding_distance(values, ["min", "max"], [3, 1, 0]), [math.inf, 2.0, math.inf])


def test_crowding_distance_zero_range_and_small_fronts():
    # second objective constant: contributes nothing; first gives extremes inf and B (2-0)/2
    cd = crowding_distance([[0, 1], [1, 1], [2, 1]], ["min", "min"], [0, 1, 2])
    np.testing.assert_allclose(cd, [math.inf, 1.0, math.inf])
    # identical points: no extremes at all
    np.testing.assert_array_equal(crowding_distance([[1, 1]] * 3, ["min", "min"], [0, 1, 2]), [0, 0, 0])
    # one or two points: all extremes
    assert crowding_distance([[1, 2], [2, 1]], ["min", "min"], [0, 1]).tolist() == [math.inf, math.inf]
    assert crowding_distance([[1, 2]], ["min", "min"], [0]).tolist() == [math.inf]
    assert crowding_distance([[1, 2]], ["min", "min"], []).tolist() == []


def test_rank_order_hand_case():
    a, b, c, d = [0, 4], [1, 3], [2, 2], [4, 0]  # front 0, crowding inf, 1.0, 1.5, inf
    e, f = [3, 3], [5, 5]  # e dominated by b and c; f by e
    values = [a, b, c, d, e, f]
    assert non_dominated_sort(values, ["min", "min"]) == [[0, 1, 2, 3], [4], [5]]
    assert rank_order(values, ["min", "min"]) == [0, 3, 2, 1, 4, 5]
    # ties keep index order; duplicates rank side by side
    assert rank_order([[1, 1], [0, 2], [1, 1]], ["min", "min"]) == [0, 1, 2]
    assert rank_order([[2, 2], [1, 1], [1, 1]], ["min", "min"]) == [1, 2, 0]


def test_nan_and_inf_rows_form_the_last_front():
    values = [[math.nan, 0.0], [1.0, 1.0], [2.0, 2.0], [0.0, math.inf]]
    assert non_dominated_sort(values, ["min", "min"]) == [[1], [2], [0, 3]]
    assert pareto_front(values, ["min", "min"]) == [1]
    assert rank_order(values, ["min", "min"]) == [1, 2, 0, 3]
    np.testing.assert_array_equal(crowding_distance(values, ["min", "min"], [0, 3]), [0, 0])
    assert non_dominated_sort([[math.nan, 1]], ["min", "min"]) == [[0]]
    assert pareto_front([[math.nan, 1]], ["min", "min"]) == []


def test_empty_input():
    assert non_dominated_sort([], ["min", "max"]) == []
    assert pareto_front(np.empty((0, 2)), ["min", "max"]) == []
    assert rank_order([], ["min"]) == []


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: non_dominated_sort([[1, 2]], ["min", "up"]), r"modes\[1\].*'up'"),
        (lambda: non_dominated_sort([[1, 2]], "min"), r"modes must be a list.*'min'"),
        (lambda: non_dominated_sort([[1, 2]], []), r"modes is empty"),
        (lambda: pareto_front([[1, 2, 3]], ["min", "min"]), r"3 objective column.*2 entries"),
        (lambda: pareto_front([1, 2], ["min", "min"]), r"two-dimensional.*\(2,\)"),
        (lambda: rank_order([[["x"]]], ["min"]), r"must be an \(n, m\) array of numbers|two-dimensional"),
        (lambda: rank_order([["a", "b"]], ["min", "min"]), r"array of numbers.*'a'"),
        (lambda: crowding_distance([[1, 2]], ["min", "min"], [0, 5]), r"\[5\] outside 0..0"),
        (lambda: dominates([1, 2], [1, 2, 3]), r"\(2,\) and \(3,\)"),
    ],
)
def test_invalid_inputs_name_the_bad_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
