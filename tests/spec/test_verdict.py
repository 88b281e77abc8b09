"""Verdicts and the exact comparison every predicate shares."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

from spec import (
    Holds,
    Location,
    NotApplicable,
    Violated,
    compare,
    split_exact,
    to_exact,
    to_float,
)
from spec._verdict import recognise, worst_of


def test_to_exact_converts_floats_without_rounding() -> None:
    # Arrange: 0.1 is the dyadic 3602879701896397 / 2^55.
    value = 0.1

    # Act
    exact = to_exact([value])[0]

    # Assert
    with mpmath.workdps(60):
        assert exact == mpmath.mpf(3602879701896397) / mpmath.mpf(2) ** 55


def test_to_float_rounds_to_nearest() -> None:
    # Arrange
    with mpmath.workdps(40):
        third = np.array([mpmath.mpf(1) / 3], dtype=object)

        # Act
        rounded = to_float(third)

    # Assert
    assert rounded.tolist() == [1 / 3]
    assert rounded.dtype == np.float64


def test_compare_measures_errors_exactly_and_reports_the_worst_ratio() -> None:
    # Arrange: errors 0.25 and 0.5 against bounds 1 and 1.
    exact = to_exact([1.0, 2.0])

    # Act
    verdict = compare("demo", claimed=[1.25, 2.5], exact=exact, bound=1.0,
                      quantity="loss")

    # Assert
    assert verdict == Holds("demo", 0.5, 2, "")


def test_compare_names_the_entry_with_the_largest_error_in_bounds() -> None:
    # Arrange: entry (0, 1) is off by 0.5 with bound 0.1 (5 bounds); entry
    # (1, 0) by 1 with bound 0.5 (2 bounds).
    exact = to_exact([[1.0, 1.0], [1.0, 1.0]])
    bound = np.array([[0.1, 0.1], [0.5, 0.5]])

    # Act
    verdict = compare("demo", claimed=[[1.0, 1.5], [2.0, 1.0]], exact=exact,
                      bound=bound, quantity="weight_gradient", layer_index=2)

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location == Location("weight_gradient", 2, (0, 1))
    assert verdict.worst_error_in_bounds == pytest.approx(5.0)
    assert verdict.violating == 2 and verdict.compared == 4


def test_a_zero_bound_allows_only_an_exact_claim() -> None:
    # Arrange
    exact = to_exact([3.0, 4.0])

    # Act
    verdict = compare("demo", claimed=[3.0, np.nextafter(4.0, 5.0)], exact=exact,
                      bound=0.0, quantity="bias_gradient")

    # Assert
    assert isinstance(verdict, Violated)
    assert verdict.location.index == (1,)
    assert verdict.worst_error_in_bounds == float("inf")
    assert verdict.violating == 1


def test_violated_describe_reads_as_one_diagnosis() -> None:
    # Arrange
    verdict = Violated("gradient-product", Location("weight_gradient", 2, (0, 1)),
                       expected=1.0, actual=1.5, absolute_error=0.5, bound=0.25,
                       worst_error_in_bounds=2.0, violating=1, compared=6)

    # Act
    text = verdict.describe()

    # Assert
    assert text == ("gradient-product: weight_gradient W_2[0, 1] expected 1.0, got "
                    "1.5 (|error| = 5.000e-01, allowed 2.500e-01, 2 bounds); 1 of 6 "
                    "compared entries exceed their bound.")


def test_location_describes_layers_and_examples() -> None:
    # Arrange
    locations = [Location("bias_gradient", 1, (3,)), Location("loss"),
                 Location("input_jacobian", 2, (0, 1), example_index=4)]

    # Act
    texts = [location.describe() for location in locations]

    # Assert
    assert texts == ["bias_gradient b_1[3]", "loss",
                     "input_jacobian layer 2[0, 1] (example 4)"]


def test_worst_of_prefers_a_violation_then_not_applicable_then_the_worst_hold(
        ) -> None:
    # Arrange
    small = Violated("r", Location("loss"), 0.0, 1.0, 1.0, 0.5, 2.0, 1, 1)
    large = Violated("r", Location("loss"), 0.0, 3.0, 3.0, 0.5, 6.0, 1, 1)
    skipped = NotApplicable("r", "kink")
    held = [Holds("r", 0.25, 3), Holds("r", 0.75, 2)]

    # Act
    violated = worst_of([held[0], small, skipped, large])
    not_applicable = worst_of([held[0], skipped])
    holds = worst_of(held)

    # Assert
    assert violated is large
    assert not_applicable is skipped
    assert holds == Holds("r", 0.75, 5, "")


def test_worst_of_needs_a_verdict() -> None:
    # Arrange
    verdicts: list[Holds] = []

    # Act
    with pytest.raises(ValueError) as raised:
        worst_of(verdicts)

    # Assert
    assert "at least one verdict" in str(raised.value)


# Recognising which way a value is wrong.

def test_recognise_names_a_sign_error() -> None:
    from spec._verdict import recognise

    text = recognise(np.array([-1.5, 2.0]), np.array([1.5, -2.0]), np.full(2, 1e-15))

    assert "times -1 (a sign error)" in text


def test_recognise_names_a_transposed_matrix() -> None:
    from spec._verdict import recognise

    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    text = recognise(expected.T.copy(), expected, np.full((2, 2), 1e-15))

    assert text == "Pattern: the returned matrix is the transpose of the expected one."


def test_recognise_names_the_batch_size_when_it_is_the_factor() -> None:
    from spec._verdict import recognise

    text = recognise(np.array([3.0, -6.0]), np.array([1.0, -2.0]), np.full(2, 1e-15),
                     batch_size=3)

    assert "off by the batch size 3" in text


def test_recognise_names_all_zero_and_low_precision() -> None:
    from spec._verdict import recognise

    expected = np.array([1.0, 2.0])
    zero = recognise(np.zeros(2), expected, np.full(2, 1e-15))
    single = recognise(expected.astype(np.float32).astype(np.float64) + 1e-7,
                       expected, np.full(2, 1e-15))

    assert "every returned value is zero" in zero
    assert "agree to about 7 significant digits" in single


def test_recognise_says_nothing_for_an_unstructured_error() -> None:
    from spec._verdict import recognise

    text = recognise(np.array([1.0, 5.0]), np.array([2.0, 3.0]), np.full(2, 1e-15))

    assert text == ""


def test_compare_measures_the_error_against_the_exact_value_not_its_rounding() -> None:
    # Arrange: v = 1/3 at 40 digits. fl(1/3) = (2^54 - 1) / 3 * 2^-54, so it
    # errs by 2^-54 / 3 = 1.850371707708594e-17, a third of an ulp; the
    # error is also measured here in mpmath, independently of compare().
    with mpmath.workdps(40):
        exact = np.array([mpmath.mpf(1) / 3], dtype=object)
        error = float(abs(mpmath.mpf(1 / 3) - exact[0]))
        split = split_exact(exact)

    # Act
    verdict = compare("r", claimed=[1 / 3], exact=split, bound=[error / 2],
                      quantity="q")
    tight = compare("r", claimed=[1 / 3], exact=split, bound=[error * 2],
                    quantity="q")

    # Assert: 1.85e-17, a third of an ulp, is measured, not rounded away.
    assert error == pytest.approx(2.0 ** -54 / 3, rel=1e-15)
    assert isinstance(verdict, Violated)
    assert verdict.absolute_error == pytest.approx(error, rel=1e-15)
    assert isinstance(tight, Holds)
    assert tight.worst_error_in_bounds == pytest.approx(0.5, rel=1e-15)


def test_compare_gives_the_same_verdict_for_mpf_values_and_their_split() -> None:
    with mpmath.workdps(30):
        exact = np.array([[mpmath.mpf(2) / 7, -mpmath.mpf(10) ** 20 / 3],
                          [mpmath.mpf(0), mpmath.mpf("1e-300") / 3]], dtype=object)
        split = split_exact(exact)
    claimed = np.array([[2 / 7, -1e20 / 3], [0.0, 1e-300 / 3]])
    bound = np.full((2, 2), 1e-30)

    with mpmath.workdps(30):
        direct = compare("r", claimed=claimed, exact=exact, bound=bound, quantity="q")
    via_split = compare("r", claimed=claimed, exact=split, bound=bound, quantity="q")

    assert direct == via_split


def test_compare_never_accepts_a_non_finite_claim_or_an_overflowing_exact_value() -> None:
    with mpmath.workdps(30):
        exact = np.array([mpmath.mpf(1), mpmath.mpf(10) ** 400], dtype=object)
    claimed = np.array([np.nan, 1.7e308])

    verdict = compare("r", claimed=claimed, exact=exact, bound=[1.0, 1e300],
                      quantity="q")

    assert isinstance(verdict, Violated)
    assert verdict.violating == 2


@pytest.mark.parametrize(("factor", "words"), [
    (3.0, "(off by the batch size 3: a sum over the examples where the mean "
          "belongs?)"),
    (1 / 3, "(off by the batch size 3: divided by the batch size once more than "
            "needed, or a mean where a sum belongs?)"),
    (2.0, "(a factor 2: the 1/2 of the squared error dropped, or a sum over two "
          "examples or outputs?)"),
    (0.5, "(a factor 2: the 1/2 of the squared error applied twice, or a mean "
          "over two examples or outputs where a sum belongs?)"),
    (5.0, "(a whole factor 5: a sum where a mean belongs?)"),
    (0.2, "(a whole factor 5: a mean where a sum belongs, or one division too "
          "many?)"),
])
def test_a_whole_factor_is_explained_in_the_direction_it_goes(
        factor: float, words: str) -> None:
    expected = np.array([0.75, -1.5, 3.0])
    text = recognise(expected * factor, expected, np.full(3, 1e-15), batch_size=3)
    assert text == ("Pattern: the returned values are the expected ones times "
                    f"{factor:.6g} {words}")
