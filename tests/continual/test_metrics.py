"""The accuracy matrix's metrics on a hand-built matrix (GEM's BWT/FWT, Chaudhry's forgetting)."""

from __future__ import annotations

import math

import pytest

from growray.continual import AccuracyMatrix, hides_forgetting

# R[i][j]: accuracy on task j after training task i; None: not measured
ROWS = [
    [0.90, 0.30, None],
    [0.95, 0.80, 0.40],
    [0.60, 0.75, 0.95],
]
BASELINE = [0.5, 0.2, 0.3]


@pytest.fixture
def matrix() -> AccuracyMatrix:
    return AccuracyMatrix.from_rows(ROWS, BASELINE)


def test_average_accuracy(matrix):
    assert matrix.avg_acc(2) == pytest.approx((0.60 + 0.75 + 0.95) / 3)
    assert matrix.avg_acc(0) == pytest.approx(0.90)
    assert matrix.avg_acc(1) == pytest.approx((0.95 + 0.80) / 2)


def test_backward_transfer_is_gems(matrix):
    # BWT = mean_{j<T-1} R[T-1][j] - R[j][j]: against the accuracy right after training j
    assert matrix.bwt(2) == pytest.approx(((0.60 - 0.90) + (0.75 - 0.80)) / 2)
    assert math.isnan(matrix.bwt(0))


def test_forgetting_is_the_drop_from_the_best(matrix):
    # task 0 peaked after task 1 (0.95), not right after its own training (0.90)
    assert matrix.forgetting(2) == pytest.approx(((0.95 - 0.60) + (0.80 - 0.75)) / 2)
    assert matrix.forgetting(2) != pytest.approx(-matrix.bwt(2))
    assert matrix.forgetting(1) == pytest.approx(0.90 - 0.95)


def test_forward_transfer_is_gems(matrix):
    # FWT = mean_{j>0} R[j-1][j] - b_j
    assert matrix.fwt(2) == pytest.approx(((0.30 - 0.2) + (0.40 - 0.3)) / 2)
    assert matrix.fwt(1) == pytest.approx(0.30 - 0.2)
    unmeasured = AccuracyMatrix.from_rows(ROWS)
    assert math.isnan(unmeasured.fwt(2))


def test_summary_and_round_trip(matrix):
    s = matrix.summary()
    assert set(s) == {"cl/avg_acc", "cl/forgetting", "cl/bwt", "cl/fwt"}
    again = AccuracyMatrix.from_dict(matrix.to_dict())
    assert again.summary() == s


def test_average_hides_forgetting(matrix):
    # the average fell from 0.90 to 0.767 (by 0.133): with margin 0.1 the average shows the loss
    assert hides_forgetting(matrix, 2, margin=0.1) == []
    # with margin 0.2 the average stayed within it while task 0 dropped 0.35 from its best
    assert hides_forgetting(matrix, 2, margin=0.2) == [0]
    assert hides_forgetting(matrix, 0, margin=0.2) == []


def test_unmeasured_entries_raise(matrix):
    with pytest.raises(ValueError, match=r"R\[0\]\[2\]"):
        matrix.get(0, 2)
    with pytest.raises(ValueError, match="n_tasks"):
        AccuracyMatrix(0)
