"""The shared argument checks: what they accept, and one wording for what they refuse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from growray.checks import check_bool, check_choice, check_int, check_number


@pytest.mark.parametrize("value", [1, 7, np.int64(3)])
def test_check_int_accepts_ints_in_range(value):
    assert check_int("n", value, minimum=1, maximum=7) == int(value)
    assert type(check_int("n", value, minimum=1)) is int


@pytest.mark.parametrize("value", [0, 8, True, 2.0, "3", None])
def test_check_int_refuses_with_name_bound_and_value(value):
    with pytest.raises(ValueError, match=r"^n must be an int in \[1, 7\]; got "):
        check_int("n", value, minimum=1, maximum=7)


def test_check_int_optional():
    assert check_int("n", None, minimum=1, optional=True) is None
    with pytest.raises(ValueError, match=r"^n must be an int >= 1 or null; got 0$"):
        check_int("n", 0, minimum=1, optional=True)


@pytest.mark.parametrize(
    ("kwargs", "good", "bad"),
    [
        ({"low": 0, "low_open": True}, [1e-9, 5], [0, -1]),
        ({"low": 0, "high": 1, "high_open": True}, [0, 0.5], [1, 1.5]),
        ({"high": 2}, [-3, 2], [2.0001]),
    ],
)
def test_check_number_bounds(kwargs, good, bad):
    for v in good:
        assert check_number("x", v, **kwargs) == float(v)
    for v in bad:
        with pytest.raises(ValueError, match=r"^x must be a finite number "):
            check_number("x", v, **kwargs)


@pytest.mark.parametrize("value", [math.nan, math.inf, True, "0.5", None])
def test_check_number_refuses_non_finite_bools_and_strings(value):
    with pytest.raises(ValueError, match=r"got "):
        check_number("x", value)


def test_check_number_message_names_the_interval():
    with pytest.raises(ValueError, match=r"^p must be a finite number in \(0, 1\]; got 0$"):
        check_number("p", 0, low=0, high=1, low_open=True)
    assert check_number("p", None, low=0, optional=True) is None


def test_check_choice():
    assert check_choice("mode", "min", ("min", "max")) == "min"
    with pytest.raises(ValueError, match=r"^mode must be one of \['min', 'max'\]; got 'up'$"):
        check_choice("mode", "up", ("min", "max"))


def test_check_bool_takes_only_true_or_false():
    assert check_bool("affine", True) is True and check_bool("affine", False) is False
    for value in (0, 1, "true", None):
        with pytest.raises(ValueError, match=r"^affine must be true or false; got "):
            check_bool("affine", value)
